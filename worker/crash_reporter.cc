#include "worker/crash_reporter.h"

#include <execinfo.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/debugging/symbolize.h"

namespace procpool {
namespace {

int report_fd = -1;
const char* volatile current_task = nullptr;

void Write(const char* s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(report_fd, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void WriteNumber(long v) {
  char buf[24];
  int i = sizeof(buf) - 1;
  buf[i] = '\0';
  bool negative = v < 0;
  unsigned long u = negative ? -static_cast<unsigned long>(v) : v;
  do {
    buf[--i] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0 && i > 1);
  if (negative) buf[--i] = '-';
  Write(buf + i);
}

void OnFatalSignal(int sig, siginfo_t*, void*) {
  const char* abbrev = sigabbrev_np(sig);
  Write("  signal SIG");
  Write(abbrev != nullptr ? abbrev : "?");
  Write(" in worker pid ");
  WriteNumber(getpid());
  const char* task = current_task;
  if (task != nullptr) {
    Write(" while running task ");
    Write(task);
  }
  Write("\n");
  void* frames[64];
  int depth = backtrace(frames, 64);
  for (int i = 0; i < depth; ++i) {
    char name[256];
    Write("  #");
    WriteNumber(i);
    Write(" ");
    Write(absl::Symbolize(frames[i], name, sizeof(name)) ? name : "(unknown)");
    Write("\n");
  }
  close(report_fd);
  // Die of the same signal, as if there had been no handler.
  signal(sig, SIG_DFL);
  sigset_t unblock;
  sigemptyset(&unblock);
  sigaddset(&unblock, sig);
  sigprocmask(SIG_UNBLOCK, &unblock, nullptr);
  raise(sig);
  _exit(128 + sig);
}

}  // namespace

void InstallCrashReporter(int fd) {
  if (fd < 0) return;
  report_fd = fd;
  // backtrace() loads libgcc on first use; do that now, not in the handler.
  void* warm[1];
  backtrace(warm, 1);
  static char* alt_stack = static_cast<char*>(malloc(64 * 1024));
  stack_t ss = {};
  ss.ss_sp = alt_stack;
  ss.ss_size = 64 * 1024;
  sigaltstack(&ss, nullptr);
  struct sigaction sa = {};
  sa.sa_sigaction = OnFatalSignal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTERM}) {
    sigaction(sig, &sa, nullptr);
  }
}

void SetCurrentTask(const char* name) { current_task = name; }

}  // namespace procpool
