#include "shared_array/mapping_cache.h"

#include <fcntl.h>

#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shared_array/handle.h"
#include "shared_array/shared_array.h"
#include "shared_array/test_util.h"

namespace procpool {
namespace {

using shared_array_testing::ArrayMappingCount;
using shared_array_testing::FdCount;
using shared_array_testing::MapsLineCount;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

UniqueFd Dup(int fd) { return UniqueFd(fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

// An array as a sender holds it, with its handle.
struct Sent {
  explicit Sent(size_t n, SharedArrayMode mode = SharedArrayMode::kImmutable)
      : array(n, mode), handle(*array.Share()) {}
  UniqueFd fd() const { return Dup(array.buffer().fd()); }
  SharedArray<int> array;
  SharedArrayHandle handle;
};

TEST(MappingCacheTest, MapsABufferOnceAndHitsAfterwards) {
  MappingCache cache;
  Sent a(1000);
  const int maps = ArrayMappingCount();
  absl::StatusOr<SharedBuffer> first = cache.Insert(a.handle, a.fd());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(ArrayMappingCount(), maps + 1);
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<SharedBuffer> again = cache.Lookup(a.handle);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->address(), first->address());
  }
  // The sender sent the descriptor again: still one mapping, `fd` closed.
  const int fds = FdCount();
  absl::StatusOr<SharedBuffer> resent = cache.Insert(a.handle, a.fd());
  ASSERT_TRUE(resent.ok());
  EXPECT_EQ(resent->address(), first->address());
  EXPECT_EQ(FdCount(), fds);
  EXPECT_EQ(ArrayMappingCount(), maps + 1);
  EXPECT_EQ(cache.entries(), 1u);
  EXPECT_EQ(cache.bytes(), 4000u);
  absl::StatusOr<SharedArray<int>> typed =
      SharedArray<int>::FromBuffer(*std::move(first));
  ASSERT_TRUE(typed.ok());
  EXPECT_FALSE(typed->writable());
}

TEST(MappingCacheTest, StaleAndForgedHandlesAreRefused) {
  MappingCache cache;
  Sent a(10);
  absl::Status s = cache.Lookup(a.handle).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("send it again"));
  ASSERT_TRUE(cache.Insert(a.handle, a.fd()).ok());

