// Two small helpers for the bounded spin-then-sleep waits of the transports
// and the pool (shm and unix workers, a caller polling for its result).
//
// Example:
//   const int64_t deadline = MonotonicNanos() + 20'000;
//   while (!ready() && MonotonicNanos() < deadline) CpuRelax();
#ifndef PROCPOOL_COMMON_SPIN_H_
#define PROCPOOL_COMMON_SPIN_H_

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

}  // namespace procpool

#endif  // PROCPOOL_COMMON_SPIN_H_
