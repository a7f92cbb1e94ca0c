// The soak tool's work (tools/soak): rounds of mixed tasks through a
// long-lived ProcessPoolExecutor, each result checked.
//
// One round (about --round tasks; a task is one Submit or one Map element):
//   * a burst of Submits: small values (SoakMix), tasks that throw (four
//     exception types, one of them PROCPOOL_EXCEPTION-registered), tasks with
//     a per-task timeout that does not fire (each also reporting which
//     worker ran it), one big argument, one big result
//     and one big echo (1-4 MiB), and Cancel() on part of the last quarter;
//   * a Map, its chunk size, buffer size and throwing elements varying by
//     round;
//   * alone on the pool (so that no other future shares the dying worker):
//     a per-task timeout that fires, an Interrupt() of a running task, or a
//     task that kills its worker (the pool replaces workers: on_worker_death
//     = kReplaceWorker), then a task that must succeed on the next worker;
//   * every --short_pool_every rounds, a short-lived pool (created, a Map,
//     every other time broken by a dying task under kBreakPool, destroyed).
// Workers are also recycled by max_tasks_per_child (not with kFork, which
// refuses it).
//
// Every wait is bounded by hang_timeout: a future not done by then throws
// Hung (the run must stop: its pool cannot be trusted to shut down).
//
// Example:
//   Tally tally;
//   Runner runner(config, &tally);
//   for (int64_t r = 0; tally.tasks < n; ++r) runner.Round(r);
//
// Thread safety: a Runner is used by one thread; `heartbeat` and `phase` may
// be read from any thread (a watchdog).
#ifndef PROCPOOL_TOOLS_SOAK_RUNNER_H_
#define PROCPOOL_TOOLS_SOAK_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "executor/process_pool_executor.h"

namespace procpool {
namespace soak {

struct RunnerConfig {
  std::string transport;
  StartMethod start_method = StartMethod::kForkServer;
  int workers = 2;
  int round = 1000;              // tasks per round, about
  int max_tasks_per_child = 0;   // 0: off (always off with kFork)
  int short_pool_every = 5;      // rounds; 0: never
  int big_min_bytes = 1 << 20;
  int big_max_bytes = 4 << 20;
  absl::Duration hang_timeout = absl::Seconds(60);
  uint64_t seed = 1;
};

// What the rounds did. Every task counted here was checked.
struct Tally {
  int64_t tasks = 0;          // Submits + Map elements
  int64_t rounds = 0;
  int64_t submits = 0;
  int64_t map_elements = 0;
  int64_t values = 0;         // right values
  int64_t task_errors = 0;    // a task's exception, rethrown as thrown
  int64_t cancelled = 0;      // Cancel() won, Get threw CancelledError
  int64_t cancel_late = 0;    // Cancel() lost (running), the value came back
  int64_t timeouts = 0;       // per-task timeouts that fired: TimeoutError
  int64_t interrupts = 0;     // running tasks interrupted: CancelledError
  int64_t worker_deaths = 0;  // SoakDie under kReplaceWorker: WorkerDiedError
  int64_t big_values = 0;     // 1-4 MiB arguments or results
  int64_t big_bytes = 0;
  int64_t workers_seen = 0;   // main-pool workers that answered a SoakMixPid
                              // (every 20th Submit): a lower bound of the
                              // workers started
  int64_t pools = 0;          // pools created (the main one included)
  int64_t broken_pools = 0;   // short pools broken on purpose
  int64_t wrong = 0;          // wrong values, unexpected exceptions
  int64_t unresolved = 0;     // futures not done within hang_timeout
  std::vector<std::string> problems;  // the first few, for stderr
};

// Thrown when a wait passes hang_timeout.
class Hung : public std::runtime_error {
 public:
  explicit Hung(const std::string& m) : std::runtime_error(m) {}
};

class Runner {
 public:
  // Creates the main pool; `tally` must outlive the Runner.
  Runner(const RunnerConfig& config, Tally* tally);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // One round (see the file comment). Throws Hung, or whatever the pool
  // threw where nothing may be thrown (counted as wrong by the caller).
  void Round(int64_t r);

  // Brings the main pool to rest before a checkpoint: every worker started
  // and idle, nothing in flight, then waits `quiet` (past
  // common/big_buffers.h's kBigBufferIdleMs, the big-message buffers the
  // pool keeps are freed by then).
  void Settle(absl::Duration quiet);

  // Workers the main pool replaced or recycled so far.
  int64_t Restarts() const;

  // Monotonic nanoseconds of the last progress, and what the run is doing.
  const std::atomic<int64_t>& heartbeat() const { return heartbeat_; }
  const std::atomic<const char*>& phase() const { return phase_; }

 private:
  enum class Got { kValue, kError, kCancelled };

  void Burst(int64_t r, int n);
  void MapPhase(int64_t r, int n);
  void Alone(int64_t r);
  void ShortPool(int64_t r);
  void CheckBig(int64_t r);

  // Waits (bounded) for f. Throws Hung if it is not done in time.
  template <typename T>
  Got Await(const Future<T>& f, const std::string& what,
            std::exception_ptr* error);
  void Wrong(const std::string& what);
  void Touch(const char* phase);
  Options PoolOptions() const;

  const RunnerConfig config_;
  Tally* const tally_;
  std::mt19937_64 rng_;
  std::unique_ptr<ProcessPoolExecutor> pool_;
  std::vector<int64_t> recent_pids_;  // the last few workers seen
  std::atomic<int64_t> heartbeat_{0};
  std::atomic<const char*> phase_{"start"};
};

// The exception's dynamic type and what(), for messages.
std::string Describe(const std::exception_ptr& e);

}  // namespace soak
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_SOAK_RUNNER_H_
