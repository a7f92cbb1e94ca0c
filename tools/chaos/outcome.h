// What a chaos wave counts: how each of its futures ended (Outcome) and the
// wave's result (WaveResult), filled by the wave (wave.h) and by the futures'
// trackers (tracked.h), summed up by summary.h.
//
// Thread safety: plain values; a WaveResult is filled by one thread at a time.
#ifndef PROCPOOL_TOOLS_CHAOS_OUTCOME_H_
#define PROCPOOL_TOOLS_CHAOS_OUTCOME_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace procpool {
namespace chaos {

// How a future (a Submit, or one element of a Map) ended.
enum class Outcome {
  kCompleted,   // the right value (or, for FailIfThree(3), its exception)
  kBroken,      // BrokenProcessPool
  kTaskError,   // the std::invalid_argument that FailIfThree(3) throws
  kOther,       // any other exception: a bug
  kCancelled,   // cancelled (by KillWorkers, or a Map's timeout)
  kWrong,       // a value other than the task's: a bug
  kUnresolved,  // never resolved: a bug
};

struct WaveResult {
  // Each submitted future ends in exactly one of these (Outcome).
  int64_t completed = 0;
  int64_t failed_broken = 0;
  int64_t failed_task_error = 0;
  int64_t failed_other = 0;
  int64_t cancelled = 0;
  int64_t wrong_results = 0;
  int64_t unresolved = 0;
  void Add(Outcome outcome);
  int64_t submitted() const;

  // Submit/Map threw (the pool was already broken or shut down): never
  // became futures.
  int64_t rejected = 0;
  // Futures not resolved within hang_timeout, plus teardowns that were not
  // done within it.
  int64_t hung = 0;

  // Faults that fired, by kind (plan.h's KindName): a worker-side fault once
  // per worker that fired it (it notes so in WaveConfig::fired_file), a
  // parent-side one when its channel acted, an outside signal when kill(2)
  // reached a live worker.
  std::map<std::string, int64_t> fired;

  bool fault_armed = false;     // the plan armed a fault (worker or parent)
  bool kill_delivered = false;  // the outside signal reached a live worker
  bool broken = false;          // some future (or Submit) saw BrokenProcessPool
  bool stop_killed = false;     // the tool called KillWorkers for a stop
  // The pool broke with no fault armed, no signal sent and no KillWorkers.
  bool spurious_broken = false;
  // Destroying the pool did not finish within hang_timeout: the pool is
  // abandoned and no further wave should run.
  bool teardown_hung = false;

  // From the fault or kill to the first BrokenProcessPool (see chaos_main.cc's
  // help for how the fault's time is taken). Unset when the pool did not
  // break, or broke only because the tool called KillWorkers.
  std::optional<double> detect_ms;
  bool detect_from_kill = false;  // timed from kill(2), not from a Submit
  bool detect_from_fired = false;  // timed from the moment a fault fired

  // One sentence per anomaly (a bug in the pool, or in this tool).
  std::vector<std::string> problems;
};

}  // namespace chaos
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_CHAOS_OUTCOME_H_
