// Checks that ThreadSanitizer, with absl_tsan_annotations.cc in the link, is
// both quiet and awake: it reports no race on data guarded by absl::Mutex
// (MutexLock, ReaderMutexLock, Await, LockWhen, CondVar, TryLock) and still
// reports a plain race and a read that skips the lock beside a guarded write.
//
// Each scenario runs in a child process (this binary with the scenario's name
// as its argument) whose stderr is captured: a report expected here must not
// reach the test log, where tools/test.sh looks for sanitizer reports. Outside
// a TSan build the guarded scenarios run (they must exit 0) and the racy ones
// are skipped.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#if defined(__SANITIZE_THREAD__)
constexpr bool kTsan = true;
#else
constexpr bool kTsan = false;
#endif

namespace {

// Keeps the two sides apart in time, so that only happens-before (not luck)
// decides whether TSan sees an order.
void Pause() { std::this_thread::sleep_for(std::chrono::milliseconds(50)); }

int shared_value = 0;  // the raced-on or guarded datum

int RacePlain() {
  std::thread t([] { shared_value = 1; });
  Pause();
  shared_value = 2;  // no order with the thread's write
  t.join();
  return 0;
}

int RaceBesideMutex() {
  absl::Mutex mu;
  std::thread t([&] {
    absl::MutexLock lock(&mu);
    shared_value = 1;
  });
  Pause();
  const int seen = shared_value;  // skips the lock: a race
  t.join();
  return seen == 42 ? 1 : 0;
}

int GuardedMutexLock() {
  absl::Mutex mu;
  std::thread t([&] {
    absl::MutexLock lock(&mu);
    shared_value = 1;
  });
  Pause();
  {
    absl::MutexLock lock(&mu);
    shared_value = 2;
  }
  t.join();
  return 0;
}

int GuardedReaderLock() {
  absl::Mutex mu;
  std::vector<std::thread> readers;
  {
    absl::MutexLock lock(&mu);
    shared_value = 1;
  }
  for (int i = 0; i < 2; ++i) {
    readers.emplace_back([&] {
      absl::ReaderMutexLock lock(&mu);
      (void)shared_value;
    });
  }
  Pause();
  {
    absl::MutexLock lock(&mu);
    shared_value = 2;
  }
  for (std::thread& r : readers) r.join();
  return 0;
}

int GuardedAwait() {
  absl::Mutex mu;
  bool ready = false;
  std::thread t([&] {
    Pause();
    absl::MutexLock lock(&mu);
    shared_value = 1;
    ready = true;
  });
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(&ready));
    shared_value = 2;
  }
  {
    absl::MutexLock lock(&mu);
    if (!mu.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(5))) {
      return 1;
    }
  }
  t.join();
  return 0;
}

int GuardedLockWhen() {
  absl::Mutex mu;
  bool ready = false;
  std::thread t([&] {
    Pause();
    absl::MutexLock lock(&mu);
    shared_value = 1;
    ready = true;
  });
  mu.LockWhen(absl::Condition(&ready));
  shared_value = 2;
  mu.Unlock();
  t.join();
  return 0;
}

int GuardedCondVar() {
  absl::Mutex mu;
  absl::CondVar cv;
  bool ready = false;
  std::thread t([&] {
    Pause();
    absl::MutexLock lock(&mu);
    shared_value = 1;
    ready = true;
    cv.Signal();
  });
  {
    absl::MutexLock lock(&mu);
    while (!ready) cv.Wait(&mu);
    shared_value = 2;
  }
  t.join();
  return 0;
}

int GuardedTryLock() {
  absl::Mutex mu;
  std::thread t([&] {
    absl::MutexLock lock(&mu);
    shared_value = 1;
  });
  Pause();
  while (!mu.TryLock()) Pause();
  shared_value = 2;
  mu.Unlock();
  t.join();
  return 0;
}

struct Scenario {
  const char* name;
  int (*run)();
  bool races;  // TSan must report a data race
};

constexpr Scenario kScenarios[] = {
    {"race_plain", RacePlain, true},
    {"race_beside_mutex", RaceBesideMutex, true},
    {"guarded_mutex_lock", GuardedMutexLock, false},
    {"guarded_reader_lock", GuardedReaderLock, false},
    {"guarded_await", GuardedAwait, false},
    {"guarded_lock_when", GuardedLockWhen, false},
    {"guarded_cond_var", GuardedCondVar, false},
    {"guarded_try_lock", GuardedTryLock, false},
};

// Runs this binary with `name`; its exit status and stderr.
int RunChild(const char* name, std::string* err) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    close(fds[1]);
    execl("/proc/self/exe", "absl_tsan_annotations_test", name, nullptr);
    _exit(127);
  }
  close(fds[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) err->append(buf, n);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2) {
    for (const Scenario& s : kScenarios) {
      if (std::strcmp(argv[1], s.name) == 0) return s.run();
    }
    std::fprintf(stderr, "unknown scenario %s\n", argv[1]);
    return 2;
  }
  int failures = 0;
  for (const Scenario& s : kScenarios) {
    if (s.races && !kTsan) {
      std::printf("%-22s skipped (not a TSan build)\n", s.name);
      continue;
    }
    std::string err;
    const int code = RunChild(s.name, &err);
    const bool reported =
        err.find("WARNING: ThreadSanitizer: data race") != std::string::npos;
    bool ok;
    if (s.races) {
      ok = reported;  // TSan exits 66 after reporting
    } else {
      ok = !reported && code == 0 && err.find("Sanitizer") == std::string::npos;
    }
    std::printf("%-22s %s (exit %d, %s)\n", s.name, ok ? "ok" : "FAILED", code,
                reported ? "race reported" : "no report");
    if (!ok) {
      ++failures;
      // The child's output, defanged so that the log scan does not count it
      // twice (this test fails anyway).
      std::string shown = err;
      for (size_t p; (p = shown.find("Sanitizer")) != std::string::npos;) {
        shown.replace(p, 9, "S*nitizer");
      }
      std::printf("---- stderr of %s ----\n%s----\n", s.name, shown.c_str());
    }
  }
  std::printf("%s\n", failures == 0 ? "PASSED" : "FAILED");
  return failures == 0 ? 0 : 1;
}
