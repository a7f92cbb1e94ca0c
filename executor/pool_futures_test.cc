// S27-S32 of docs/SEMANTICS.md through a real pool (future_test.cc covers
// them in isolation).
#include <atomic>
#include <thread>

#include "executor/testdata/executor_test_base.h"

namespace procpool {
namespace testing {
namespace {

namespace tt = ::procpool::test_tasks;

class PoolFuturesTest : public ExecutorTest {};

TEST_P(PoolFuturesTest, S27StateTable) {
  ProcessPoolExecutor pool(MakeOptions(1));
  Future<int> running = pool.Submit(tt::SleepMs, 300);
  Future<int> prefetched = pool.Submit(tt::SleepMs, 1);
  Future<int> pending = pool.Submit(tt::SleepMs, 1);
  ASSERT_TRUE(WaitFor([&] { return running.Running(); }, kWait));
  EXPECT_FALSE(running.Cancel());
  EXPECT_FALSE(running.Done());
  EXPECT_TRUE(pending.Cancel() || prefetched.Cancel());
  EXPECT_EQ(running.Get(kWait), 300);
  EXPECT_FALSE(running.Cancel());
  EXPECT_TRUE(running.Done());
}

TEST_P(PoolFuturesTest, S28GetZeroAndException) {
  ProcessPoolExecutor pool(MakeOptions(1));
  Future<int> slow = pool.Submit(tt::SleepMs, 300);
  Future<int> queued = pool.Submit(tt::SleepMs, 1);
  Future<int> queued2 = pool.Submit(tt::SleepMs, 1);
  EXPECT_THROW(slow.Get(absl::ZeroDuration()), TimeoutError);
  EXPECT_TRUE(queued2.Cancel());
  EXPECT_THROW(queued2.Get(absl::ZeroDuration()), CancelledError);
  Future<int> fails = pool.Submit(tt::Throw, "out_of_range");
  std::exception_ptr e = fails.Exception(kWait);
  ASSERT_NE(e, nullptr);
  EXPECT_THROW(std::rethrow_exception(e), std::out_of_range);
  EXPECT_EQ(slow.Exception(kWait), nullptr);
}

TEST_P(PoolFuturesTest, S29CallbacksOnCompletionCancellationAndFailure) {
  ProcessPoolExecutor pool(MakeOptions(1));
  std::atomic<int> calls{0};
  Future<int> ok = pool.Submit(tt::SleepMs, 50);
  Future<int> fails = pool.Submit(tt::Throw, "runtime_error");
  Future<int> cancelled = pool.Submit(tt::SleepMs, 1);
  cancelled.AddDoneCallback([&](const Future<int>&) { ++calls; });
  EXPECT_TRUE(cancelled.Cancel());
  ok.AddDoneCallback([&](const Future<int>& f) { calls += f.Get() == 50; });
  fails.AddDoneCallback([&](const Future<int>& f) {
    calls += f.Exception() != nullptr;
  });
  ok.Get(kWait);
  fails.Exception(kWait);
  EXPECT_TRUE(WaitFor([&] { return calls.load() == 3; }, kWait));
}

TEST_P(PoolFuturesTest, S30BlockedGetWakesOnResultAndOnCancel) {
  ProcessPoolExecutor pool(MakeOptions(1));
  Future<int> running = pool.Submit(tt::SleepMs, 1000);
  Future<int> pending1 = pool.Submit(tt::SleepMs, 1);
  Future<int> pending2 = pool.Submit(tt::SleepMs, 1);
  ASSERT_TRUE(WaitFor([&] { return running.Running(); }, kWait));
  // One thread blocks in Get on a future that will complete, another on one
  // that will be cancelled; each records how its Get ended.
  enum Outcome { kBlocked, kValue, kCancelled, kOtherError };
  std::atomic<int> on_result{kBlocked}, on_cancel{kBlocked};
  std::atomic<int> started{0};
  auto wait_on = [&](Future<int>& f, std::atomic<int>& outcome) {
    ++started;
    try {
      f.Get(kWait);
      outcome = kValue;
    } catch (const CancelledError&) {
      outcome = kCancelled;
    } catch (...) {
      outcome = kOtherError;
    }
  };
  std::thread result_waiter([&] { wait_on(running, on_result); });
  std::thread cancel_waiter([&] { wait_on(pending2, on_cancel); });
  // (EXPECT, not ASSERT, from here on: the threads are joined below.)
  EXPECT_TRUE(WaitFor([&] { return started.load() == 2; }, kWait));
  absl::SleepFor(absl::Milliseconds(20));  // into Get (no state to wait on)
  // The running task is still running: neither waiter can have returned.
  EXPECT_EQ(on_result.load(), kBlocked);
  EXPECT_EQ(on_cancel.load(), kBlocked);
  // pending2 is still queued behind the running task and pending1 (at most
  // one task is handed to the busy worker ahead of time): it can be
  // cancelled, and the blocked Get wakes with CancelledError at once.
  EXPECT_TRUE(pending2.Cancel());
  EXPECT_TRUE(WaitFor([&] { return on_cancel.load() != kBlocked; }, kWait));
  EXPECT_EQ(on_cancel.load(), kCancelled);
  EXPECT_TRUE(pending2.Cancelled());
  cancel_waiter.join();
  // The other waiter wakes with the value when the task ends.
  result_waiter.join();
  EXPECT_EQ(on_result.load(), kValue);
  EXPECT_EQ(running.Get(kWait), 1000);
  EXPECT_EQ(pending1.Get(kWait), 1);
}

TEST_P(PoolFuturesTest, S31WaitModes) {
  ProcessPoolExecutor pool(MakeOptions(2));
  Future<int> fast = pool.Submit(tt::SleepMs, 1);
  fast.Get(kWait);
  Future<int> slow = pool.Submit(tt::SleepMs, 2000);
  auto r = Wait<int>({fast, slow, fast}, kWait, ReturnWhen::kFirstCompleted);
  EXPECT_EQ(r.done.size(), 1u);
  EXPECT_EQ(r.not_done.size(), 1u);
  r = Wait<int>({fast, slow}, absl::Milliseconds(50));
  EXPECT_EQ(r.not_done.size(), 1u);
  Future<int> fails = pool.Submit(tt::Throw, "logic_error");
  r = Wait<int>({slow, fails}, kWait, ReturnWhen::kFirstException);
  EXPECT_EQ(r.done.size(), 1u);
  EXPECT_EQ(r.done[0], fails);
  r = Wait<int>({fast, slow, fails}, kWait, ReturnWhen::kAllCompleted);
  EXPECT_EQ(r.done.size(), 3u);
}

TEST_P(PoolFuturesTest, S32AsCompleted) {
  ProcessPoolExecutor pool(MakeOptions(2));
  Future<int> done1 = pool.Submit(tt::SleepMs, 1);
  Future<int> done2 = pool.Submit(tt::SleepMs, 2);
  done1.Get(kWait);
  done2.Get(kWait);
  Future<int> slow1 = pool.Submit(tt::SleepMs, 1500);
  Future<int> slow2 = pool.Submit(tt::SleepMs, 1500);
  std::vector<int> seen;
  std::string error;
  try {
    for (const Future<int>& f :
         AsCompleted<int>({done1, slow1, done2, slow2, done1},
                          absl::Milliseconds(300))) {
      seen.push_back(f.Get());
    }
  } catch (const TimeoutError& e) {
    error = e.what();
  }
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  EXPECT_EQ(error, "2 (of 4) futures unfinished");
  pool.Shutdown(/*wait=*/false, /*cancel_futures=*/true);
  std::vector<int> rest;
  for (const Future<int>& f : AsCompleted<int>({slow1, slow2}, kWait)) {
    rest.push_back(f.Get());
  }
  EXPECT_EQ(rest.size(), 2u);
}

INSTANTIATE_EXECUTOR_SUITE(PoolFuturesTest);

}  // namespace
}  // namespace testing
}  // namespace procpool
