// Beyond CPython (issue 6): per-task timeouts, pools that survive worker
// death, interrupting running work, memory caps and recycling, idle
// timeouts, hung-worker detection, statistics and Map progress.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <string>

#include "executor/testdata/executor_test_base.h"

namespace procpool {
namespace testing {
namespace {

namespace tt = ::procpool::test_tasks;

class BeyondTest : public ExecutorTest {
 protected:
  std::string TempPath(const std::string& name) {
    const char* dir = getenv("TEST_TMPDIR");
    std::string test =
        ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(test.begin(), test.end(), '/', '_');
    return std::string(dir ? dir : "/tmp") + "/" + name + "_" +
           std::to_string(getpid()) + "_" + test;
  }
};

TEST_P(BeyondTest, PerTaskTimeoutKillsAndReplacesTheWorker) {
  ProcessPoolExecutor pool(MakeOptions(1));
  int before = pool.Submit(tt::GetPid).Get(kWait);
  TaskOptions t;
  t.timeout = absl::Milliseconds(200);
  Future<int> slow = pool.SubmitWith(t, tt::SleepMs, 20000);
  Future<int> behind = pool.Submit(tt::Pow, 2, 5);  // not its fault: reruns
  try {
    slow.Get(kWait);
    ADD_FAILURE() << "no timeout";
  } catch (const TimeoutError& e) {
    EXPECT_NE(std::string(e.what()).find("exceeded its timeout of 200ms"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(behind.Get(kWait), 32);
  int after = pool.Submit(tt::GetPid).Get(kWait);
  EXPECT_NE(before, after);
  EXPECT_FALSE(IsAlive(before));
  TaskOptions roomy;
  roomy.timeout = absl::Seconds(30);
  EXPECT_EQ(pool.SubmitWith(roomy, tt::SleepMs, 10).Get(kWait), 10);
}

TEST_P(BeyondTest, MapChunkTimeout) {
  ProcessPoolExecutor pool(MakeOptions(2));
  MapOptions o;
  // Generous: the 10 ms chunks must finish within it on a loaded 2-core
  // machine under a sanitizer, cold workers included; the middle chunk's
  // worker is killed at the bound (so its 20 s are never waited for).
  o.chunk_timeout = absl::Seconds(2);
  o.timeout = kWait;
  auto results = pool.Map(tt::SleepMs, std::vector<int>{10, 20000, 10}, o);
  auto it = results.begin();
  EXPECT_EQ(*it, 10);
  ++it;
  EXPECT_THROW(*it, TimeoutError);
  ++it;
  EXPECT_EQ(*it, 10);
}

TEST_P(BeyondTest, ReplaceWorkerFailsOnlyTheDeadWorkersFutures) {
  Options o = MakeOptions(2);
  o.on_worker_death = WorkerDeathPolicy::kReplaceWorker;
  ProcessPoolExecutor pool(o);
  Future<int> survivor = pool.Submit(tt::SleepMs, 300);
  Future<int> dies = pool.Submit(tt::SleepThenDie, 50, "SIGSEGV");
  try {
    dies.Get(kWait);
    ADD_FAILURE() << "no exception";
  } catch (const WorkerDiedError& e) {
    EXPECT_EQ(e.signal(), SIGSEGV) << e.what();
    EXPECT_NE(e.stack().find("DieBy"), std::string::npos) << e.what();
    EXPECT_EQ(e.crash().task_name, "tt::SleepThenDie");
  }
  EXPECT_EQ(survivor.Get(kWait), 300);
  EXPECT_EQ(pool.Submit(tt::Pow, 3, 3).Get(kWait), 27);  // the pool goes on
  std::vector<WorkerStats> stats = pool.Stats();
  ASSERT_FALSE(stats.empty());
  EXPECT_GE(stats[0].restarts, 1);
}

TEST_P(BeyondTest, RetriesRunATaskAgainAfterItsWorkerDied) {
  Options o = MakeOptions(1);
  o.on_worker_death = WorkerDeathPolicy::kReplaceWorker;
  o.max_retries = 2;
  ProcessPoolExecutor pool(o);
  std::string marker = TempPath("die_once");
  unlink(marker.c_str());
  EXPECT_EQ(pool.Submit(tt::DieOnceThenReturn, marker).Get(kWait), 7);
  unlink(marker.c_str());
  // Out of retries: the future fails with the crash report.
  EXPECT_THROW(pool.Submit(tt::DieBy, "SIGKILL").Get(kWait), WorkerDiedError);
  EXPECT_EQ(pool.Submit(tt::Pow, 2, 2).Get(kWait), 4);
}

// A big argument is sent from the pool's own copy (not copied into a frame):
// that copy must still be there for the work's second run.
TEST_P(BeyondTest, ABigArgumentRunsAgainIntact) {
  Options o = MakeOptions(1);
  o.on_worker_death = WorkerDeathPolicy::kReplaceWorker;
  o.max_retries = 1;
  ProcessPoolExecutor pool(o);
  std::string payload(3 << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7);
  std::string marker = TempPath("die_once_big");
  unlink(marker.c_str());
  EXPECT_TRUE(pool.Submit(tt::DieOnceThenEcho, marker, payload).Get(kWait) ==
              payload);
  unlink(marker.c_str());
  // Behind a task killed for its timeout (run elsewhere: not its fault).
  TaskOptions t;
  t.timeout = absl::Milliseconds(200);
  Future<int> slow = pool.SubmitWith(t, tt::SleepMs, 20000);
  Future<std::string> behind = pool.Submit(tt::Echo, payload);
  EXPECT_THROW(slow.Get(kWait), TimeoutError);
  EXPECT_TRUE(behind.Get(kWait) == payload);
}

TEST_P(BeyondTest, InterruptCancelsRunningWork) {
  ProcessPoolExecutor pool(MakeOptions(1));
  Future<int> running = pool.Submit(tt::SleepMs, 20000);
  Future<int> pending = pool.Submit(tt::SleepMs, 20000);
  Future<int> third = pool.Submit(tt::Pow, 2, 3);
  ASSERT_TRUE(WaitFor([&] { return running.Running(); }, kWait));
  EXPECT_TRUE(running.Interrupt());
  EXPECT_TRUE(pending.Interrupt());
  EXPECT_THROW(running.Get(kWait), CancelledError);
  EXPECT_TRUE(running.Cancelled());
  EXPECT_THROW(pending.Get(kWait), CancelledError);
  EXPECT_EQ(third.Get(kWait), 8);
  EXPECT_FALSE(third.Interrupt());  // already finished
}

TEST_P(BeyondTest, MemoryCapFailsTheTaskSayingSo) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizers reserve more address space than any cap";
#endif
  Options o = MakeOptions(1);
  o.max_memory_bytes_per_worker = int64_t{3} << 30;
  ProcessPoolExecutor pool(o);
  try {
    pool.Submit(tt::AllocateMiB, 4096).Get(kWait);
    ADD_FAILURE() << "allocated past the cap";
  } catch (const MemoryLimitError& e) {
    EXPECT_NE(std::string(e.what()).find("memory cap"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(pool.Submit(tt::AllocateMiB, 16).Get(kWait), 16 << 20);
}

TEST_P(BeyondTest, WorkersKeepFreedMemoryUntilIdle) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers' allocators ignore mallopt";
#endif
  if (GetParam().start_method == StartMethod::kFork) {
    GTEST_SKIP() << "a forked worker's thread keeps the forking thread's "
                    "malloc arena, a secondary one, where glibc serves "
                    "blocks over 64 MiB with mmap anyway";
  }
  constexpr int64_t kMiB = 1 << 20;
  for (bool keep : {true, false}) {
    SCOPED_TRACE(keep ? "workers_keep_freed_memory" : "not kept");
    Options o = MakeOptions(1);
    o.workers_keep_freed_memory = keep;
    ProcessPoolExecutor pool(o);
    auto rss = [&] {
      std::vector<WorkerStats> stats = pool.Stats();
      return stats.size() == 1 ? stats[0].rss_bytes : int64_t{-1};
    };
    ASSERT_EQ(pool.Submit(tt::Pow, 2, 2).Get(kWait), 4);
    const int64_t base = rss();
    ASSERT_GT(base, 0);
    ASSERT_EQ(pool.Submit(tt::AllocateMiB, 200).Get(kWait), 200 * kMiB);
    const int64_t after = rss() - base;
    if (keep) {
      // Kept for the next task, then given back once the worker is idle.
      EXPECT_GT(after, 150 * kMiB);
      EXPECT_TRUE(WaitFor([&] { return rss() - base < 50 * kMiB; }, kWait))
          << "still " << (rss() - base) / kMiB << " MiB more than at start";
    } else {
      EXPECT_LT(after, 50 * kMiB);
    }
  }
}

TEST_P(BeyondTest, LeakingWorkerIsRecycled) {
  Options o = MakeOptions(1);
  o.max_rss_growth_bytes = 64 << 20;
  ProcessPoolExecutor pool(o);
  int leaker = pool.Submit(tt::LeakMiB, 100).Get(kWait);
  EXPECT_TRUE(WaitFor([&] { return !IsAlive(leaker); }, kWait));
  int next = pool.Submit(tt::GetPid).Get(kWait);
  EXPECT_NE(next, leaker);
}

TEST_P(BeyondTest, IdleWorkersExitAndComeBack) {
  Options o = MakeOptions(2);
  o.idle_timeout = absl::Milliseconds(200);
  ProcessPoolExecutor pool(o);
  int first = pool.Submit(tt::GetPid).Get(kWait);
  EXPECT_TRUE(WaitFor([&] { return pool.WorkerPids().empty(); }, kWait));
  EXPECT_FALSE(IsAlive(first));
  int second = pool.Submit(tt::GetPid).Get(kWait);
  EXPECT_NE(first, second);
}

TEST_P(BeyondTest, HungWorkerIsDetectedByHeartbeats) {
  for (WorkerDeathPolicy policy :
       {WorkerDeathPolicy::kReplaceWorker, WorkerDeathPolicy::kBreakPool}) {
    Options o = MakeOptions(1);
    // 1 s (beats every 250 ms): a worker thread starved on a loaded 2-core
    // machine under a sanitizer is not taken for a hung one.
    o.heartbeat_timeout = absl::Seconds(1);
    o.on_worker_death = policy;
    ProcessPoolExecutor pool(o);
    int pid = pool.Submit(tt::GetPid).Get(kWait);
    Future<int> stuck = pool.Submit(tt::SleepMs, 300);
    kill(pid, SIGSTOP);
    try {
      stuck.Get(kWait);
      ADD_FAILURE() << "a stopped worker's task completed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("stopped responding"),
                std::string::npos)
          << e.what();
      if (policy == WorkerDeathPolicy::kReplaceWorker) {
        EXPECT_NE(dynamic_cast<const WorkerDiedError*>(&e), nullptr);
      } else {
        EXPECT_NE(dynamic_cast<const BrokenProcessPool*>(&e), nullptr);
      }
    }
    if (policy == WorkerDeathPolicy::kReplaceWorker) {
      EXPECT_EQ(pool.Submit(tt::Pow, 2, 4).Get(kWait), 16);
    }
  }
}

// A worker that never says hello (stuck in a static initializer; a fork child
// that inherited a lock held at fork time) is killed after
// Options::worker_start_timeout, and the pool breaks saying why instead of
// waiting for ever. Here the worker binary only sleeps.
TEST_P(BeyondTest, WorkerThatNeverSaysHelloIsKilledAfterTheStartTimeout) {
  if (GetParam().start_method != StartMethod::kSpawn) {
    GTEST_SKIP() << "the sleeping worker binary is exec'd as a worker only "
                    "by kSpawn (kForkServer would exec it as its server)";
  }
  const std::string script = TempPath("sleeper.sh");
  {
    std::ofstream out(script);
    out << "#!/bin/sh\nexec sleep 60\n";
  }
  ASSERT_EQ(chmod(script.c_str(), 0755), 0);
  Options o = MakeOptions(1);
  o.worker_binary = script;
  o.worker_start_timeout = absl::Milliseconds(300);
  ProcessPoolExecutor pool(o);
  Future<int> f = pool.Submit(tt::GetPid);
  try {
    f.Get(kWait);
    ADD_FAILURE() << "a worker that never started ran a task";
  } catch (const BrokenProcessPool& e) {
    EXPECT_NE(std::string(e.what()).find("Options::worker_start_timeout"),
              std::string::npos)
        << e.what();
  }
  pool.Shutdown();
  EXPECT_TRUE(pool.WorkerPids().empty());
  unlink(script.c_str());
}

TEST_P(BeyondTest, LongTasksKeepBeating) {
  Options o = MakeOptions(1);
  // A task three heartbeat timeouts long; the timeout is generous (1 s, beats
  // every 250 ms) so that a starved worker thread does not fail the test.
  o.heartbeat_timeout = absl::Seconds(1);
  ProcessPoolExecutor pool(o);
  EXPECT_EQ(pool.Submit(tt::SleepMs, 3000).Get(kWait), 3000);
}

TEST_P(BeyondTest, StatsAndMapProgress) {
  ProcessPoolExecutor pool(MakeOptions(2));
  std::atomic<size_t> progress{0};
  MapOptions o;
  o.chunksize = 3;
  o.on_progress = [&](size_t done) { progress = done; };
  std::vector<int> inputs(20, 1);
  EXPECT_EQ(pool.Map(tt::SleepMs, inputs, o).ToVector().size(), 20u);
  EXPECT_EQ(progress.load(), 20u);
  std::vector<WorkerStats> stats = pool.Stats();
  int64_t total = 0;
  for (const WorkerStats& s : stats) {
    EXPECT_GT(s.pid, 0);
    EXPECT_GT(s.rss_bytes, 0);
    EXPECT_EQ(s.current_task, "");
    total += s.tasks_run;
  }
  EXPECT_EQ(total, 7);  // 20 elements in chunks of 3
}

TEST_P(BeyondTest, ExceptionsCarryTheThrowSiteStack) {
  ProcessPoolExecutor pool(MakeOptions(1));
  try {
    pool.Submit(tt::Throw, "overflow_error").Get(kWait);
    ADD_FAILURE() << "no exception";
  } catch (const std::overflow_error& e) {
    const RemoteTraceback* tb = GetRemoteTraceback(e);
    ASSERT_NE(tb, nullptr);
    // The first frame is the function that threw, not the worker's handler.
    EXPECT_EQ(tb->traceback().find("  #0 procpool::test_tasks::Throw"), 0u)
        << tb->traceback();
  }
}

INSTANTIATE_EXECUTOR_SUITE(BeyondTest);

}  // namespace
}  // namespace testing
}  // namespace procpool
