// S13-S15 of docs/SEMANTICS.md: a dying worker breaks the pool cleanly:
// every future fails, nothing hangs, nothing leaks.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "executor/testdata/executor_test_base.h"
#include "worker/parent/fork_server_launcher.h"
#include "worker/parent/launcher.h"

namespace procpool {
namespace testing {
namespace {

namespace tt = ::procpool::test_tasks;

// A result whose worker dies while sending it. Encoding it starts a thread
// that SIGKILLs the worker 1 ms after the encoding ended, that is once the
// worker has begun to send the frame; sending 96 MiB takes tens of
// milliseconds on every transport (two copies of 96 MiB at least), so the
// frame never arrives whole. The value decodes normally: if it did arrive,
// the test would see it.
struct DiesWhileSent {
  std::string bytes;
};

std::atomic<bool> result_encoded{false};

void ProcpoolEncode(Writer& w, const DiesWhileSent& v) {
  std::thread([] {
    while (!result_encoded.load()) std::this_thread::yield();
    absl::SleepFor(absl::Milliseconds(1));
    kill(getpid(), SIGKILL);
  }).detach();
  WriteValue(w, v.bytes);
  result_encoded.store(true);
}

absl::Status ProcpoolDecode(Reader& r, DiesWhileSent* v) {
  return ReadValue(r, &v->bytes);
}

DiesWhileSent ResultThatKillsItsSender(int mib) {
  return {std::string(static_cast<size_t>(mib) << 20, 'y')};
}

class BrokenTest : public ExecutorTest {
 protected:
  void SetUp() override {
    // Warm up: the fork server (started once per process) is not a leak.
    {
      ProcessPoolExecutor warm(MakeOptions(1));
      warm.Submit(tt::Noop).Get(kWait);
    }
    server_ = ForkServerPid(SelfExecutable());
    fds_before_ = OpenFdCount();
    maps_before_ = SharedMappingCount();
  }

  // S15: no child left, no descriptor or shared mapping of the pool left.
  void ExpectNothingLeft() {
    EXPECT_TRUE(WaitFor([] { return ChildPidsExceptForkServer().empty(); },
                        kWait))
        << ChildPidsExceptForkServer().size() << " children left";
    EXPECT_EQ(OpenFdCount(), fds_before_) << DescribeFds();
    EXPECT_EQ(ForkServerPid(SelfExecutable()), server_)
        << "the fork server was restarted";
    EXPECT_EQ(SharedMappingCount(), maps_before_);
  }

