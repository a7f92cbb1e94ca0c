// The fault matrix: every point x every mode x every transport x every start
// method. Each case asserts S5/S13/S14/S15 (docs/SEMANTICS.md): the futures
// fail with BrokenProcessPool (or, where the worker only dies after its work,
// succeed), nothing hangs (every wait is bounded), and nothing leaks; and
// that the fault fired (its fired_file holds one record), so that a fault
// that no longer fires fails the case instead of passing as "no harm done".
// A task with a shared array rides along in every case: its memfd, sent
// beside the Call, must not leak through the fault either.
//
// LyingFrameTest: a worker that stays alive and sends a frame that decodes
// but lies (fault::LyingModes()) breaks the pool, under either
// WorkerDeathPolicy, with an error that names the lie.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <future>
#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "executor/testdata/executor_test_base.h"
#include "serialization/wire.h"
#include "testing/fault_injection/fault_injection.h"

namespace procpool {
namespace testing {
namespace {

namespace tt = ::procpool::test_tasks;
using fault::Mode;
using fault::Point;

std::string Repeat(int n) { return std::string(static_cast<size_t>(n), 'r'); }

// The array every case sends along, and the sum SumArray gives for it.
constexpr size_t kArrayElements = 4096;
SharedArray<double> Iota() {
  SharedArray<double> a(kArrayElements);
  for (size_t i = 0; i < kArrayElements; ++i) a[i] = static_cast<double>(i);
  return a;
}
constexpr double kArraySum = kArrayElements * (kArrayElements - 1) / 2.0;

// A call submitted behind the faulty worker's first: the future, or, when the
// pool broke before the call (a worker that died in its initializer, with
// the fork start method: before Submit returned), the BrokenProcessPool that
// Submit threw. Get() and Exception() read either as a future would.
template <typename T>
class Submitted {
 public:
  template <typename F, typename... Args>
  Submitted(ProcessPoolExecutor& pool, F fn, Args&&... args) {
    try {
      future_.emplace(pool.Submit(fn, std::forward<Args>(args)...));
    } catch (const BrokenProcessPool&) {
      refused_ = std::current_exception();
    }
  }
  T Get(absl::Duration timeout) {
    if (refused_) std::rethrow_exception(refused_);
    return future_->Get(timeout);
  }
  std::exception_ptr Exception(absl::Duration timeout) {
    return refused_ ? refused_ : future_->Exception(timeout);
  }

 private:
  std::optional<Future<T>> future_;
  std::exception_ptr refused_;
};

// A file in the test's temporary folder, empty, removed with the object.
class TempFile {
 public:
  explicit TempFile(const std::string& name) {
    const char* dir = getenv("TEST_TMPDIR");
    path_ = std::string(dir ? dir : "/tmp") + "/" + name + "_" +
            std::to_string(getpid());
    unlink(path_.c_str());
  }
  ~TempFile() { unlink(path_.c_str()); }
  // Creates it, empty (a fired_file must exist: the worker only appends).
  void Create() const {
    int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0) << path_;
    if (fd >= 0) close(fd);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct Case {
  Point point;
  Mode mode;
  PoolParam pool;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << fault::PointName(c.point) << "/" << fault::ModeName(c.mode) << "/"
      << c.pool.transport << "/" << StartMethodName(c.pool.start_method);
}

std::vector<Case> AllCases() {
  std::vector<Case> out;
  for (Point p : fault::AllPoints()) {
    for (Mode m : fault::AllModes()) {
      if (!fault::Applies(p, m)) continue;
      for (const PoolParam& pool : AllPoolParams()) out.push_back({p, m, pool});
    }
  }
  return out;
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  return std::string(fault::PointName(info.param.point)) + "_" +
         fault::ModeName(info.param.mode) + "_" + info.param.pool.transport +
         "_" + StartMethodName(info.param.pool.start_method);
}

class FaultMatrixTest : public ::testing::TestWithParam<Case> {
 public:
  void SetUp() override {
    {  // the fork server is started once per process: not a leak
      Options o;
      o.max_workers = 1;
      o.transport = GetParam().pool.transport;
      o.start_method = GetParam().pool.start_method;
      ProcessPoolExecutor warm(o);
      warm.Submit(tt::Noop).Get(kWait);
    }
    fds_before_ = OpenFdCount();
    maps_before_ = SharedMappingCount();
  }

