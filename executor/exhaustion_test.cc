// Issue 16 point 3: a pool short of descriptors, processes or memory. The
// constructor, Submit or the affected futures fail with an error that names
// the resource and what to do; nothing hangs; what is done stays done; a
// pool with workers goes on with them; and once the resource is back a pool
// works again.
//
// Two ways in: common/sys.h's seam (FailingSys below makes chosen calls fail
// as the kernel would, in this process only), and real limits (setrlimit)
// in a forked child that reports what it saw through a pipe.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/sys.h"
#include "executor/testdata/executor_test_base.h"

namespace procpool {
namespace testing {
namespace {

namespace tt = ::procpool::test_tasks;

// Fails the calls named in `fail` with `error` while armed, in the process
// that made it (a worker forked from this one makes real calls).
class FailingSys : public SysWrapper {
 public:
  enum Calls : unsigned {
    kDescriptors = 1,  // socketpair, pipe2, eventfd, memfd, pidfd, dup
    kProcesses = 2,    // fork, posix_spawn
    kMemory = 4,       // mmap, ftruncate
  };

  FailingSys() : SysWrapper(&GetSys()), owner_(getpid()) {}

  void Arm(unsigned calls, int error) {
    error_.store(error);
    calls_.store(calls);
  }
  void Disarm() { calls_.store(0); }
  int failures() const { return failures_.load(); }

  int Socketpair(int d, int t, int p, int sv[2]) override {
    if (Fail(kDescriptors)) return -1;
    return SysWrapper::Socketpair(d, t, p, sv);
  }
  int Pipe2(int fds[2], int flags) override {
    if (Fail(kDescriptors)) return -1;
    return SysWrapper::Pipe2(fds, flags);
  }
  int EventFd(unsigned int initial, int flags) override {
    if (Fail(kDescriptors)) return -1;
    return SysWrapper::EventFd(initial, flags);
  }
  int MemfdCreate(const char* name, unsigned int flags) override {
    if (Fail(kDescriptors)) return -1;
    return SysWrapper::MemfdCreate(name, flags);
  }
  int PidfdOpen(pid_t pid) override {
    if (Fail(kDescriptors)) return -1;
    return SysWrapper::PidfdOpen(pid);
  }
  int DupCloexec(int fd, int min_fd) override {
    if (Fail(kDescriptors)) return -1;
    return SysWrapper::DupCloexec(fd, min_fd);
  }
  int Ftruncate(int fd, off_t length) override {
    if (Fail(kMemory)) return -1;
    return SysWrapper::Ftruncate(fd, length);
  }
  void* Mmap(void* a, size_t n, int prot, int flags, int fd,
             off_t off) override {
    if (Fail(kMemory)) return MAP_FAILED;
    return SysWrapper::Mmap(a, n, prot, flags, fd, off);
  }
  pid_t Fork() override {
    if (Fail(kProcesses)) return -1;
    return SysWrapper::Fork();
  }
  int PosixSpawn(pid_t* pid, const char* path,
                 const posix_spawn_file_actions_t* actions,
                 const posix_spawnattr_t* attributes, char* const argv[],
                 char* const envp[]) override {
    if ((calls_.load() & kProcesses) != 0 && getpid() == owner_) {
      ++failures_;
      return error_.load();  // posix_spawn returns its error
    }
    return SysWrapper::PosixSpawn(pid, path, actions, attributes, argv, envp);
  }

 private:
  bool Fail(unsigned kind) {
    if ((calls_.load() & kind) == 0 || getpid() != owner_) return false;
    ++failures_;
    errno = error_.load();
    return true;
  }

  const pid_t owner_;
  std::atomic<unsigned> calls_{0};
  std::atomic<int> error_{0};
  std::atomic<int> failures_{0};
};

class ExhaustionTest : public ExecutorTest {
 protected:
  // A pool of this suite's transport and start method still works: every
  // result right, every future done.
  void ExpectAFreshPoolWorks() {
    ProcessPoolExecutor pool(MakeOptions(2));
    std::vector<Future<int>> fs;
    for (int i = 0; i < 8; ++i) fs.push_back(pool.Submit(tt::Pow, i, 2));
    for (int i = 0; i < 8; ++i) EXPECT_EQ(fs[i].Get(kWait), i * i);
  }
  // The BrokenProcessPool a future ends with (fails the test if it ends any
  // other way, or not within kWait).
  std::string BrokenMessage(Future<int>& f) {
    try {
      f.Get(kWait);
      ADD_FAILURE() << "the future has a value";
    } catch (const BrokenProcessPool& e) {
      return e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not BrokenProcessPool: " << e.what();
    }
    return "";
  }

