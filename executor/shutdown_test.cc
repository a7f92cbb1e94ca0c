// S16-S21 of docs/SEMANTICS.md: cancellation, shutdown, terminating
// workers, Submit never blocks.
#include <signal.h>

#include <atomic>
#include <thread>

#include "executor/testdata/executor_test_base.h"

namespace procpool {
namespace testing {
namespace {

namespace tt = ::procpool::test_tasks;

class ShutdownTest : public ExecutorTest {};

template <typename T>
bool AnyRunning(const std::vector<Future<T>>& fs) {
  for (const auto& f : fs) {
    if (f.Running()) return true;
  }
  return false;
}

TEST_P(ShutdownTest, S16CancelSucceedsOnlyWhilePending) {
  ProcessPoolExecutor pool(MakeOptions(1));
  std::vector<Future<int>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(pool.Submit(tt::SleepMs, 300));
  ASSERT_TRUE(WaitFor([&] { return fs[0].Running(); }, kWait));
  EXPECT_FALSE(fs[0].Cancel());
  int cancelled = 0;
  for (size_t i = 1; i < fs.size(); ++i) cancelled += fs[i].Cancel();
  // At most one queued task beyond the running one was handed out early.
  EXPECT_GE(cancelled, 4);
  EXPECT_EQ(fs[0].Get(kWait), 300);
  EXPECT_TRUE(fs[5].Cancelled());
  EXPECT_THROW(fs[5].Get(kWait), CancelledError);
}

TEST_P(ShutdownTest, S17SubmitAfterShutdownAndIdempotence) {
  ProcessPoolExecutor pool(MakeOptions());
  EXPECT_EQ(pool.Submit(tt::Pow, 2, 3).Get(kWait), 8);
  pool.Shutdown();
  pool.Shutdown();
  pool.Shutdown(false, true);
  EXPECT_THROW(pool.Submit(tt::Pow, 2, 3), ShutdownError);
  EXPECT_THROW(pool.Map(tt::FailIfThree, std::vector<int>{1}), ShutdownError);
}

TEST_P(ShutdownTest, S17DestructorWaitsLikeShutdown) {
  std::vector<Future<int>> fs;
  {
    ProcessPoolExecutor pool(MakeOptions());
    for (int i = 0; i < 4; ++i) fs.push_back(pool.Submit(tt::SleepMs, 50));
  }
  for (auto& f : fs) {
    EXPECT_TRUE(f.Done());
    EXPECT_EQ(f.Get(absl::ZeroDuration()), 50);
  }
}

TEST_P(ShutdownTest, S18ShutdownWaitAndNoWait) {
  {
    ProcessPoolExecutor pool(MakeOptions());
    std::vector<Future<int>> fs;
    for (int i = 0; i < 4; ++i) fs.push_back(pool.Submit(tt::SleepMs, 50));
    pool.Shutdown(/*wait=*/true);
    for (auto& f : fs) EXPECT_TRUE(f.Done());
    EXPECT_TRUE(pool.WorkerPids().empty());
    EXPECT_TRUE(ChildPidsExceptForkServer().empty());
  }
  {
    ProcessPoolExecutor pool(MakeOptions());
    Future<int> slow = pool.Submit(tt::SleepMs, 1500);
    pool.Shutdown(/*wait=*/false);
    EXPECT_FALSE(slow.Done());  // returned at once
    EXPECT_EQ(slow.Get(kWait), 1500);  // and the work still completed
  }
}

TEST_P(ShutdownTest, S19ShutdownCancelFutures) {
  ProcessPoolExecutor pool(MakeOptions(5));
  std::vector<Future<int>> fs;
  for (int i = 0; i < 50; ++i) fs.push_back(pool.Submit(tt::SleepMs, 100));
  ASSERT_TRUE(WaitFor([&] { return AnyRunning(fs); }, kWait));
  pool.Shutdown(/*wait=*/true, /*cancel_futures=*/true);
  int cancelled = 0, ran = 0;
  for (auto& f : fs) {
    ASSERT_TRUE(f.Done());
    if (f.Cancelled()) {
      ++cancelled;
    } else {
      EXPECT_EQ(f.Exception(absl::ZeroDuration()), nullptr);
      ++ran;
    }
  }
  EXPECT_GT(cancelled, 25);
  EXPECT_GE(ran, 1);
}

TEST_P(ShutdownTest, S20TerminateAndKillWorkers) {
  for (bool terminate : {true, false}) {
    SCOPED_TRACE(terminate ? "TerminateWorkers" : "KillWorkers");
    ProcessPoolExecutor pool(MakeOptions(2));
    std::vector<Future<int>> fs;
    for (int i = 0; i < 2; ++i) fs.push_back(pool.Submit(tt::SleepMs, 20000));
    Future<int> queued = pool.Submit(tt::SleepMs, 20000);
    ASSERT_TRUE(WaitFor([&] { return fs[0].Running() && fs[1].Running(); },
                        kWait));
    std::vector<pid_t> pids = pool.WorkerPids();
    if (terminate) {
      pool.TerminateWorkers();
    } else {
      pool.KillWorkers();
    }
    for (auto& f : fs) EXPECT_THROW(f.Get(kWait), BrokenProcessPool);
    EXPECT_TRUE(queued.Done());
    EXPECT_THROW(pool.Submit(tt::Noop), ShutdownError);
    EXPECT_TRUE(WaitFor([&] { return pool.WorkerPids().empty(); }, kWait));
    for (pid_t pid : pids) {
      EXPECT_TRUE(WaitFor([&] { return !IsAlive(pid); }, kWait));
    }
    EXPECT_TRUE(WaitFor([] { return ChildPidsExceptForkServer().empty(); },
                        kWait));
  }
}

TEST_P(ShutdownTest, S20TerminateIsANoOpWithoutWorkersOrWhenBroken) {
  {
    ProcessPoolExecutor pool(MakeOptions());
    pool.TerminateWorkers();
    pool.KillWorkers();
  }
  {
    ProcessPoolExecutor pool(MakeOptions(1));
    EXPECT_THROW(pool.Submit(tt::DieBy, "SIGKILL").Get(kWait),
                 BrokenProcessPool);
    pool.TerminateWorkers();
    pool.KillWorkers();
  }
}

TEST_P(ShutdownTest, S21SubmitNeverBlocksWhileBusy) {
  ProcessPoolExecutor pool(MakeOptions(2));
  std::atomic<int> submitted{0};
  std::vector<std::thread> threads;
  std::vector<std::vector<Future<int>>> per_thread(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        per_thread[t].push_back(pool.Submit(tt::Pow, 2, i % 10));
        ++submitted;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(submitted.load(), 8000);
  for (auto& fs : per_thread) {
    for (size_t i = 0; i < fs.size(); ++i) {
      EXPECT_EQ(fs[i].Get(kWait), 1 << (i % 10));
    }
  }
}

INSTANTIATE_EXECUTOR_SUITE(ShutdownTest);

}  // namespace
}  // namespace testing
}  // namespace procpool
