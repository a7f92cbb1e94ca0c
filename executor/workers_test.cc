// S6-S12 of docs/SEMANTICS.md: workers start on demand, are reused and
// recycled, run the initializer, die with the parent; bad options and binaries
// are clear errors.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>

#include "executor/testdata/executor_test_base.h"
#include "transport/transport.h"

namespace procpool {
namespace testing {
namespace {

namespace tt = ::procpool::test_tasks;

class WorkersTest : public ExecutorTest {};

TEST_P(WorkersTest, S6WorkersStartOnDemandUpToMax) {
  ProcessPoolExecutor pool(MakeOptions(2));
  EXPECT_TRUE(pool.WorkerPids().empty());
  std::vector<Future<int>> fs;
  for (int i = 0; i < 15 * 2; ++i) fs.push_back(pool.Submit(tt::SleepThenPid, 20));
  std::set<int> pids;
  for (auto& f : fs) pids.insert(f.Get(kWait));
  EXPECT_EQ(pids.size(), 2u);
}

TEST_P(WorkersTest, S7IdleWorkerIsReused) {
  ProcessPoolExecutor pool(MakeOptions(4));
  int a = pool.Submit(tt::GetPid).Get(kWait);
  int b = pool.Submit(tt::GetPid).Get(kWait);
  int c = pool.Submit(tt::GetPid).Get(kWait);
  EXPECT_EQ(a, b);
  EXPECT_EQ(b, c);
  EXPECT_EQ(pool.WorkerPids().size(), 1u);
}

TEST_P(WorkersTest, S8MaxTasksPerChildRecyclesWorkers) {
  if (IsFork()) GTEST_SKIP() << "kFork rejects max_tasks_per_child (S11)";
  Options o = MakeOptions(1);
  o.max_tasks_per_child = 3;
  ProcessPoolExecutor pool(o);
  std::vector<int> pids;
  for (int i = 0; i < 4; ++i) pids.push_back(pool.Submit(tt::GetPid).Get(kWait));
  EXPECT_EQ(pids[0], pids[1]);
  EXPECT_EQ(pids[1], pids[2]);
  EXPECT_NE(pids[2], pids[3]);
  EXPECT_TRUE(WaitFor([&] { return pool.WorkerPids().size() == 1; }, kWait));
  EXPECT_FALSE(IsAlive(pids[0]));

  // A backlog with recycling never deadlocks.
  std::vector<Future<int>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(pool.Submit(tt::GetPid));
  std::set<int> distinct;
  for (auto& f : fs) distinct.insert(f.Get(kWait));
  EXPECT_GE(distinct.size(), 7u);

  // Shutdown with queued tasks still finishes them on replacement workers.
  fs.clear();
  for (int i = 0; i < 7; ++i) fs.push_back(pool.Submit(tt::GetPid));
  pool.Shutdown(/*wait=*/true);
  for (auto& f : fs) {
    ASSERT_TRUE(f.Done());
    EXPECT_GT(f.Get(absl::ZeroDuration()), 0);
  }
}

TEST_P(WorkersTest, S9InitializerRunsOnceBeforeFirstTask) {
  Options o = MakeOptions(2);
  o.initializer = MakeCall(tt::SetInitValue, 42);
  ProcessPoolExecutor pool(o);
  std::vector<Future<int>> values, calls;
  for (int i = 0; i < 10; ++i) {
    values.push_back(pool.Submit(tt::GetInitValue));
    calls.push_back(pool.Submit(tt::GetInitCalls));
  }
  for (auto& f : values) EXPECT_EQ(f.Get(kWait), 42);
  for (auto& f : calls) EXPECT_EQ(f.Get(kWait), 1);
}

TEST_P(WorkersTest, S9InitializerThatThrowsBreaksThePool) {
  Options o = MakeOptions(1);
  o.initializer = MakeCall(tt::InitThrows);
  ProcessPoolExecutor pool(o);
  Future<int> f = pool.Submit(tt::Pow, 2, 2);
  try {
    f.Get(kWait);
    ADD_FAILURE() << "no exception";
  } catch (const BrokenExecutor& e) {
    EXPECT_NE(std::string(e.what()).find("initializer failed on purpose"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(WaitFor([&] {
    try {
      pool.Submit(tt::Pow, 1, 1);
      return false;
    } catch (const BrokenProcessPool&) {
      return true;
    }
  }, kWait));
}

TEST_P(WorkersTest, S9InitializerThatDiesBreaksThePool) {
  Options o = MakeOptions(1);
  o.initializer = MakeCall(tt::InitDies);
  ProcessPoolExecutor pool(o);
  try {
    pool.Submit(tt::Pow, 2, 2).Get(kWait);
    ADD_FAILURE() << "no exception";
  } catch (const BrokenProcessPool& e) {
    EXPECT_EQ(e.exit_code(), 7) << e.what();
    EXPECT_NE(std::string(e.what()).find("exit code 7"), std::string::npos)
        << e.what();
  }
}

TEST_P(WorkersTest, S10WorkersIgnoreSigint) {
  ProcessPoolExecutor pool(MakeOptions(1));
  EXPECT_EQ(pool.Submit(tt::RaiseSigintAndReturn, 5).Get(kWait), 5);
}

TEST_P(WorkersTest, S10WorkersDieWithTheirParent) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    int worker_pid = -1;
    {
      ProcessPoolExecutor pool(MakeOptions(1));
      worker_pid = pool.Submit(tt::GetPid).Get(kWait);
      ssize_t ignored = write(fds[1], &worker_pid, sizeof(worker_pid));
      (void)ignored;
      absl::SleepFor(absl::Seconds(60));  // killed long before this
    }
    _exit(0);
  }
  close(fds[1]);
  int worker_pid = -1;
  ASSERT_EQ(read(fds[0], &worker_pid, sizeof(worker_pid)),
            static_cast<ssize_t>(sizeof(worker_pid)));
  close(fds[0]);
  ASSERT_TRUE(IsAlive(worker_pid));
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_TRUE(WaitFor([&] { return !IsAlive(worker_pid); }, kWait))
      << "worker " << worker_pid << " outlived its parent";
}

TEST_P(WorkersTest, S11BadOptionsAreInvalidArgument) {
  auto expect_invalid = [](Options o, const std::string& needle) {
    try {
      ProcessPoolExecutor pool(o);
      ADD_FAILURE() << "accepted; expected an error about " << needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
          << e.what();
    }
  };
  Options o = MakeOptions();
  o.max_workers = 0;
  expect_invalid(o, "max_workers");
  o.max_workers = -1;
  expect_invalid(o, "max_workers");
  o = MakeOptions();
  o.max_tasks_per_child = 0;
  expect_invalid(o, "max_tasks_per_child");
  o = MakeOptions();
  o.start_method = StartMethod::kFork;
  o.max_tasks_per_child = 2;
  expect_invalid(o, "kFork");
  o = MakeOptions();
  o.transport = "carrier-pigeon";
  expect_invalid(o, "known transports: ");
  o = MakeOptions();
  o.initializer = Call{"NoSuchTask", ""};
  expect_invalid(o, "not a registered task");
  o = MakeOptions();
  o.worker_start_timeout = absl::ZeroDuration();
  expect_invalid(o, "worker_start_timeout must be positive");
  if (GetTransport("capnp").ok()) {
    o = MakeOptions();
    o.transport = "capnp";
    o.start_method = StartMethod::kFork;
    expect_invalid(o, "kFork");
  }
}

TEST_P(WorkersTest, S12MissingWorkerBinaryBreaksThePoolSayingWhy) {
  if (IsFork()) GTEST_SKIP() << "kFork runs no binary";
  Options o = MakeOptions(1);
  o.worker_binary = "/nonexistent/procpool_worker";
  ProcessPoolExecutor pool(o);
  try {
    pool.Submit(tt::Pow, 2, 2).Get(kWait);
    ADD_FAILURE() << "no exception";
  } catch (const BrokenProcessPool& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "could not be started: /nonexistent/procpool_worker: No such "
                  "file or directory"),
              std::string::npos)
        << e.what();
  }
}

TEST_P(WorkersTest, S12NonExecutableWorkerBinary) {
  if (IsFork()) GTEST_SKIP() << "kFork runs no binary";
  std::string path = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR")
                                                       : "/tmp") +
                     "/not_executable_" + std::to_string(getpid());
  { std::ofstream(path) << "#!/bin/sh\n"; }
  chmod(path.c_str(), 0644);
  Options o = MakeOptions(1);
  o.worker_binary = path;
  ProcessPoolExecutor pool(o);
  try {
    pool.Submit(tt::Pow, 2, 2).Get(kWait);
    ADD_FAILURE() << "no exception";
  } catch (const BrokenProcessPool& e) {
    EXPECT_NE(std::string(e.what()).find("could not be started: " + path +
                                         ": Permission denied"),
              std::string::npos)
        << e.what();
  }
  unlink(path.c_str());
}

TEST_P(WorkersTest, WorkerFromDifferentTaskCodeIsNamed) {
  if (IsFork()) GTEST_SKIP() << "kFork runs no binary";
  const char* srcdir = getenv("TEST_SRCDIR");
  ASSERT_NE(srcdir, nullptr);
  Options o = MakeOptions(1);
  o.worker_binary = std::string(srcdir) + "/procpool/executor/mismatched_worker";
  ProcessPoolExecutor pool(o);
  try {
    pool.Submit(tt::Pow, 2, 2).Get(kWait);
    ADD_FAILURE() << "no exception";
  } catch (const BrokenProcessPool& e) {
    EXPECT_NE(std::string(e.what()).find("task tt::Pow is i32(i32,i32) in this "
                                         "program but i64(i64,i64) in the worker"),
              std::string::npos)
        << e.what();
  }
}

INSTANTIATE_EXECUTOR_SUITE(WorkersTest);

}  // namespace
}  // namespace testing
}  // namespace procpool