  SharedArrayHandle forged = a.handle;
  forged.byte_size = 400;
  s = cache.Lookup(forged).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("forged"));
  forged = a.handle;
  forged.type_name = "f32";
  EXPECT_EQ(cache.Insert(forged, a.fd()).status().code(),
            absl::StatusCode::kInvalidArgument);
  forged = a.handle;
  forged.id.serial += 1000000;  // nobody's: not cached, and the fd disagrees
  EXPECT_EQ(cache.Lookup(forged).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache.Insert(forged, a.fd()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache.entries(), 1u);
  EXPECT_TRUE(cache.Lookup(a.handle).ok());  // the entry is unharmed
}

TEST(MappingCacheTest, EvictsLeastRecentlyUsedUnpinnedEntries) {
  MappingCache cache({/*max_entries=*/2, /*max_bytes=*/1 << 20});
  Sent a(10), b(10), c(10);
  ASSERT_TRUE(cache.Insert(a.handle, a.fd()).ok());
  ASSERT_TRUE(cache.Insert(b.handle, b.fd()).ok());
  ASSERT_TRUE(cache.Lookup(a.handle).ok());  // b is now the oldest
  ASSERT_TRUE(cache.Insert(c.handle, c.fd()).ok());
  EXPECT_EQ(cache.entries(), 2u);
  EXPECT_EQ(cache.Lookup(b.handle).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(cache.Lookup(a.handle).ok());
  EXPECT_THAT(cache.TakeDropped(), ElementsAre(b.handle.id));
  EXPECT_TRUE(cache.TakeDropped().empty());
}

TEST(MappingCacheTest, BytesBoundEvictsToo) {
  MappingCache cache({/*max_entries=*/100, /*max_bytes=*/10000});
  Sent a(1000), b(1000), c(1000);  // 4000 bytes each
  ASSERT_TRUE(cache.Insert(a.handle, a.fd()).ok());
  ASSERT_TRUE(cache.Insert(b.handle, b.fd()).ok());
  ASSERT_TRUE(cache.Insert(c.handle, c.fd()).ok());
  EXPECT_EQ(cache.entries(), 2u);
  EXPECT_EQ(cache.bytes(), 8000u);
  EXPECT_THAT(cache.TakeDropped(), ElementsAre(a.handle.id));
}

TEST(MappingCacheTest, PinnedEntriesStayUntilTheirHoldersLetGo) {
  MappingCache cache({/*max_entries=*/1, /*max_bytes=*/1 << 20});
  Sent a(10), b(10);
  std::optional<SharedBuffer> held = *cache.Insert(a.handle, a.fd());
  // While its result lives, b is pinned too: over the bound ...
  ASSERT_TRUE(cache.Insert(b.handle, b.fd()).ok());
  EXPECT_EQ(cache.entries(), 2u);
  // ... until the next Trim: b is unpinned now, a is not.
  cache.Trim();
  EXPECT_EQ(cache.entries(), 1u);
  EXPECT_THAT(cache.TakeDropped(), ElementsAre(b.handle.id));
  EXPECT_TRUE(cache.Lookup(a.handle).ok());
  EXPECT_EQ(cache.pinned(), 1u);
  {
    // Both pinned: over the bound until one is let go.
    SharedBuffer pin_b = *cache.Insert(b.handle, b.fd());
    EXPECT_EQ(cache.entries(), 2u);
    EXPECT_EQ(cache.pinned(), 2u);
    held.reset();
    cache.Trim();
    EXPECT_EQ(cache.entries(), 1u);
    EXPECT_TRUE(cache.Lookup(b.handle).ok());
  }
  EXPECT_EQ(cache.pinned(), 0u);
}

TEST(MappingCacheTest, ReadWriteEntriesShareWritesWithTheCreator) {
  MappingCache cache;
  Sent out(100, SharedArrayMode::kOutput);
  absl::StatusOr<SharedBuffer> b = cache.Insert(out.handle, out.fd());
  ASSERT_TRUE(b.ok()) << b.status();
  absl::StatusOr<SharedArray<int>> view = SharedArray<int>::FromBuffer(*b);
  ASSERT_TRUE(view.ok());
  EXPECT_TRUE(view->writable());
  (*view)[99] = 5;
  EXPECT_EQ(out.array[99], 5);
}

TEST(MappingCacheTest, ClearUnmapsEverythingAndLeaksNothing) {
  auto round = [] {
    std::vector<std::unique_ptr<Sent>> sent;
    MappingCache cache({/*max_entries=*/8, /*max_bytes=*/1 << 20});
    for (int i = 0; i < 20; ++i) {
      sent.push_back(std::make_unique<Sent>(1000 + i));
      ASSERT_TRUE(cache.Insert(sent.back()->handle, sent.back()->fd()).ok());
    }
    EXPECT_EQ(cache.entries(), 8u);
    EXPECT_EQ(cache.TakeDropped().size(), 12u);
    std::optional<SharedBuffer> pinned = *cache.Lookup(sent.back()->handle);
    const int senders_maps = 20;
    EXPECT_EQ(ArrayMappingCount(), senders_maps + 8);
    cache.Clear();
    EXPECT_EQ(cache.entries(), 0u);
    EXPECT_EQ(cache.bytes(), 0u);
    EXPECT_EQ(cache.TakeDropped().size(), 8u);
    EXPECT_EQ(ArrayMappingCount(), senders_maps + 1);  // the pinned one
    pinned.reset();
    EXPECT_EQ(ArrayMappingCount(), senders_maps);
  };
  round();  // the allocator's own mappings settle (ASan's too)
  const int fds = FdCount();
  const int maps = MapsLineCount();
  round();
  EXPECT_EQ(FdCount(), fds);
  EXPECT_EQ(MapsLineCount(), maps);
  EXPECT_EQ(ArrayMappingCount(), 0);
}

TEST(MappingCacheTest, ForgetDropsWhatTheSenderSaysAndNothingElse) {
  MappingCache cache;
  Sent a(100), b(100);
  const int maps = ArrayMappingCount();
  ASSERT_TRUE(cache.Insert(a.handle, a.fd()).ok());
  absl::StatusOr<SharedBuffer> pinned = cache.Insert(b.handle, b.fd());
  ASSERT_TRUE(pinned.ok());
  EXPECT_EQ(cache.attached(), 2u);
  EXPECT_EQ(ArrayMappingCount(), maps + 2);
  const int fds = FdCount();
  cache.Forget({a.handle.id, b.handle.id, BufferId::Next()});
  EXPECT_EQ(cache.entries(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
  // a is unmapped and closed now; b goes with its last holder.
  EXPECT_EQ(FdCount(), fds - 1);
  EXPECT_EQ(ArrayMappingCount(), maps + 1);
  EXPECT_EQ(cache.Lookup(a.handle).status().code(), absl::StatusCode::kNotFound);
  pinned = absl::StatusOr<SharedBuffer>(absl::CancelledError());
  EXPECT_EQ(ArrayMappingCount(), maps);
  EXPECT_EQ(FdCount(), fds - 2);
  // Sent again: attached afresh.
  ASSERT_TRUE(cache.Insert(a.handle, a.fd()).ok());
  EXPECT_EQ(cache.attached(), 3u);
}

TEST(MappingCacheTest, ThreadSafe) {
  MappingCache cache({/*max_entries=*/4, /*max_bytes=*/1 << 20});
  std::vector<std::unique_ptr<Sent>> sent;
  for (int i = 0; i < 8; ++i) sent.push_back(std::make_unique<Sent>(64));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        const Sent& s = *sent[(i + t) % sent.size()];
        absl::StatusOr<SharedBuffer> b = cache.Lookup(s.handle);
        if (!b.ok()) b = cache.Insert(s.handle, s.fd());
        ASSERT_TRUE(b.ok()) << b.status();
        ASSERT_EQ(b->id(), s.handle.id);
        if (i % 50 == 0) cache.Trim();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  cache.Trim();
  EXPECT_LE(cache.entries(), 4u);
  cache.Clear();
  EXPECT_EQ(ArrayMappingCount(), 8);
}

}  // namespace
}  // namespace procpool
