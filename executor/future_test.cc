// Future, Wait and AsCompleted on their own, completed by hand (S27-S32 of
// docs/SEMANTICS.md).
// The same behaviours through a real pool are in process_pool_executor_test.
#include "executor/future.h"

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "executor/wait.h"
#include "gtest/gtest.h"

namespace procpool {
namespace {

using internal::ElementOutcome;
using internal::State;

// Bound on waiting for another thread to reach a state; a hang fails after it.
constexpr absl::Duration kTimeout = absl::Seconds(20);

// The scheduler state of thread `tid` of this process ('R', 'S', ...), from
// /proc/self/task/TID/stat; '?' if it cannot be read.
char ThreadState(pid_t tid) {
  std::ifstream in(absl::StrCat("/proc/self/task/", tid, "/stat"));
  const std::string stat((std::istreambuf_iterator<char>(in)),
                         std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');  // the name may hold spaces and ')'
  return close != std::string::npos && close + 2 < stat.size()
             ? stat[close + 2]
             : '?';
}

// Stands in for a pool as the futures' driver, to see a thread come to block
// on them: Get(), Wait() and AsCompleted() call DriveIoWhileWaiting() when
// they find nothing done, right before they sleep on the state. It notes the
// calling thread and returns at once (no pool work to do).
class WaiterProbe : public internal::Driver {
 public:
  void Interrupt(internal::StateBase*) override {}
  void DriveIoWhileWaiting(const std::function<bool()>&,
                           absl::Duration) override {
    tid_.store(static_cast<pid_t>(syscall(SYS_gettid)));
  }

  // Forget the last waiter (before the next wait to be observed).
  void Reset() { tid_.store(0); }

  // Waits up to `timeout` until a thread has found nothing done and is
  // asleep in its wait (interruptible sleep, 'S': nothing else blocks
  // between DriveIoWhileWaiting() and the wait on the state's mutex).
  bool AwaitBlockedWaiter(absl::Duration timeout) const {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      const pid_t tid = tid_.load();
      if (tid != 0 && ThreadState(tid) == 'S') return true;
      if (absl::Now() >= deadline) return false;
      absl::SleepFor(absl::Milliseconds(1));
    }
  }