  FailingSys sys_;
};

TEST_P(ExhaustionTest, NoDescriptorForTheFirstWorkerBreaksThePoolSayingWhy) {
  ScopedSys installed(&sys_);
  const int fds_before = OpenFdCount();
  {
    ProcessPoolExecutor pool(MakeOptions(2));
    sys_.Arm(FailingSys::kDescriptors, EMFILE);
    Future<int> f = pool.Submit(tt::Pow, 3, 2);
    const std::string what = BrokenMessage(f);
    EXPECT_TRUE(absl::StrContains(what, "could not be started")) << what;
    EXPECT_TRUE(absl::StrContains(what, "Too many open files")) << what;
    EXPECT_TRUE(absl::StrContains(what, "RLIMIT_NOFILE")) << what;
    EXPECT_TRUE(absl::StrContains(what, "ulimit -n")) << what;
    EXPECT_GE(sys_.failures(), 1);
    // Broken, with that reason, for the next Submit too.
    try {
      pool.Submit(tt::Pow, 4, 2);
      ADD_FAILURE() << "Submit on a broken pool";
    } catch (const BrokenProcessPool& e) {
      EXPECT_TRUE(absl::StrContains(e.what(), "ulimit -n")) << e.what();
    }
    sys_.Disarm();
  }
  // Nothing was left open by the failed starts.
  EXPECT_TRUE(WaitFor([&] { return OpenFdCount() <= fds_before; }, kWait))
      << DescribeFds();
  EXPECT_TRUE(ChildPidsExceptForkServer().empty());
  ExpectAFreshPoolWorks();
}

TEST_P(ExhaustionTest, NoDescriptorForAnotherWorkerGoesOnWithTheOnesItHas) {
  ScopedSys installed(&sys_);
  ProcessPoolExecutor pool(MakeOptions(3));
  const int first = pool.Submit(tt::GetPid).Get(kWait);
  sys_.Arm(FailingSys::kDescriptors, EMFILE);
  // Enough concurrent work that the pool wants more workers: it cannot
  // start them, and the one it has does all of it.
  std::vector<Future<int>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(pool.Submit(tt::SleepThenPid, 20));
  for (Future<int>& f : fs) EXPECT_EQ(f.Get(kWait), first);
  EXPECT_GE(sys_.failures(), 1);
  EXPECT_EQ(pool.WorkerPids().size(), 1u);
  sys_.Disarm();
  // The resource is back: after the pool's retry delay (a second) a burst
  // of work starts the other workers.
  std::set<int> pids;
  EXPECT_TRUE(WaitFor(
      [&] {
        std::vector<Future<int>> burst;
        for (int i = 0; i < 6; ++i) {
          burst.push_back(pool.Submit(tt::SleepThenPid, 20));
        }
        for (Future<int>& f : burst) pids.insert(f.Get(kWait));
        return pids.size() >= 2;
      },
      kWait));
}

TEST_P(ExhaustionTest, ProcessLimitBreaksThePoolSayingWhy) {
  if (GetParam().start_method == StartMethod::kForkServer) {
    GTEST_SKIP() << "the fork server forks in its own process, outside this "
                    "seam: RealProcessLimitInAChild covers it";
  }
  ScopedSys installed(&sys_);
  ProcessPoolExecutor pool(MakeOptions(2));
  sys_.Arm(FailingSys::kProcesses, EAGAIN);
  Future<int> f = pool.Submit(tt::Pow, 3, 2);
  const std::string what = BrokenMessage(f);
  EXPECT_TRUE(absl::StrContains(what, "could not be started")) << what;
  EXPECT_TRUE(absl::StrContains(what, "process limit")) << what;
  EXPECT_TRUE(absl::StrContains(what, "ulimit -u")) << what;
  EXPECT_EQ(sys_.failures(), 1);
  sys_.Disarm();
  ExpectAFreshPoolWorks();
}

TEST_P(ExhaustionTest, NoMemoryForAWorkerBreaksThePoolSayingWhy) {
  if (GetParam().transport != "shm") {
    GTEST_SKIP() << "only shm maps memory to start a worker";
  }
  ScopedSys installed(&sys_);
  const int maps_before = SharedMappingCount();
  {
    ProcessPoolExecutor pool(MakeOptions(2));
    sys_.Arm(FailingSys::kMemory, ENOMEM);
    Future<int> f = pool.Submit(tt::Pow, 3, 2);
    const std::string what = BrokenMessage(f);
    EXPECT_TRUE(absl::StrContains(what, "Cannot allocate memory")) << what;
    EXPECT_TRUE(absl::StrContains(what, "RLIMIT_AS")) << what;
    sys_.Disarm();
  }
  EXPECT_EQ(SharedMappingCount(), maps_before);
  ExpectAFreshPoolWorks();
}

// --- Real limits, in a forked child --------------------------------------

// Runs `body` in a forked child and returns what it wrote, or a line saying
// how it ended if it did not exit 0 within `timeout` (it is killed then).
std::string InChild(const std::function<std::string()>& body,
                    absl::Duration timeout = absl::Seconds(60)) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return "pipe2 failed";
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string report;
    try {
      report = body();
    } catch (const std::exception& e) {
      report = absl::StrCat("child threw: ", e.what());
    }
    const char* p = report.data();
    size_t left = report.size();
    while (left > 0) {
      const ssize_t n = write(fds[1], p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<size_t>(n);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  const absl::Time deadline = absl::Now() + timeout;
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  bool timed_out = false;
  while (true) {
    char buf[4096];
    const ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;
    if (absl::Now() > deadline) {
      timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (timed_out) return absl::StrCat("HUNG (killed after ", absl::FormatDuration(timeout), "): ", out);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::StrCat("child ended with status ", status, ": ", out);
  }
  return out;
}

// One pool's life under the child's limits: a report line per step, "ok" or
// the error's message. Every exception is caught and reported.
std::string UseAPool(const Options& options) {
  std::string report;
  try {
    ProcessPoolExecutor pool(options);
    std::vector<Future<int>> fs;
    for (int i = 0; i < 4; ++i) {
      try {
        fs.push_back(pool.Submit(tt::SleepThenPid, 5));
      } catch (const std::exception& e) {
        absl::StrAppend(&report, "submit: ", e.what(), "\n");
      }
    }
    for (Future<int>& f : fs) {
      try {
        f.Get(absl::Seconds(30));
        absl::StrAppend(&report, "ok\n");
      } catch (const TimeoutError& e) {
        absl::StrAppend(&report, "HUNG future: ", e.what(), "\n");
      } catch (const std::exception& e) {
        absl::StrAppend(&report, "future: ", e.what(), "\n");
      }
    }
  } catch (const std::exception& e) {
    absl::StrAppend(&report, "constructor: ", e.what(), "\n");
  }
  return report;
}

// Every line of `report` is "ok" or an error that contains `advice`; none
// hung. Returns the lines that are neither, and counts the rest.
std::string Unexplained(const std::string& report, const std::string& advice,
                        int* ok, int* explained) {
  std::string bad;
  for (absl::string_view line : absl::StrSplit(report, '\n')) {
    if (line.empty()) continue;
    if (line == "ok") {
      ++*ok;
    } else if (absl::StrContains(line, advice) &&
               !absl::StartsWith(line, "HUNG")) {
      ++*explained;
    } else {
      absl::StrAppend(&bad, line, "\n");
    }
  }
  return bad;
}

TEST_P(ExhaustionTest, RealDescriptorLimitsFromTooFewToEnough) {
  // From a limit at which not even the pool's event set can be made up to
  // one at which every task runs: each step either works or says
  // "ulimit -n", and never hangs.
  const int open_now = OpenFdCount();
  int ok = 0;
  int explained = 0;
  for (int extra = 0; extra <= 40; extra += 2) {
    const std::string report = InChild([&] {
      struct rlimit limit;
      limit.rlim_cur = limit.rlim_max = static_cast<rlim_t>(open_now + extra);
      if (setrlimit(RLIMIT_NOFILE, &limit) != 0) return std::string("setrlimit failed\n");
      return UseAPool(MakeOptions(2));
    });
    const std::string bad = Unexplained(report, "ulimit -n", &ok, &explained);
    EXPECT_EQ(bad, "") << "with " << extra << " descriptors to spare:\n"
                       << report;
  }
  EXPECT_GT(explained, 0) << "no limit was low enough to fail";
  EXPECT_GT(ok, 0) << "no limit was high enough to work";
}

TEST_P(ExhaustionTest, RealProcessLimitInAChild) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to become another user";
  if (GetParam().start_method != StartMethod::kFork ||
      GetParam().transport != "shm") {
    // Another user cannot exec this test's binary (under root's home), so
    // only fork starts workers there; one transport suffices for a limit
    // that concerns processes.
    GTEST_SKIP() << "kFork over shm only";
  }
  // RLIMIT_NPROC counts the user's threads: 1 leaves no room for the pool's
  // manager thread (Submit fails), 2 none for a worker (the future fails).
  for (int limit : {1, 2}) {
    const std::string report = InChild([&] {
      if (setgid(65534) != 0 || setuid(65534) != 0) {
        return std::string("setuid failed\n");
      }
      struct rlimit rl;
      rl.rlim_cur = rl.rlim_max = static_cast<rlim_t>(limit);
      if (setrlimit(RLIMIT_NPROC, &rl) != 0) {
        return std::string("setrlimit failed\n");
      }
      return UseAPool(MakeOptions(2));
    });
    int ok = 0;
    int explained = 0;
    EXPECT_EQ(Unexplained(report, "ulimit -u", &ok, &explained), "")
        << "RLIMIT_NPROC " << limit << ":\n" << report;
    EXPECT_EQ(ok, 0) << report;
    EXPECT_GT(explained, 0) << report;
    if (limit == 1) {
      EXPECT_TRUE(absl::StrContains(report, "manager thread")) << report;
    }
  }
  ExpectAFreshPoolWorks();
}

// The child's address space (VmSize, KiB), from /proc/self/status.
int64_t VmSizeKib() {
  FILE* f = fopen("/proc/self/status", "re");
  if (f == nullptr) return -1;
  char line[256];
  long long kib = -1;
  while (fgets(line, sizeof(line), f) != nullptr) {
    if (sscanf(line, "VmSize: %lld kB", &kib) == 1) break;
  }
  fclose(f);
  return kib;
}

// The address space limit from too small for the pool's manager thread up
// to enough for a 32 MiB echo: at every step the child neither crashes nor
// hangs, and what fails names the memory (RLIMIT_AS and what to do) or is
// the std::bad_alloc of an allocation the caller made (Submit packing its
// argument; the task's own, rethrown as the standard exception it is).
// Before, the manager thread died of a bad_alloc receiving a big result and
// took the process down (std::terminate).
TEST_P(ExhaustionTest, RealAddressSpaceLimitsFromTooLittleToEnough) {
  if (GetParam().transport != "shm" ||
      GetParam().start_method != StartMethod::kForkServer) {
    GTEST_SKIP() << "one transport and start method: the limit is the "
                    "parent's (the fork server inherits it)";
  }
  std::string all;
  for (int extra_mib : {8, 16, 32, 48, 64, 80, 96, 128, 256}) {
    const std::string report = InChild([&] {
      const std::string big(32 << 20, 'x');
      struct rlimit limit;
      limit.rlim_cur = limit.rlim_max =
          static_cast<rlim_t>(VmSizeKib() * 1024 + (int64_t{extra_mib} << 20));
      if (setrlimit(RLIMIT_AS, &limit) != 0) return std::string("setrlimit failed\n");
      std::string out;
      try {
        ProcessPoolExecutor pool(MakeOptions(2));
        Future<int> small = pool.Submit(tt::SleepThenPid, 5);
        Future<std::string> echo;
        try {
          echo = pool.Submit(tt::Echo, big);
        } catch (const std::exception& e) {
          absl::StrAppend(&out, "submit: ", e.what(), "\n");
          echo = pool.Submit(tt::Echo, std::string("small"));
        }
        try {
          const std::string got = echo.Get(absl::Seconds(30));
          absl::StrAppend(&out, got == big || got == "small" ? "ok" : "WRONG", "\n");
        } catch (const std::exception& e) {
          absl::StrAppend(&out, "echo: ", e.what(), "\n");
        }
        try {
          small.Get(absl::Seconds(30));
          absl::StrAppend(&out, "ok\n");
        } catch (const std::exception& e) {
          absl::StrAppend(&out, "small: ", e.what(), "\n");
        }
      } catch (const std::exception& e) {
        absl::StrAppend(&out, "thrown: ", e.what(), "\n");
      }
      return out;
    });
    absl::StrAppend(&all, "+", extra_mib, " MiB:\n", report);
  }
  int ok = 0;
  int named = 0;
  std::string bad;
  for (absl::string_view line : absl::StrSplit(all, '\n')) {
    if (line.empty() || absl::StartsWith(line, "+")) continue;
    if (line == "ok") {
      ++ok;
    } else if (absl::StrContains(line, "RLIMIT_AS") ||
               absl::EndsWith(line, ": std::bad_alloc")) {
      ++named;
    } else {
      absl::StrAppend(&bad, line, "\n");
    }
  }
  EXPECT_EQ(bad, "") << all;
  EXPECT_GT(named, 0) << "no limit was low enough to fail:\n" << all;
  EXPECT_GT(ok, 0) << "no limit was high enough to work:\n" << all;
}

INSTANTIATE_EXECUTOR_SUITE(ExhaustionTest);

}  // namespace
}  // namespace testing
}  // namespace procpool
