// Whether a pool still takes work: the one place that says it was shut down
// or is broken, and why it broke.
//
// A pool moves from running to shut down (Shutdown()), and, once, to broken
// (BreakPool()); both may happen, in either order. "Winding down" is either
// of the two: the manager then retires workers and exits once it is idle.
//
// Example:
//   PoolState state;
//   if (state.Break("A worker died")) { /* first break: fail the futures */ }
//   if (state.broken()) throw BrokenProcessPool(state.broken_reason());
//
// Thread safety: every read is lock-free and may come from any thread.
// ShutDown() may come from any thread. Break() calls must not race with each
// other (the pool makes them under io_mu_, and under mu_ so that mu_'s
// holders see broken() change together with pending_); the reason is written
// before the broken bit is published (release) and never changes after, so
// a thread that saw broken() may read broken_reason().
#ifndef PROCPOOL_EXECUTOR_INTERNAL_POOL_STATE_H_
#define PROCPOOL_EXECUTOR_INTERNAL_POOL_STATE_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>

namespace procpool {
namespace internal {

class PoolState {
 public:
  // Shutdown(): takes no new work. Idempotent.
  void ShutDown() { bits_.fetch_or(kShutDown, std::memory_order_release); }

  // Breaks the pool for `reason` (BrokenProcessPool's what()). Returns false,
  // keeping the first reason, if it was broken already.
  bool Break(std::string reason) {
    if (broken()) return false;
    reason_ = std::move(reason);
    bits_.fetch_or(kBroken, std::memory_order_release);
    return true;
  }

  bool shut_down() const {
    return (bits_.load(std::memory_order_acquire) & kShutDown) != 0;
  }
  bool broken() const {
    return (bits_.load(std::memory_order_acquire) & kBroken) != 0;
  }
  // Shut down or broken. Relaxed: a hint to wake the manager, which then
  // reads the state it acts on under its locks.
  bool winding_down() const {
    return bits_.load(std::memory_order_relaxed) != 0;
  }
  // Why it broke; only after broken() returned true.
  const std::string& broken_reason() const { return reason_; }

 private:
  static constexpr uint8_t kShutDown = 1;
  static constexpr uint8_t kBroken = 2;
  std::atomic<uint8_t> bits_{0};
  std::string reason_;  // written once, before kBroken is published
};

}  // namespace internal
}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_INTERNAL_POOL_STATE_H_
