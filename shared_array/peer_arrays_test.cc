#include "shared_array/peer_arrays.h"

#include <optional>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shared_array/shared_array.h"

namespace procpool {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

SharedBuffer Array(size_t n) { return SharedArray<int>(n).buffer(); }

TEST(PeerArraysTest, ADescriptorGoesOncePerReceiver) {
  PeerArrays peer;
  SharedBuffer a = Array(10), b = Array(20);
  PeerArrays::Plan plan;
  peer.PlanFrame({a, b}, &plan);
  EXPECT_THAT(plan.held, IsEmpty());
  EXPECT_THAT(plan.fds, ElementsAre(a.fd(), b.fd()));
  // Again, and with a new array between them: only the new one's goes.
  SharedBuffer c = Array(30);
  peer.PlanFrame({b, c, a}, &plan);
  EXPECT_THAT(plan.held, ElementsAre(0u, 2u));
  EXPECT_THAT(plan.fds, ElementsAre(c.fd()));
  EXPECT_THAT(plan.forget, IsEmpty());
  EXPECT_EQ(peer.entries(), 3u);
  EXPECT_EQ(peer.bytes(), 240u);
  // A frame without arrays plans nothing.
  peer.PlanFrame({}, &plan);
  EXPECT_TRUE(plan.empty());
}

TEST(PeerArraysTest, WhatTheSenderLetGoIsForgottenAtTheNextFrame) {
  PeerArrays peer;
  std::optional<SharedBuffer> a = Array(10);
  SharedBuffer b = Array(10);
  PeerArrays::Plan plan;
  peer.PlanFrame({*a, b}, &plan);
  const BufferId gone = a->id();
  a.reset();  // the last copy here
  peer.PlanFrame({}, &plan);
  EXPECT_THAT(plan.forget, ElementsAre(gone));
  EXPECT_EQ(peer.entries(), 1u);
  // Once only.
  peer.PlanFrame({}, &plan);
  EXPECT_TRUE(plan.empty());
}

TEST(PeerArraysTest, ManyReleasesBeyondTheLogAreFoundByAsking) {
  PeerArrays peer;
  std::optional<SharedBuffer> a = Array(1);
  SharedBuffer keep = Array(1);
  PeerArrays::Plan plan;
  peer.PlanFrame({*a, keep}, &plan);
  const BufferId gone = a->id();
  a.reset();
  for (int i = 0; i < 3000; ++i) Array(1);  // made and released
  peer.PlanFrame({keep}, &plan);
  EXPECT_THAT(plan.forget, ElementsAre(gone));
  EXPECT_THAT(plan.held, ElementsAre(0u));
}

TEST(PeerArraysTest, OverItsBoundsTheLeastRecentlySentGoesFirst) {
  PeerArrays peer(PeerArrays::Limits{/*max_entries=*/2, /*max_bytes=*/1000});
  SharedBuffer a = Array(10), b = Array(10), c = Array(10);
  PeerArrays::Plan plan;
  peer.PlanFrame({a}, &plan);
  peer.PlanFrame({b}, &plan);
  peer.PlanFrame({a}, &plan);  // a is now more recent than b
  peer.PlanFrame({c}, &plan);
  EXPECT_THAT(plan.forget, ElementsAre(b.id()));
  EXPECT_THAT(plan.fds, ElementsAre(c.fd()));
  // b comes with its descriptor again.
  peer.PlanFrame({b}, &plan);
  EXPECT_THAT(plan.fds, ElementsAre(b.fd()));
  EXPECT_THAT(plan.forget, ElementsAre(a.id()));
  // Bytes bound: a frame's own arrays are never evicted, even over it.
  SharedBuffer big = Array(1000);
  peer.PlanFrame({big}, &plan);
  EXPECT_EQ(peer.entries(), 1u);
  EXPECT_THAT(plan.fds, ElementsAre(big.fd()));
  EXPECT_EQ(plan.forget.size(), 2u);
}

}  // namespace
}  // namespace procpool