  int fds_before_ = 0;
  int maps_before_ = 0;
  pid_t server_ = -1;
};

struct DeathCase {
  std::string how;      // argument of tt::DieBy
  std::string in_what;  // expected in what()
  std::optional<int> signal;
  std::optional<int> exit_code;
};

TEST_P(BrokenTest, S13EveryFutureFailsWithItsOwnBrokenProcessPool) {
  const std::vector<DeathCase> cases = {
      {"SIGKILL", "SIGKILL", SIGKILL, std::nullopt},
      {"SIGTERM", "SIGTERM", SIGTERM, std::nullopt},
      {"SIGSEGV", "SIGSEGV", SIGSEGV, std::nullopt},
      {"abort", "SIGABRT", SIGABRT, std::nullopt},
      {"3", "exit code 3", std::nullopt, 3},
  };
  for (const DeathCase& c : cases) {
    SCOPED_TRACE(c.how);
    {
      ProcessPoolExecutor pool(MakeOptions(2));
      std::vector<Future<int>> fs;
      fs.push_back(pool.Submit(tt::SleepThenPid, 2000));  // running elsewhere
      fs.push_back(pool.Submit(tt::SleepThenDie, 50, c.how));
      for (int i = 0; i < 6; ++i) fs.push_back(pool.Submit(tt::SleepMs, 1000));
      std::vector<std::exception_ptr> errors;
      for (auto& f : fs) {
        try {
          f.Get(kWait);
          ADD_FAILURE() << "a future of the broken pool succeeded";
        } catch (const BrokenProcessPool& e) {
          errors.push_back(std::current_exception());
        }
      }
      ASSERT_EQ(errors.size(), fs.size());
      // The exception of the dead worker's own future names it.
      try {
        std::rethrow_exception(errors[1]);
      } catch (const BrokenProcessPool& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("pid " + std::to_string(e.pid())), std::string::npos)
            << what;
        EXPECT_GT(e.pid(), 0);
        EXPECT_NE(what.find(c.in_what), std::string::npos) << what;
        EXPECT_EQ(e.signal(), c.signal) << what;
        EXPECT_EQ(e.exit_code(), c.exit_code) << what;
        EXPECT_EQ(e.task_name(), "tt::SleepThenDie") << what;
        EXPECT_TRUE(e.work_id().has_value()) << what;
        if (c.signal && *c.signal != SIGKILL) {
          // The failure handler's stack reached the parent before the
          // worker died, naming the signal, the task and the frames.
          EXPECT_NE(e.stack().find(SignalName(*c.signal)), std::string::npos)
              << what;
          EXPECT_NE(e.stack().find("while running task tt::SleepThenDie"),
                    std::string::npos)
              << what;
          EXPECT_NE(e.stack().find("DieBy"), std::string::npos) << what;
          EXPECT_NE(what.find("stack of the worker when it died"),
                    std::string::npos)
              << what;
        } else {
          EXPECT_EQ(e.stack(), "") << what;
        }
      }
      // Each future has its own exception object.
      for (size_t i = 1; i < errors.size(); ++i) {
        EXPECT_NE(errors[i], errors[0]);
      }
      EXPECT_THROW(pool.Submit(tt::Noop), BrokenProcessPool);
    }
    ExpectNothingLeft();
  }
}

TEST_P(BrokenTest, S14CrashWhileEncodingTheResult) {
  {
    ProcessPoolExecutor pool(MakeOptions(1));
    EXPECT_THROW(pool.Submit(tt::ReturnEncodeKills).Get(kWait),
                 BrokenProcessPool);
  }
  ExpectNothingLeft();
}

TEST_P(BrokenTest, S14CrashWhileALargePayloadIsInFlight) {
  {
    ProcessPoolExecutor pool(MakeOptions(1));
    const std::string payload(96 << 20, 'x');
    Future<int> dies = pool.Submit(tt::SleepThenDie, 2000, "SIGKILL");
    // Handed to the same (only) worker while it runs: 96 MiB queued on the
    // channel when the worker dies. (On a loaded machine the worker may die
    // before the 96 MiB are even encoded: Submit then finds the pool broken.)
    try {
      Future<int64_t> big = pool.Submit(tt::Length, payload);
      EXPECT_THROW(big.Get(kWait), BrokenProcessPool);
    } catch (const BrokenProcessPool&) {
    }
    EXPECT_THROW(dies.Get(kWait), BrokenProcessPool);
  }
  ExpectNothingLeft();
}

// A worker that dies while it sends a large result back: the death is
// certain (the worker kills itself) and comes before the 96 MiB can have
// reached the parent whole, so the future must fail, naming the signal.
TEST_P(BrokenTest, S14CrashWhileSendingALargeResult) {
  {
    ProcessPoolExecutor pool(MakeOptions(1));
    Future<DiesWhileSent> big = pool.Submit(ResultThatKillsItsSender, 96);
    try {
      const DiesWhileSent v = big.Get(kWait);
      ADD_FAILURE() << "a result of " << v.bytes.size()
                    << " bytes arrived whole from a worker killed while "
                       "sending it";
    } catch (const BrokenProcessPool& e) {
      const std::string what = e.what();
      EXPECT_EQ(e.signal(), SIGKILL) << what;
      EXPECT_NE(what.find("SIGKILL"), std::string::npos) << what;
      EXPECT_GT(e.pid(), 0) << what;
      EXPECT_TRUE(e.work_id().has_value()) << what;
    }
    EXPECT_THROW(pool.Submit(tt::Noop), BrokenProcessPool);
  }
  ExpectNothingLeft();
}

TEST_P(BrokenTest, S14CrashRightBeforeShutdown) {
  {
    ProcessPoolExecutor pool(MakeOptions(2));
    Future<int> f = pool.Submit(tt::DieBy, "SIGKILL");
    pool.Shutdown(/*wait=*/true);
    EXPECT_TRUE(f.Done());
    EXPECT_THROW(f.Get(absl::ZeroDuration()), BrokenProcessPool);
  }
  ExpectNothingLeft();
}

TEST_P(BrokenTest, S14CrashDuringShutdown) {
  {
    ProcessPoolExecutor pool(MakeOptions(2));
    Future<int> f = pool.Submit(tt::SleepThenDie, 200, "SIGSEGV");
    Future<int> g = pool.Submit(tt::SleepMs, 10);
    EXPECT_EQ(g.Get(kWait), 10);
    pool.Shutdown(/*wait=*/true);
    EXPECT_THROW(f.Get(absl::ZeroDuration()), BrokenProcessPool);
  }
  ExpectNothingLeft();
}

TEST_P(BrokenTest, S13IdleWorkerDeathBreaksThePool) {
  {
    ProcessPoolExecutor pool(MakeOptions(1));
    int pid = pool.Submit(tt::GetPid).Get(kWait);
    kill(pid, SIGKILL);
    // Once the manager has seen the death (the worker is gone from the
    // pool), Submit fails at once with the idle worker's report.
    ASSERT_TRUE(WaitFor([&] { return pool.WorkerPids().empty(); }, kWait));
    std::string what;
    try {
      pool.Submit(tt::Noop);
      ADD_FAILURE() << "Submit on a broken pool succeeded";
    } catch (const BrokenProcessPool& e) {
      what = e.what();
    }
    EXPECT_NE(what.find("killed by SIGKILL while idle"), std::string::npos)
        << what;
  }
  ExpectNothingLeft();
}

TEST_P(BrokenTest, CorruptedFrameBreaksThePoolSayingSo) {
  if (GetParam().transport != "unix") {
    GTEST_SKIP() << "writes raw bytes into the worker's socket; the fault "
                    "matrix's kCorruptFrame covers every transport";
  }
  {
    ProcessPoolExecutor pool(MakeOptions(1));
    try {
      pool.Submit(tt::CorruptChannel, 5000).Get(kWait);
      ADD_FAILURE() << "no exception";
    } catch (const BrokenProcessPool& e) {
      EXPECT_NE(e.cause().find("corrupted"), std::string::npos) << e.what();
      EXPECT_EQ(e.task_name(), "tt::CorruptChannel") << e.what();
    }
  }
  ExpectNothingLeft();
}

TEST_P(BrokenTest, S15ShutdownLeavesNothing) {
  {
    ProcessPoolExecutor pool(MakeOptions(2));
    std::vector<Future<int>> fs;
    for (int i = 0; i < 10; ++i) fs.push_back(pool.Submit(tt::Pow, 2, i));
    for (auto& f : fs) f.Get(kWait);
  }
  ExpectNothingLeft();
}

INSTANTIATE_EXECUTOR_SUITE(BrokenTest);

}  // namespace
}  // namespace testing
}  // namespace procpool

PROCPOOL_TASK(procpool::testing::ResultThatKillsItsSender);
