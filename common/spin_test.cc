// MayGiveWay (common/spin.h): a thread that may run on one CPU only gives its
// CPU way in spins; one with more CPUs keeps it.
#include "common/spin.h"

#include <sched.h>

#include <thread>

#include "gtest/gtest.h"

namespace procpool {
namespace {

// Runs `body` on a new thread (a fresh MayGiveWay cache) and returns what it
// returned.
template <typename Body>
bool OnNewThread(const Body& body) {
  bool result = false;
  std::thread t([&] { result = body(); });
  t.join();
  return result;
}

TEST(SpinTest, AThreadOnOneCpuGivesWay) {
  EXPECT_TRUE(OnNewThread([] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    if (sched_setaffinity(0, sizeof(one), &one) != 0) return false;
    return MayGiveWay();
  }));
}

TEST(SpinTest, AThreadWithMoreCpusKeepsItsCpu) {
  cpu_set_t mask;
  ASSERT_EQ(sched_getaffinity(0, sizeof(mask), &mask), 0);
  if (CPU_COUNT(&mask) < 2) GTEST_SKIP() << "this process has one CPU";
  EXPECT_FALSE(OnNewThread([] { return MayGiveWay(); }));
}

// The mask is looked at again: a thread pinned after its first look gives way
// once kCpuMaskRefreshNs has passed, not before.
TEST(SpinTest, ThePinningOfARunningThreadIsSeenWithinTheRefresh) {
  cpu_set_t mask;
  ASSERT_EQ(sched_getaffinity(0, sizeof(mask), &mask), 0);
  if (CPU_COUNT(&mask) < 2) GTEST_SKIP() << "this process has one CPU";
  EXPECT_TRUE(OnNewThread([] {
    const bool before = MayGiveWay();
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    if (sched_setaffinity(0, sizeof(one), &one) != 0) return false;
    const int64_t pinned = MonotonicNanos();
    while (!MayGiveWay()) {
      // Bounded: the next look comes within kCpuMaskRefreshNs.
      if (MonotonicNanos() - pinned > 10 * kCpuMaskRefreshNs) return false;
      SpinPause(/*give_way=*/true);
    }
    return !before && MonotonicNanos() - pinned <= 2 * kCpuMaskRefreshNs;
  }));
}

}  // namespace
}  // namespace procpool
