// Small helpers for the bounded spin-then-sleep waits of the transports and
// the pool (shm and unix workers, a caller polling for its result).
//
// Example:
//   const int64_t start = MonotonicNanos(), deadline = start + 20'000;
//   for (int64_t now = start; !ready() && now < deadline;
//        now = MonotonicNanos()) {
//     SpinPause(/*give_way=*/now - start >= kGiveWayAfterNs && !peer_busy());
//   }
#ifndef PROCPOOL_COMMON_SPIN_H_
#define PROCPOOL_COMMON_SPIN_H_

#include <sched.h>
#include <time.h>

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

// How long a spin waits with CpuRelax() before it may give its CPU way to
// the peer it waits for (SpinPause). A peer on a CPU of its own answers, or
// takes what it was sent, well within this; one that has not may be queued
// behind the spinner on the spinner's own CPU: the scheduler puts a woken
// thread on its waker's CPU, and with fewer CPUs than busy threads (a
// one-CPU container, an oversubscribed host) it has no other. A spinner that
// keeps its CPU then takes turns with the peer at the scheduler's pace: a
// round trip of ~75-95 us on one CPU where giving way makes it ~10-18 us
// (tools/BENCHMARKS.md, "The tail", session 13).
constexpr int64_t kGiveWayAfterNs = 1'000;

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

}  // namespace procpool

#endif  // PROCPOOL_COMMON_SPIN_H_
