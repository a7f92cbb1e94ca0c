// Small helpers for the bounded spin-then-sleep waits of the transports and
// the pool (shm and unix workers, a caller polling for its result).
//
// Example:
//   const bool may_give_way = MayGiveWay();
//   const int64_t start = MonotonicNanos(), deadline = start + 20'000;
//   for (int64_t now = start; !ready() && now < deadline;
//        now = MonotonicNanos()) {
//     SpinPause(/*give_way=*/may_give_way && now - start >= kGiveWayAfterNs &&
//               !peer_took_it());
//   }
#ifndef PROCPOOL_COMMON_SPIN_H_
#define PROCPOOL_COMMON_SPIN_H_

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstdint>

namespace procpool {

// A hint to the CPU that this thread is spinning (x86 pause, ARM yield).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// CLOCK_MONOTONIC in nanoseconds (a vDSO call, ~25 ns).
inline int64_t MonotonicNanos() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// How long a spin waits with CpuRelax() before it gives its CPU way to the
// peer it waits for (SpinPause), where MayGiveWay(). A peer on a CPU of its
// own answers, or takes what it was sent, well within this; one that has not
// may be queued behind the spinner on the spinner's own CPU. On one CPU (a
// one-CPU container, `taskset -c 0`) it always is: a spinner that keeps its
// CPU there makes every round trip wait for the scheduler to preempt it
// (~75-230 us where giving way takes ~10-18 us; tools/BENCHMARKS.md, "The
// tail", session 13).
constexpr int64_t kGiveWayAfterNs = 1'000;

// How often a thread looks at its affinity mask again (MayGiveWay).
constexpr int64_t kCpuMaskRefreshNs = 100'000'000;

// Whether spins of the calling thread give way: whether the thread may run on
// one CPU only (its affinity mask, which a cpuset limits too; looked at again
// every kCpuMaskRefreshNs). With more CPUs a spinner keeps its CPU: on a host
// that packs a woken thread onto its waker's CPU, pairs that give way were
// seen to stay packed, taking turns on one CPU for whole runs (p50 2-4x),
// where pairs that spin are pulled apart (tools/BENCHMARKS.md).
// `now`: MonotonicNanos(), where the caller has just read it.
inline bool MayGiveWay(int64_t now) {
  thread_local int64_t checked_at = INT64_MIN / 2;
  thread_local bool one_cpu = false;
  if (now - checked_at >= kCpuMaskRefreshNs) {
    checked_at = now;
    cpu_set_t set;
    one_cpu = sched_getaffinity(0, sizeof(set), &set) == 0 &&
              CPU_COUNT(&set) == 1;
  }
  return one_cpu;
}
inline bool MayGiveWay() { return MayGiveWay(MonotonicNanos()); }

// One pause of a spin: CpuRelax(), or with `give_way` sched_yield(), which
// returns in ~0.5 us on a CPU with nothing else to run (about one socket
// poll) and otherwise runs what is waiting for the CPU first.
inline void SpinPause(bool give_way) {
  if (give_way) {
    sched_yield();
  } else {
    CpuRelax();
  }
}

// The pacing of a receive spin: a thread that sent its peer a frame (a
// worker, its result) and now spins for the peer's next one. The spin lasts
// `window_ns` from the later of its start and the moment the peer read what
// this end sent, and at most `max_ns` in all: a peer that has not read it yet
// cannot have sent the next frame, and a thread that slept meanwhile made that
// next frame pay its wake-up (the unix and shm transports' slow calls came in
// such pairs: tools/BENCHMARKS.md, "The tail"). Where MayGiveWay(), while the
// frame stays unread past kGiveWayAfterNs, the pauses yield the CPU instead.
//
// Example (a worker's receive; `unread()` says whether the peer has still to
// read what this end sent, and is asked only while that can matter):
//   const int64_t start = MonotonicNanos();
//   ReceiveSpin spin(start, 20'000, 200'000);
//   for (int64_t now = start; spin.GoOn(now, unread); now = MonotonicNanos()) {
//     if (ready()) return;
//     SpinPause(spin.giving_way());
//   }
//   ... sleep until ready ...
//
// Thread safety: none; one per spin, on the spinning thread's stack.
class ReceiveSpin {
 public:
  ReceiveSpin(int64_t start, int64_t window_ns, int64_t max_ns)
      : window_ns_(window_ns),
        limit_(start + max_ns),
        deadline_(start + window_ns),
        give_way_at_(MayGiveWay(start) ? start + kGiveWayAfterNs
                                       : INT64_MAX) {}

  // At the clock reading `now`: whether to spin on. The frame, once read,
  // stays read (the spinning thread sends nothing), so `unread` is not asked
  // again after it said false.
  template <typename Unread>
  bool GoOn(int64_t now, const Unread& unread) {
    if (unread_ && (now >= give_way_at_ || now >= deadline_)) {
      unread_ = unread();
    }
    if (now >= deadline_) {
      if (now >= limit_ || !unread_) return false;
      deadline_ = std::min(now + window_ns_, limit_);
    }
    giving_way_ = unread_ && now >= give_way_at_;
    return true;
  }

  // Whether the pauses yield, as of the last GoOn(); while they do, the
  // spinner calls GoOn() at every pause (a yield costs more than a clock
  // reading).
  bool giving_way() const { return giving_way_; }

 private:
  const int64_t window_ns_;
  const int64_t limit_;
  int64_t deadline_;
  const int64_t give_way_at_;
  bool unread_ = true;
  bool giving_way_ = false;
};

}  // namespace procpool

#endif  // PROCPOOL_COMMON_SPIN_H_