  void ExpectNothingLeft() {
    EXPECT_TRUE(WaitFor([] { return ChildPidsExceptForkServer().empty(); },
                        kWait))
        << "children left";
    EXPECT_TRUE(WaitFor([&] { return OpenFdCount() == fds_before_; }, kWait))
        << DescribeFds();
    EXPECT_EQ(SharedMappingCount(), maps_before_);
  }

  // Runs `fn` (a Shutdown or destructor) and fails fast if it hangs.
  template <typename F>
  void Bounded(F fn, const char* what) {
    auto done = std::async(std::launch::async, fn);
    if (done.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      ADD_FAILURE() << what << " hung";
      std::_Exit(1);
    }
  }

  // How many times the fault fired (records in its fired_file).
  static size_t Fired(const TempFile& fired) {
    return fault::ReadFiredTimes(fired.path()).size();
  }

  int fds_before_ = 0;
  int maps_before_ = 0;
};

TEST_P(FaultMatrixTest, NothingHangsNothingLeaks) {
  const Case& c = GetParam();
  TempFile fired("fault_fired");
  fired.Create();
  fault::Spec spec;
  spec.point = c.point;
  spec.mode = c.mode;
  spec.fired_file = fired.path();
  Options o;
  o.max_workers = 1;
  o.transport = c.pool.transport;
  o.start_method = c.pool.start_method;
  o.initializer = fault::ArmFault(spec);
  {
    // Made before the pool: the calls behind the first follow it at once.
    const SharedArray<double> xs = Iota();
    auto pool = std::make_unique<ProcessPoolExecutor>(o);
    std::optional<Future<std::string>> big;
    std::optional<Future<int>> first;
    if (c.point == Point::kMidSend) {
      big = pool->Submit(Repeat, 64 << 20);
    } else if (c.point == Point::kMidTask) {
      first = pool->Submit(tt::SleepMs, 2000);
    } else {
      first = pool->Submit(tt::Pow, 2, 8);
    }
    Submitted<int> behind(*pool, tt::Pow, 3, 3);
    Submitted<double> array(*pool, tt::SumArray, xs);

    if (c.point == Point::kExit) {
      // The worker fails only as it exits: the work itself succeeds.
      EXPECT_EQ(first->Get(kWait), 256);
      EXPECT_EQ(behind.Get(kWait), 27);
      EXPECT_EQ(array.Get(kWait), kArraySum);
      EXPECT_EQ(Fired(fired), 0u) << "fired before the worker exited";
      Bounded([&] { pool->Shutdown(/*wait=*/true); }, "Shutdown");
    } else if (c.mode == Mode::kStop) {
      // A stopped worker hangs without dying: nothing completes until the
      // worker is killed (issue 6 adds heartbeats that detect it).
      // Once handed to the worker (which may take a while under load), it
      // never completes.
      // Wait until the worker has stopped (it notes the fault just before):
      // a worker slowed down (TSan building the 64 MiB result) can take
      // longer than any fixed wait to get to its fault point.
      ASSERT_TRUE(WaitFor([&] { return Fired(fired) >= 1; }, kWait))
          << "the fault never fired";
      // A mid-send stop fires at the end of the send if the send beat its
      // 2 ms timer: the result is out before the worker stops.
      const bool big_delivered =
          big && WaitFor([&] { return big->Done(); }, absl::Milliseconds(300));
      if (first) {
        EXPECT_THROW(first->Get(absl::Milliseconds(300)), TimeoutError);
      }
      if (big && !big_delivered) {
        EXPECT_THROW(big->Get(absl::Milliseconds(10)), TimeoutError);
      }
      pool->KillWorkers();
      if (first) {
        EXPECT_THROW(first->Get(kWait), BrokenProcessPool);
      }
      if (big && big_delivered) {
        EXPECT_EQ(big->Get(kWait).size(), 64u << 20);
      }
      if (big && !big_delivered) {
        EXPECT_THROW(big->Get(kWait), BrokenProcessPool);
      }
      // Handed out early (then lost with the worker), or still pending (then
      // cancelled by KillWorkers).
      auto lost = [](auto& f) {
        try {
          std::exception_ptr e = f.Exception(kWait);
          ASSERT_NE(e, nullptr);
          EXPECT_THROW(std::rethrow_exception(e), BrokenProcessPool);
        } catch (const CancelledError&) {
        }
      };
      lost(behind);
      lost(array);
    } else if (c.point == Point::kMidSend) {
      // The result may or may not have made it out before the worker died;
      // either way nothing hangs and the pool is broken afterwards.
      try {
        EXPECT_EQ(big->Get(kWait).size(), 64u << 20);
      } catch (const BrokenProcessPool&) {
      }
      // The next calls resolve either way (under TSan, _exit from the
      // fault's timer thread can lag behind the worker's next task).
      behind.Exception(kWait);
      try {
        EXPECT_EQ(array.Get(kWait), kArraySum);
      } catch (const BrokenProcessPool&) {
      }
      EXPECT_TRUE(WaitFor([&] {
        try {
          pool->Submit(tt::Noop).Get(kWait);
          return false;
        } catch (const BrokenProcessPool&) {
          return true;
        }
      }, kWait));
    } else {
      try {
        first->Get(kWait);
        ADD_FAILURE() << "the faulty worker's future succeeded";
      } catch (const BrokenProcessPool& e) {
        const int sig = fault::SignalOf(c.mode);
        if (sig != 0) {
          EXPECT_EQ(e.signal(), sig) << e.what();
          EXPECT_NE(std::string(e.what()).find(SignalName(sig)),
                    std::string::npos)
              << e.what();
        }
        if (c.mode == Mode::kExit) {
          EXPECT_EQ(e.exit_code(), 3) << e.what();
        }
      }
      EXPECT_THROW(behind.Get(kWait), BrokenProcessPool);  // S13
      EXPECT_THROW(array.Get(kWait), BrokenProcessPool);
      EXPECT_THROW(pool->Submit(tt::Noop), BrokenProcessPool);
    }
    Bounded([&] { pool.reset(); }, "the destructor");
  }
  EXPECT_EQ(Fired(fired), 1u) << "the fault did not fire (or fired again)";
  ExpectNothingLeft();  // S15
}

// What a faulty worker's future must give under kReplaceWorker.
enum class Expect {
  kValue,        // the fault comes after the work (kExit)
  kDied,         // WorkerDiedError with the mode's signal or exit code
  kValueOrDied,  // a race between the work and the fault; if it died, kDied's
  kBroken,       // BrokenProcessPool: corrupt data breaks even this pool
};

// kReplaceWorker, worker `c` faults: what its future gives.
Expect ReplaceOutcome(const Case& c) {
  if (c.point == Point::kExit) return Expect::kValue;
  if (c.mode == Mode::kCorruptFrame) return Expect::kBroken;
  // MidSend: the send can end before the fault's timer (the whole result is
  // out); Initializer: the worker sends its Hello before it runs its
  // initializer, and the pool may hand it the first task before it dies or
  // not (then the replacement runs it).
  if (c.point == Point::kMidSend || c.point == Point::kInitializer) {
    return Expect::kValueOrDied;
  }
  return Expect::kDied;
}

// Checks a WorkerDiedError against the fault of `c`: the signal that killed
// the worker, the exit code, or what the pool saw.
void ExpectDiedOf(const Case& c, const WorkerDiedError& e) {
  const std::string what = e.summary();
  switch (c.mode) {
    case Mode::kSigkill:
    case Mode::kSigsegv:
    case Mode::kAbort:
      EXPECT_EQ(e.signal(), fault::SignalOf(c.mode)) << what;
      EXPECT_NE(what.find(SignalName(fault::SignalOf(c.mode))),
                std::string::npos)
          << what;
      break;
    case Mode::kExit:
      EXPECT_EQ(e.exit_code(), 3) << what;
      break;
    case Mode::kCloseChannel:
      // Its channel gone, the worker's next send or receive fails and it
      // exits with 0, with the task unanswered.
      EXPECT_EQ(e.exit_code(), 0) << what;
      break;
    case Mode::kStop:
      // Stopped, it sends no heartbeat: the pool kills it as hung.
      EXPECT_EQ(e.signal(), SIGKILL) << what;
      EXPECT_NE(what.find("stopped responding: no heartbeat"),
                std::string::npos)
          << what;
      break;
    default:
      ADD_FAILURE() << "no worker death expected of " << fault::ModeName(c.mode)
                    << ": " << what;
  }
}

// Checks that `f` (a faulty worker's future) gives what `c` must give:
// `value` or the error of ReplaceOutcome(c).
template <typename F, typename T>
void ExpectReplaceOutcome(const Case& c, F& f, const T& value) {
  const Expect expect = ReplaceOutcome(c);
  try {
    EXPECT_EQ(f.Get(kWait), value);
    EXPECT_TRUE(expect == Expect::kValue || expect == Expect::kValueOrDied)
        << "the faulty worker's future succeeded";
  } catch (const WorkerDiedError& e) {
    EXPECT_TRUE(expect == Expect::kDied || expect == Expect::kValueOrDied)
        << e.summary();
    ExpectDiedOf(c, e);
  } catch (const BrokenProcessPool& e) {
    EXPECT_EQ(expect, Expect::kBroken) << e.summary();
    EXPECT_NE(std::string(e.summary())
                  .find("A worker sent data the pool could not read"),
              std::string::npos)
        << e.summary();
    EXPECT_NE(std::string(e.summary()).find("corrupted data from the worker"),
              std::string::npos)
        << e.summary();
  }
}

// A pool of one worker whose initializer arms `c`'s fault to fire once
// (`once`), noting in `fired` when it did (created here, empty).
Options OneArmedWorker(const Case& c, const TempFile& once,
                       const TempFile& fired, WorkerDeathPolicy policy) {
  fired.Create();
  fault::Spec spec;
  spec.point = c.point;
  spec.mode = c.mode;
  spec.once_file = once.path();
  spec.fired_file = fired.path();
  Options o;
  o.max_workers = 1;
  o.transport = c.pool.transport;
  o.start_method = c.pool.start_method;
  o.initializer = fault::ArmFault(spec);
  o.on_worker_death = policy;
  return o;
}

// Issue 6: with WorkerDeathPolicy::kReplaceWorker (and heartbeats for the
// stopped worker), every fault costs at most the futures of the faulty worker
// and the pool goes on: they fail with WorkerDiedError saying how it died
// (ExpectDiedOf), and a replacement serves the next call. A corrupt frame is
// a protocol error, not a death: the pool breaks. The fault fires in the
// pool's first worker only, exactly once.
TEST_P(FaultMatrixTest, ReplaceWorkerPoolGoesOn) {
  const Case& c = GetParam();
  TempFile once("fault_once"), fired("fault_fired");
  Options o = OneArmedWorker(c, once, fired, WorkerDeathPolicy::kReplaceWorker);
  // Short only where the heartbeat is what finds the fault (a stopped
  // worker): under TSan, with the other shards running, a worker sending its
  // 64 MiB result took more than 500 ms before the middle of the send, was
  // killed as hung, and the fault never fired (.ci/run, session 10).
  o.heartbeat_timeout = c.mode == Mode::kStop ? absl::Milliseconds(500)
                                              : absl::Seconds(30);
  {
    // Made before the pool: the calls behind the first follow it at once.
    const SharedArray<double> xs = Iota();
    auto pool = std::make_unique<ProcessPoolExecutor>(o);
    std::optional<Future<std::string>> big;
    std::optional<Future<int>> first;
    if (c.point == Point::kMidSend) {
      big = pool->Submit(Repeat, 64 << 20);
    } else if (c.point == Point::kMidTask) {
      first = pool->Submit(tt::SleepMs, 2000);
    } else {
      first = pool->Submit(tt::Pow, 2, 8);
    }
    // Queued behind it: handed to the faulty worker early (then it shares
    // its fate) or run by the replacement.
    Submitted<double> array(*pool, tt::SumArray, xs);
    if (first) {
      ExpectReplaceOutcome(c, *first,
                           c.point == Point::kMidTask ? 2000 : 256);
    }
    if (big) ExpectReplaceOutcome(c, *big, Repeat(64 << 20));
    ExpectReplaceOutcome(c, array, kArraySum);
    if (c.point != Point::kExit) {
      EXPECT_EQ(Fired(fired), 1u) << "the fault did not fire (or fired again)";
    }
    if (ReplaceOutcome(c) == Expect::kBroken) {
      EXPECT_THROW(pool->Submit(tt::Pow, 3, 3), BrokenProcessPool);
    } else {
      // A replacement runs clean; the pool goes on.
      EXPECT_EQ(pool->Submit(tt::Pow, 3, 3).Get(kWait), 27);
      EXPECT_EQ(pool->Submit(tt::SumArray, Iota()).Get(kWait), kArraySum);
    }
    Bounded([&] { pool.reset(); }, "the destructor");
  }
  // (At Point::kExit the fault fires as the pool shuts its worker down.)
  EXPECT_EQ(Fired(fired), 1u) << "the fault did not fire (or fired again)";
  ExpectNothingLeft();
}

INSTANTIATE_TEST_SUITE_P(All, FaultMatrixTest, ::testing::ValuesIn(AllCases()),
                         CaseName);

// Frames that decode but lie (fault::LyingModes()): every lie at every point
// where the worker sends a frame after it, over every transport (the start
// method changes nothing in what the parent reads: the fork server's).
std::vector<Case> LyingCases() {
  std::vector<Case> out;
  for (Point p : fault::AllPoints()) {
    for (Mode m : fault::LyingModes()) {
      if (!fault::Applies(p, m)) continue;
      for (const PoolParam& pool : AllPoolParams()) {
        if (pool.start_method == StartMethod::kForkServer) {
          out.push_back({p, m, pool});
        }
      }
    }
  }
  return out;
}

// What the pool's error says about each lie (executor/internal/pool_frames.cc).
std::vector<std::string> WhatNamesTheLie(Mode mode) {
  switch (mode) {
    case Mode::kLieVersion:
      return {"speaks another procpool protocol",
              absl::StrCat("protocol version ", wire::kProtocolVersion + 1,
                           " in the worker, ", wire::kProtocolVersion,
                           " in this program")};
    case Mode::kLieWorkId:
      return {"A worker sent data the pool could not read",
              absl::StrCat("result for unexpected work id ",
                           fault::kLyingWorkId)};
    case Mode::kLieOutcomes:
      return {"A worker sent data the pool could not read",
              "result with 2 outcomes for 1 elements (work id "};
    case Mode::kLieKind:
      return {"A worker sent data the pool could not read",
              "unexpected call message from a worker"};
    case Mode::kLieHelloAgain:
      return {"A worker sent data the pool could not read",
              "a second hello from a worker that had already greeted"};
    default:
      return {"(not a lie)"};
  }
}

using LyingFrameTest = FaultMatrixTest;

// The worker lies once, on its first call: the pool breaks with an error
// that names the lie, whatever `policy` says (a lie is not a death: there is
// nothing to replace), the futures queued behind fail the same way, nothing
// hangs and nothing leaks.
void ExpectLieBreaksPool(LyingFrameTest& test, const Case& c,
                         WorkerDeathPolicy policy) {
  TempFile once("fault_once"), fired("fault_fired");
  const Options o = OneArmedWorker(c, once, fired, policy);
  {
    const SharedArray<double> xs = Iota();
    auto pool = std::make_unique<ProcessPoolExecutor>(o);
    Future<int> first = c.point == Point::kMidTask
                            ? pool->Submit(tt::SleepMs, 200)
                            : pool->Submit(tt::Pow, 2, 8);
    Submitted<double> array(*pool, tt::SumArray, xs);
    auto expect_named = [&](auto& f, const char* which) {
      try {
        f.Get(kWait);
        ADD_FAILURE() << which << " succeeded after the lie";
      } catch (const BrokenProcessPool& e) {
        for (const std::string& words : WhatNamesTheLie(c.mode)) {
          EXPECT_NE(std::string(e.summary()).find(words), std::string::npos)
              << which << ": " << e.summary();
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << which << ": not BrokenProcessPool: " << e.what();
      }
    };
    expect_named(first, "the first future");
    expect_named(array, "the array's future");
    EXPECT_THROW(pool->Submit(tt::Noop), BrokenProcessPool);
    EXPECT_EQ(FaultMatrixTest::Fired(fired), 1u)
        << "the lie was not sent (or sent again)";
    test.Bounded([&] { pool.reset(); }, "the destructor");
  }
  test.ExpectNothingLeft();
}

TEST_P(LyingFrameTest, BreaksThePool) {
  ExpectLieBreaksPool(*this, GetParam(), WorkerDeathPolicy::kBreakPool);
}

TEST_P(LyingFrameTest, BreaksEvenAReplacingPool) {
  ExpectLieBreaksPool(*this, GetParam(), WorkerDeathPolicy::kReplaceWorker);
}

INSTANTIATE_TEST_SUITE_P(All, LyingFrameTest, ::testing::ValuesIn(LyingCases()),
                         CaseName);

}  // namespace
}  // namespace testing
}  // namespace procpool

PROCPOOL_TASK(procpool::testing::Repeat);
