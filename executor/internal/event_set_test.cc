#include "executor/internal/event_set.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <errno.h>

#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace procpool {
namespace internal {
namespace {

TEST(EventKeyTest, RoundTripsWorkerAndKind) {
  for (int id : {0, 1, 7, 123456}) {
    for (EventKind kind :
         {EventKind::kChannel, EventKind::kPid, EventKind::kHeartbeat}) {
      const uint64_t key = EventKey(id, kind);
      EXPECT_NE(key, kWakeKey);
      EXPECT_EQ(WorkerOfKey(key), id);
      EXPECT_EQ(KindOfKey(key), kind);
    }
  }
  EXPECT_NE(EventKey(1, EventKind::kPid), EventKey(1, EventKind::kChannel));
  EXPECT_NE(EventKey(1, EventKind::kPid), EventKey(2, EventKind::kPid));
}

TEST(EventSetTest, TimesOutWithNothingReady) {
  EventSet events;
  struct epoll_event ready[4];
  const absl::Time start = absl::Now();
  EXPECT_EQ(events.Wait(ready, 4, absl::Milliseconds(20)), 0);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(19));
  EXPECT_EQ(events.Wait(ready, 4, absl::ZeroDuration()), 0);
}

TEST(EventSetTest, WakeIsSeenUntilDrained) {
  EventSet events;
  events.Wake();
  events.Wake();  // a second write while set does not block
  struct epoll_event ready[4];
  ASSERT_EQ(events.Wait(ready, 4, absl::Seconds(10)), 1);
  EXPECT_EQ(ready[0].data.u64, kWakeKey);
  // Level-triggered: still readable until drained.
  EXPECT_EQ(events.Wait(ready, 4, absl::ZeroDuration()), 1);
  events.DrainWake();
  EXPECT_EQ(events.Wait(ready, 4, absl::ZeroDuration()), 0);
}

TEST(EventSetTest, WakeFromAnotherThreadEndsAnInfiniteWait) {
  EventSet events;
  std::thread waker([&] {
    absl::SleepFor(absl::Milliseconds(10));
    events.Wake();
  });
  struct epoll_event ready[4];
  int n;
  do {
    n = events.Wait(ready, 4, absl::Seconds(30));
  } while (n < 0 && errno == EINTR);
  waker.join();
  ASSERT_EQ(n, 1);
  EXPECT_EQ(ready[0].data.u64, kWakeKey);
}

TEST(EventSetTest, ReportsARegisteredFdWithItsKeyAndOneShotRearms) {
  EventSet events;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const uint64_t key = EventKey(5, EventKind::kChannel);
  events.Add(fds[0], key, EPOLLIN | EPOLLONESHOT);
  struct epoll_event ready[4];
  EXPECT_EQ(events.Wait(ready, 4, absl::ZeroDuration()), 0);
  ASSERT_EQ(write(fds[1], "x", 1), 1);
  ASSERT_EQ(events.Wait(ready, 4, absl::Seconds(10)), 1);
  EXPECT_EQ(ready[0].data.u64, key);
  // One-shot: disarmed until modified, although still readable.
  EXPECT_EQ(events.Wait(ready, 4, absl::ZeroDuration()), 0);
  const uint64_t key2 = EventKey(5, EventKind::kHeartbeat);
  events.Modify(fds[0], key2, EPOLLIN | EPOLLONESHOT);
  ASSERT_EQ(events.Wait(ready, 4, absl::Seconds(10)), 1);
  EXPECT_EQ(ready[0].data.u64, key2);
  events.Modify(fds[0], key2, EPOLLIN);
  events.Remove(fds[0]);
  EXPECT_EQ(events.Wait(ready, 4, absl::ZeroDuration()), 0);
  events.Remove(fds[0]);  // not registered: ignored
  close(fds[0]);
  close(fds[1]);
}

TEST(EventSetTest, SubMillisecondTimeoutReturnsPromptly) {
  EventSet events;
  struct epoll_event ready[4];
  const absl::Time start = absl::Now();
  EXPECT_EQ(events.Wait(ready, 4, absl::Microseconds(100)), 0);
  // Rounded up to 1 ms at most without epoll_pwait2; generous bound for a
  // loaded machine.
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

}  // namespace
}  // namespace internal
}  // namespace procpool
