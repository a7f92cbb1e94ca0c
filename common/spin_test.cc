// common/spin.h: MayGiveWay (a thread that may run on one CPU only gives its
// CPU way in spins; one with more CPUs keeps it) and ReceiveSpin's pacing.
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

// Pins the calling thread to the CPU it is on; false if it cannot.
bool PinHere() {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu(), &one);
  return sched_setaffinity(0, sizeof(one), &one) == 0;
}

TEST(SpinTest, AThreadOnOneCpuGivesWay) {
  EXPECT_TRUE(OnNewThread([] {
    return PinHere() && MayGiveWay();
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
    if (!PinHere()) return false;
    const int64_t pinned = MonotonicNanos();
    while (!MayGiveWay()) {
      // Bounded: the next look comes within kCpuMaskRefreshNs.
      if (MonotonicNanos() - pinned > 10 * kCpuMaskRefreshNs) return false;
      SpinPause(/*give_way=*/true);
    }
    return !before && MonotonicNanos() - pinned <= 2 * kCpuMaskRefreshNs;
  }));
}

constexpr int64_t kStart = 1'000'000'000;
constexpr int64_t kWindow = 20'000;
constexpr int64_t kMax = 200'000;

TEST(ReceiveSpinTest, EndsAWindowAfterItsStartWhenThePeerHasRead) {
  cpu_set_t mask;
  ASSERT_EQ(sched_getaffinity(0, sizeof(mask), &mask), 0);
  if (CPU_COUNT(&mask) < 2) GTEST_SKIP() << "this process has one CPU";
  ReceiveSpin spin(kStart, kWindow, kMax);
  int asked = 0;
  const auto read = [&] { ++asked; return false; };
  EXPECT_TRUE(spin.GoOn(kStart + kWindow - 1, read));
  EXPECT_FALSE(spin.GoOn(kStart + kWindow, read));
  EXPECT_EQ(asked, 1);  // only at the deadline (more CPUs: no give-way)
}

TEST(ReceiveSpinTest, TheWindowCountsFromWhenThePeerRead) {
  cpu_set_t mask;
  ASSERT_EQ(sched_getaffinity(0, sizeof(mask), &mask), 0);
  if (CPU_COUNT(&mask) < 2) GTEST_SKIP() << "this process has one CPU";
  ReceiveSpin spin(kStart, kWindow, kMax);
  bool unread = true;
  const auto ask = [&] { return unread; };
  EXPECT_TRUE(spin.GoOn(kStart + kWindow, ask));  // still unread: on
  EXPECT_FALSE(spin.giving_way());                // two CPUs: keeps its CPU
  unread = false;  // read at about kStart + kWindow
  EXPECT_TRUE(spin.GoOn(kStart + 2 * kWindow - 1, ask));
  EXPECT_FALSE(spin.GoOn(kStart + 2 * kWindow, ask));
}

TEST(ReceiveSpinTest, APeerThatNeverReadsEndsTheSpinAtItsLimit) {
  ReceiveSpin spin(kStart, kWindow, kMax);
  int asked = 0;
  const auto unread = [&] { ++asked; return true; };
  for (int64_t t = kStart; t < kStart + kMax; t += 1'000) {
    ASSERT_TRUE(spin.GoOn(t, unread)) << t - kStart;
  }
  EXPECT_FALSE(spin.GoOn(kStart + kMax, unread));
  EXPECT_GT(asked, 0);
}

TEST(ReceiveSpinTest, OnOneCpuItGivesWayWhileItsFrameIsUnread) {
  EXPECT_TRUE(OnNewThread([] {
    if (!PinHere()) return false;
    ReceiveSpin spin(kStart, kWindow, kMax);
    bool unread = true;
    int asked = 0;
    const auto ask = [&] { ++asked; return unread; };
    bool ok = spin.GoOn(kStart + kGiveWayAfterNs - 1, ask) &&
              !spin.giving_way() && asked == 0;
    ok = ok && spin.GoOn(kStart + kGiveWayAfterNs, ask) && spin.giving_way();
    unread = false;
    ok = ok && spin.GoOn(kStart + kGiveWayAfterNs + 1, ask) &&
         !spin.giving_way();
    // Read stays read: not asked again.
    const int asked_before = asked;
    ok = ok && spin.GoOn(kStart + kGiveWayAfterNs + 2, ask) &&
         asked == asked_before;
    return ok;
  }));
}

}  // namespace
}  // namespace procpool