 private:
  std::atomic<pid_t> tid_{0};
};

Future<int> NewFuture() { return Future<int>(std::make_shared<State<int>>()); }

void Finish(Future<int>& f, int v) {
  f.state()->SetRunningOrNotifyCancel();
  std::vector<ElementOutcome> outcomes(1);
  outcomes[0].value = EncodeTaskValue(v);
  ASSERT_TRUE(f.state()->Complete(std::move(outcomes)).ok());
}

void Fail(Future<int>& f) {
  f.state()->SetRunningOrNotifyCancel();
  f.state()->SetException(
      std::make_exception_ptr(std::invalid_argument("bad")));
}

TEST(Future, S27StateTable) {
  Future<int> pending = NewFuture();
  EXPECT_FALSE(pending.Done());
  EXPECT_TRUE(pending.Cancel());
  EXPECT_TRUE(pending.Cancelled());
  EXPECT_TRUE(pending.Done());
  EXPECT_TRUE(pending.Cancel());  // already cancelled: still true

  Future<int> running = NewFuture();
  running.state()->SetRunningOrNotifyCancel();
  EXPECT_TRUE(running.Running());
  EXPECT_FALSE(running.Cancel());
  EXPECT_FALSE(running.Cancelled());

  Future<int> finished = NewFuture();
  Finish(finished, 5);
  EXPECT_FALSE(finished.Cancel());
  EXPECT_TRUE(finished.Done());
  EXPECT_EQ(finished.Get(), 5);
}

// A state completed from packed outcomes (internal::CallOutcomes::values):
// each value decodes from its bytes in the one buffer; failed elements keep
// their exceptions; a value that does not decode is an error.
TEST(Future, CompletesFromPackedOutcomes) {
  using internal::CallOutcomes;
  using internal::ChunkResult;
  auto chunk = std::make_shared<State<ChunkResult<int>>>();
  Future<ChunkResult<int>> f(chunk);
  CallOutcomes packed;
  packed.values.Append(EncodeTaskValue(10));
  packed.values.EndElement();  // element 1 failed
  packed.errors.emplace_back(
      1, std::make_exception_ptr(std::invalid_argument("three")));
  packed.values.Append(EncodeTaskValue(-30));
  chunk->SetRunningOrNotifyCancel();
  ASSERT_TRUE(chunk->Complete(std::move(packed)).ok());
  const ChunkResult<int>& got = f.Get(absl::ZeroDuration());
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(*got[0].value, 10);
  EXPECT_TRUE(got[1].error && !got[1].value);
  EXPECT_EQ(*got[2].value, -30);

  auto empty = std::make_shared<State<ChunkResult<std::string>>>();
  empty->SetRunningOrNotifyCancel();
  ASSERT_TRUE(empty->Complete(CallOutcomes()).ok());
  EXPECT_TRUE(Future<ChunkResult<std::string>>(empty)
                  .Get(absl::ZeroDuration())
                  .empty());

  // A lone string is its bytes (task_value.h); a big one beside small ones.
  auto strings = std::make_shared<State<ChunkResult<std::string>>>();
  CallOutcomes mixed;
  mixed.values.Append("a");
  mixed.values.Append(std::string(20000, 'b'));
  mixed.values.Append("");
  strings->SetRunningOrNotifyCancel();
  ASSERT_TRUE(strings->Complete(std::move(mixed)).ok());
  const auto& s = Future<ChunkResult<std::string>>(strings).Get();
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(*s[0].value, "a");
  EXPECT_EQ(*s[1].value, std::string(20000, 'b'));
  EXPECT_EQ(*s[2].value, "");

  Future<int> one = NewFuture();
  CallOutcomes single;
  single.values.Append(EncodeTaskValue(5));
  one.state()->SetRunningOrNotifyCancel();
  ASSERT_TRUE(one.state()->Complete(std::move(single)).ok());
  EXPECT_EQ(one.Get(), 5);

  Future<int> failed = NewFuture();
  CallOutcomes error;
  error.values.EndElement();
  error.errors.emplace_back(0, std::make_exception_ptr(std::logic_error("x")));
  failed.state()->SetRunningOrNotifyCancel();
  ASSERT_TRUE(failed.state()->Complete(std::move(error)).ok());
  EXPECT_THROW(failed.Get(), std::logic_error);

  auto bad = std::make_shared<State<ChunkResult<int>>>();
  CallOutcomes truncated;
  truncated.values.Append("\x01");  // 1 byte of a 4-byte int
  bad->SetRunningOrNotifyCancel();
  EXPECT_FALSE(bad->Complete(std::move(truncated)).ok());
  EXPECT_FALSE(bad->done());
}

TEST(Future, S28GetAndException) {
  Future<int> f = NewFuture();
  EXPECT_THROW(f.Get(absl::ZeroDuration()), TimeoutError);
  f.state()->SetRunningOrNotifyCancel();
  EXPECT_THROW(f.Get(absl::ZeroDuration()), TimeoutError);
  EXPECT_THROW(f.Exception(absl::ZeroDuration()), TimeoutError);

  Future<int> c = NewFuture();
  c.Cancel();
  EXPECT_THROW(c.Get(absl::ZeroDuration()), CancelledError);

  Future<int> failed = NewFuture();
  Fail(failed);
  std::exception_ptr e = failed.Exception();
  ASSERT_TRUE(e);
  EXPECT_THROW(std::rethrow_exception(e), std::invalid_argument);
  EXPECT_THROW(failed.Get(), std::invalid_argument);

  Future<int> ok = NewFuture();
  Finish(ok, 1);
  EXPECT_EQ(ok.Exception(), nullptr);
}

TEST(Future, SetTwiceIsInvalidState) {
  Future<int> f = NewFuture();
  Finish(f, 1);
  EXPECT_THROW(f.state()->SetException(std::make_exception_ptr(1)),
               InvalidStateError);
}

TEST(Future, S29CallbacksInOrderAndAfterThrow) {
  std::vector<int> order;
  Future<int> f = NewFuture();
  f.AddDoneCallback([&](const Future<int>&) { order.push_back(1); });
  f.AddDoneCallback([&](const Future<int>&) { throw std::runtime_error("x"); });
  f.AddDoneCallback([&](const Future<int>& g) {
    EXPECT_EQ(g, f);
    order.push_back(3);
  });
  EXPECT_TRUE(order.empty());
  Finish(f, 2);
  EXPECT_EQ(order, (std::vector<int>{1, 3}));
  f.AddDoneCallback([&](const Future<int>&) { order.push_back(4); });
  EXPECT_EQ(order, (std::vector<int>{1, 3, 4}));

  int on_cancel = 0, on_fail = 0;
  Future<int> c = NewFuture();
  c.AddDoneCallback([&](const Future<int>& g) { on_cancel += g.Cancelled(); });
  c.Cancel();
  Future<int> x = NewFuture();
  x.AddDoneCallback([&](const Future<int>&) { ++on_fail; });
  Fail(x);
  EXPECT_EQ(on_cancel, 1);
  EXPECT_EQ(on_fail, 1);
}

TEST(Future, S30BlockedGetWakesOnCancelAndResult) {
  // Cancel and finish only once Get() is asleep on the state: a Get() that
  // came late would find them done without ever blocking.
  // A lost wake-up would still return, at Get()'s 30 s timeout: the wake-up
  // must come well before.
  auto probe = std::make_shared<WaiterProbe>();
  Future<int> a = NewFuture();
  a.state()->SetDriver(probe);
  absl::Time returned;
  std::thread t([&] {
    EXPECT_THROW(a.Get(absl::Seconds(30)), CancelledError);
    returned = absl::Now();
  });
  EXPECT_TRUE(probe->AwaitBlockedWaiter(kTimeout)) << "Get() never blocked";
  absl::Time completed = absl::Now();
  EXPECT_TRUE(a.Cancel());
  t.join();
  EXPECT_LT(returned - completed, absl::Seconds(10)) << "not woken by Cancel";

  probe->Reset();
  Future<int> b = NewFuture();
  b.state()->SetDriver(probe);
  std::thread u([&] {
    EXPECT_EQ(b.Get(absl::Seconds(30)), 9);
    returned = absl::Now();
  });
  EXPECT_TRUE(probe->AwaitBlockedWaiter(kTimeout)) << "Get() never blocked";
  completed = absl::Now();
  Finish(b, 9);
  u.join();
  EXPECT_LT(returned - completed, absl::Seconds(10)) << "not woken by Finish";
}

TEST(Wait, S31Modes) {
  Future<int> done = NewFuture();
  Finish(done, 1);
  Future<int> pending = NewFuture();
  auto r = Wait<int>({done, pending, done}, absl::Milliseconds(50),
                     ReturnWhen::kFirstCompleted);
  EXPECT_EQ(r.done.size(), 1u);  // duplicates count once
  EXPECT_EQ(r.not_done.size(), 1u);

  r = Wait<int>({done, pending}, absl::Milliseconds(50),
                ReturnWhen::kAllCompleted);
  EXPECT_EQ(r.done.size(), 1u);  // timeout returns what is done, no throw
  EXPECT_EQ(r.not_done.size(), 1u);

  // kFirstException acts as kAllCompleted when nothing fails.
  r = Wait<int>({done, pending}, absl::Milliseconds(50),
                ReturnWhen::kFirstException);
  EXPECT_EQ(r.not_done.size(), 1u);
  // From here the other thread completes a future only once Wait() is
  // asleep, so that the completion has to wake it.
  auto probe = std::make_shared<WaiterProbe>();
  Future<int> failed = NewFuture();
  pending.state()->SetDriver(probe);
  failed.state()->SetDriver(probe);
  // (A lost wake-up would return at the 30 s timeout with the same sets:
  // the wake-up must come well before.)
  std::thread t([&] {
    EXPECT_TRUE(probe->AwaitBlockedWaiter(kTimeout)) << "Wait() never blocked";
    Fail(failed);
  });
  absl::Time start = absl::Now();
  r = Wait<int>({done, pending, failed}, absl::Seconds(30),
                ReturnWhen::kFirstException);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << "not woken by Fail";
  t.join();
  EXPECT_EQ(r.done.size(), 2u);
  EXPECT_EQ(r.not_done.size(), 1u);

  probe->Reset();
  std::thread u([&] {
    EXPECT_TRUE(probe->AwaitBlockedWaiter(kTimeout)) << "Wait() never blocked";
    Finish(pending, 3);
  });
  start = absl::Now();
  r = Wait<int>({done, pending, failed}, absl::Seconds(30),
                ReturnWhen::kAllCompleted);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << "not woken by Finish";
  u.join();
  EXPECT_EQ(r.done.size(), 3u);
  EXPECT_TRUE(r.not_done.empty());
}

TEST(AsCompleted, S32DoneFirstThenCompletionOrderThenTimeout) {
  std::vector<Future<int>> fs;
  auto probe = std::make_shared<WaiterProbe>();
  for (int i = 0; i < 4; ++i) {
    fs.push_back(NewFuture());
    fs.back().state()->SetDriver(probe);
  }
  Finish(fs[2], 2);
  // fs[3] completes while the iteration is asleep waiting for it.
  std::thread t([&] {
    EXPECT_TRUE(probe->AwaitBlockedWaiter(kTimeout))
        << "AsCompleted never blocked";
    Finish(fs[3], 3);
  });
  std::vector<int> seen;
  std::string error;
  try {
    for (const Future<int>& f : AsCompleted<int>({fs[0], fs[1], fs[2], fs[3], fs[2]},
                                                 absl::Milliseconds(300))) {
      seen.push_back(f.Get());
    }
  } catch (const TimeoutError& e) {
    error = e.what();
  }
  t.join();
  EXPECT_EQ(seen, (std::vector<int>{2, 3}));
  EXPECT_EQ(error, "2 (of 4) futures unfinished");
}

}  // namespace
}  // namespace procpool
