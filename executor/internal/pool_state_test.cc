#include "executor/internal/pool_state.h"

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace procpool {
namespace internal {
namespace {

TEST(PoolStateTest, StartsRunning) {
  PoolState state;
  EXPECT_FALSE(state.shut_down());
  EXPECT_FALSE(state.broken());
  EXPECT_FALSE(state.winding_down());
}

TEST(PoolStateTest, ShutDownWindsDownWithoutBreaking) {
  PoolState state;
  state.ShutDown();
  state.ShutDown();
  EXPECT_TRUE(state.shut_down());
  EXPECT_FALSE(state.broken());
  EXPECT_TRUE(state.winding_down());
}

TEST(PoolStateTest, BreaksOnceKeepingTheFirstReason) {
  PoolState state;
  EXPECT_TRUE(state.Break("first"));
  EXPECT_FALSE(state.Break("second"));
  EXPECT_TRUE(state.broken());
  EXPECT_FALSE(state.shut_down());
  EXPECT_TRUE(state.winding_down());
  EXPECT_EQ(state.broken_reason(), "first");
  state.ShutDown();
  EXPECT_TRUE(state.shut_down());
  EXPECT_TRUE(state.broken());
  EXPECT_EQ(state.broken_reason(), "first");
}

TEST(PoolStateTest, AReaderThatSeesBrokenSeesTheReason) {
  for (int round = 0; round < 100; ++round) {
    PoolState state;
    std::atomic<bool> go{false};
    std::thread reader([&] {
      go.store(true);
      while (!state.broken()) std::this_thread::yield();
      EXPECT_EQ(state.broken_reason(), "A worker died");
    });
    while (!go.load()) std::this_thread::yield();
    state.Break("A worker died");
    reader.join();
  }
}

}  // namespace
}  // namespace internal
}  // namespace procpool
