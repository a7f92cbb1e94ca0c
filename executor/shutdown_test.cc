// S16-S21 of docs/SEMANTICS.md: cancellation, shutdown, terminating
// workers, Submit never blocks.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "executor/testdata/executor_test_base.h"

namespace procpool {
namespace testing {
namespace {

namespace tt = ::procpool::test_tasks;

class ShutdownTest : public ExecutorTest {};

// Waits (polling, in the worker) until `path` exists, at most `max_ms`:
// returns 1 when it does, 0 on timeout. Keeps a worker busy until the test
// says go.
int WaitForFile(const std::string& path, int max_ms) {
  const absl::Time deadline = absl::Now() + absl::Milliseconds(max_ms);
  while (access(path.c_str(), F_OK) != 0) {
    if (absl::Now() > deadline) return 0;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return 1;
}

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
  // Both workers busy until this file exists (a bounded wait of their own).
  const char* tmp = getenv("TEST_TMPDIR");
  const std::string go = absl::StrCat(tmp ? tmp : "/tmp", "/s21_go_", getpid());
  unlink(go.c_str());
  // Creating the file releases them; done on every way out of the test, so
  // that a failed assertion does not leave the pool's destructor waiting.
  auto release = [&go] {
    const int fd = open(go.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) close(fd);
  };
  struct ReleaseAtExit {
    std::function<void()> release;
    ~ReleaseAtExit() { release(); }
  } release_at_exit{release};
  std::vector<Future<int>> blockers;
  for (int i = 0; i < 2; ++i) {
    blockers.push_back(pool.Submit(WaitForFile, go, 120000));
  }
  ASSERT_TRUE(WaitFor(
      [&] { return blockers[0].Running() && blockers[1].Running(); }, kWait))
      << "the two blocking tasks did not both start";
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
  // Every Submit returns while no worker is free (bounded: a Submit that
  // waited for a worker would hold this until the bound, not hang).
  const bool all_submitted =
      WaitFor([&] { return submitted.load() == 8000; }, kWait);
  const int returned_while_busy = submitted.load();
  const bool still_busy = !blockers[0].Done() && !blockers[1].Done();
  // Release the workers whatever happened, so that the threads end.
  release();
  for (auto& t : threads) t.join();
  EXPECT_TRUE(all_submitted) << "only " << returned_while_busy
                             << " of 8000 Submit calls returned while busy";
  EXPECT_TRUE(still_busy) << "a blocking task ended before its file existed";
  EXPECT_EQ(submitted.load(), 8000);
  for (auto& b : blockers) EXPECT_EQ(b.Get(kWait), 1);
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

PROCPOOL_TASK(procpool::testing::WaitForFile);
