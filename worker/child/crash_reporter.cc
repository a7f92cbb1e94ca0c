#include "worker/child/crash_reporter.h"

#include <execinfo.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <errno.h>
#include <time.h>

#include <atomic>
#include <cstdlib>
#include <initializer_list>
#include <thread>


namespace procpool {
namespace {

// A plain int, not a UniqueFd: the fatal-signal handler reads it, and it stays
// open until the process exits.
int report_fd = -1;
// Written by the worker's thread, read by the fatal-signal handler on any
// thread (a lock-free atomic is async-signal-safe).
std::atomic<const char*> current_task{nullptr};

void WriteBytes(const char* s, size_t n) {
  while (n > 0) {
    ssize_t w = write(report_fd, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void Write(const char* s) { WriteBytes(s, strlen(s)); }

// Text built in a caller's buffer (async-signal-safe: no allocation); what
// does not fit is dropped.
struct ReportBuffer {
  char* data;
  size_t capacity;
  size_t size = 0;
  void Append(const char* s) {
    while (*s != '\0' && size < capacity) data[size++] = *s++;
  }
  void AppendNumber(long v) {
    char buf[24];
    int i = sizeof(buf) - 1;
    buf[i] = '\0';
    unsigned long u = v < 0 ? -static_cast<unsigned long>(v) : v;
    do {
      buf[--i] = static_cast<char>('0' + u % 10);
      u /= 10;
    } while (u != 0 && i > 1);
    if (v < 0) buf[--i] = '-';
    Append(buf + i);
  }
};

void WriteNumber(long v) {
  char buf[24];
  ReportBuffer out{buf, sizeof(buf)};
  out.AppendNumber(v);
  WriteBytes(buf, out.size);
}

// /proc/self/maps, read by the handler (open and read are
// async-signal-safe); what does not fit is not searched.
char maps_text[256 * 1024];

unsigned long ParseHex(const char** p) {
  unsigned long v = 0;
  while (true) {
    const char c = **p;
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return v;
    }
    v = v * 16 + static_cast<unsigned long>(d);
    ++*p;
  }
}

void AppendHex(ReportBuffer* out, unsigned long v) {
  char buf[24] = "0x";
  char digits[16];
  int n = 0;
  do {
    digits[n++] = "0123456789abcdef"[v % 16];
    v /= 16;
  } while (v != 0);
  for (int i = 0; i < n; ++i) buf[2 + i] = digits[n - 1 - i];
  buf[2 + n] = '\0';
  out->Append(buf);
}

// Reads /proc/self/maps into maps_text (NUL-terminated); false if it cannot.
bool ReadMaps() {
  const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  size_t size = 0;
  while (size + 1 < sizeof(maps_text)) {
    const ssize_t n = read(fd, maps_text + size, sizeof(maps_text) - 1 - size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size += static_cast<size_t>(n);
  }
  close(fd);
  maps_text[size] = '\0';
  return size > 0;
}

// Appends where `pc` is as "OBJECT+0xOFFSET" (the offset into the mapped
// file; crash_reporter.h), or "0xADDRESS" if no executable mapping of
// maps_text holds it.
void AppendFrame(ReportBuffer* out, bool have_maps, unsigned long pc) {
  const char* line = maps_text;
  while (have_maps && *line != '\0') {
    // "start-end perms offset dev inode   path"
    const char* p = line;
    const unsigned long start = ParseHex(&p);
    if (*p == '-') ++p;
    const unsigned long end = ParseHex(&p);
    if (*p == ' ') ++p;
    const bool exec = p[0] != '\0' && p[1] != '\0' && p[2] == 'x';
    while (*p != ' ' && *p != '\n' && *p != '\0') ++p;
    if (*p == ' ') ++p;
    const unsigned long offset = ParseHex(&p);
    for (int field = 0; field < 2; ++field) {  // dev, inode
      while (*p == ' ') ++p;
      while (*p != ' ' && *p != '\n' && *p != '\0') ++p;
    }
    while (*p == ' ') ++p;
    const char* path = p;
    while (*p != '\n' && *p != '\0') ++p;
    const char* path_end = p;
    if (exec && pc >= start && pc < end && path_end > path) {
      while (path < path_end && out->size < out->capacity) {
        out->data[out->size++] = *path++;
      }
      out->Append("+");
      AppendHex(out, pc - start + offset);
      return;
    }
    line = *p == '\n' ? p + 1 : p;
  }
  AppendHex(out, pc);
}

void OnFatalSignal(int sig, siginfo_t*, void*) {
  const char* abbrev = sigabbrev_np(sig);
  Write("  signal SIG");
  Write(abbrev != nullptr ? abbrev : "?");
  Write(" in worker pid ");
  WriteNumber(getpid());
  const char* task = current_task.load(std::memory_order_relaxed);
  if (task != nullptr) {
    Write(" while running task ");
    Write(task);
  }
  Write("\n");
  // The frames go in one write (a few if the stack is deep), not four per
  // frame: each write wakes the parent, which waits for the worker to die.
  // They are not symbolized here (a cold symbolizer cost the dying worker
  // ~1 ms, on the path from the fault to the futures failing): each is its
  // object and offset, which the parent symbolizes (executor/internal's
  // crash_stack.h).
  void* frames[64];
  const int depth = backtrace(frames, 64);
  const bool have_maps = ReadMaps();
  static char report[64 * 300];
  ReportBuffer out{report, sizeof(report)};
  for (int i = 0; i < depth; ++i) {
    out.Append("  #");
    out.AppendNumber(i);
    out.Append(" ");
    AppendFrame(&out, have_maps, reinterpret_cast<unsigned long>(frames[i]));
    out.Append("\n");
  }
  WriteBytes(report, out.size);
  // report_fd stays open: the heartbeat thread may be writing to it right
  // now (closing it here raced with that write, and the number could be
  // reused), and the kernel closes it when we die, just below.
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

void SetCurrentTask(const char* name) {
  current_task.store(name, std::memory_order_relaxed);
}

namespace {
std::atomic<int> phase{static_cast<int>(WorkerPhase::kOther)};
std::atomic<int64_t> phase_since_ns{0};

// KeepFreedMemory: the most free memory the heap keeps at its top, how long
// a worker waits for work before it gives back all it kept, and how often it
// looks.
constexpr int kTrimThreshold = 256 << 20;
constexpr int64_t kTrimWhenIdleNs = 1000000000;
constexpr long kTrimCheckNs = 250000000;

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
}  // namespace

void SetWorkerPhase(WorkerPhase p) {
  // The heartbeat reads phase_since_ns only in kOther: the clock (twice per
  // element of a Map chunk otherwise) is read only on entering it.
  if (p == WorkerPhase::kOther) {
    phase_since_ns.store(NowNs(), std::memory_order_relaxed);
  }
  phase.store(static_cast<int>(p), std::memory_order_relaxed);
}

void KeepFreedMemory() {
  // Never mmap: every allocation comes from the heap, and what is freed stays
  // there for the next message (up to kTrimThreshold at the top of the heap).
  // glibc serves a block of 32 MiB or more (the highest M_MMAP_THRESHOLD it
  // takes) with a fresh mmap that the kernel must zero, and munmaps it when
  // freed: 5 of the 7 big buffers of a 64 MiB echo were that
  // (clear_page_erms was ~35% of its profile). Other threads' arenas still
  // fall back to mmap.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
  std::thread([] {
    int64_t trimmed_since = -1;  // phase_since_ns when last trimmed
    while (true) {
      struct timespec ts = {0, kTrimCheckNs};
      nanosleep(&ts, nullptr);
      // phase_since_ns moves whenever a frame arrives (kOther).
      const int64_t since = phase_since_ns.load(std::memory_order_relaxed);
      if (phase.load(std::memory_order_relaxed) ==
              static_cast<int>(WorkerPhase::kWaiting) &&
          since != trimmed_since && NowNs() - since >= kTrimWhenIdleNs) {
        malloc_trim(0);
        trimmed_since = since;
      }
    }
  }).detach();
}

void StartHeartbeat(int interval_ms) {
  if (report_fd < 0 || interval_ms <= 0) return;
  phase_since_ns.store(NowNs());
  std::thread([interval_ms] {
    const int64_t quiet_after_ns = int64_t{4} * interval_ms * 1000000;
    while (true) {
      struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
      nanosleep(&ts, nullptr);
      bool alive =
          phase.load(std::memory_order_relaxed) !=
              static_cast<int>(WorkerPhase::kOther) ||
          NowNs() - phase_since_ns.load(std::memory_order_relaxed) <
              quiet_after_ns;
      if (!alive) continue;
      char beat = '\0';
      if (write(report_fd, &beat, 1) < 0 && errno == EPIPE) return;
    }
  }).detach();
}

}  // namespace procpool
