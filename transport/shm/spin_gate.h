// SpinGate: whether a blocking wait of the shm transport may spin before it
// sleeps. Spinning pays only with a CPU to spare: on a busy machine every
// microsecond spun is taken from a thread that has work, and a spinning
// worker delays the manager it has just woken onto its CPU. So a wait spins
// only while the kernel counts at most one runnable thread more than CPUs
// (the pool's caller, which polls for our result rather than competing;
// /proc/loadavg, sampled at most every kRefreshNs), and not after a spin was
// preempted (seen as a gap of kPreemptedNs in its clock readings) until the
// next sample. tools/BENCHMARKS.md has the measurements behind the numbers.
//
// Example (a wait's spin):
//   SpinGate gate(/*enabled=*/true);
//   int64_t now = MonotonicNanos();
//   if (gate.Allowed(now)) {
//     ... spin; on a gap > SpinGate::kPreemptedNs: gate.Preempted(now) ...
//   }
//
// Thread safety: none; one per channel, used by the channel's thread.
#ifndef PROCPOOL_TRANSPORT_SHM_SPIN_GATE_H_
#define PROCPOOL_TRANSPORT_SHM_SPIN_GATE_H_

#include <cstdint>
#include <limits>

namespace procpool {
namespace shm_internal {

// Threads runnable on the whole machine now, this one included (the kernel's
// nr_running, the fourth field of /proc/loadavg: "0.50 0.40 0.30 3/131 42");
// -1 if unknown. Opens and closes the file each time, so that no descriptor
// outlives the call.
int RunnableThreads();

class SpinGate {
 public:
  // A gap this long between two clock readings of a spin means the spinner
  // was preempted.
  static constexpr int64_t kPreemptedNs = 50'000;
  // The load is sampled at most this often.
  static constexpr int64_t kRefreshNs = 2'000'000;

  // `enabled` false: always allowed.
  explicit SpinGate(bool enabled);

  // Whether a wait starting at `now` (MonotonicNanos()) may spin. Inline:
  // a wait reads the load only every kRefreshNs.
  bool Allowed(int64_t now) {
    if (!enabled_) return true;
    if (now - sampled_at_ >= kRefreshNs) Sample(now);
    return allowed_;
  }

  // A spin lost its CPU at `now`: another thread wanted it. No spinning until
  // the next sample.
  void Preempted(int64_t now) {
    if (!enabled_) return;
    sampled_at_ = now;
    allowed_ = false;
  }

 private:
  // Reads the load at `now` and decides.
  void Sample(int64_t now);

  const bool enabled_;
  const int cpus_;
  int64_t sampled_at_ = std::numeric_limits<int64_t>::min() / 2;
  bool allowed_ = true;
};

}  // namespace shm_internal
}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_SHM_SPIN_GATE_H_
