// One chaos wave: a fresh pool of 2 workers runs a WavePlan (its work, its
// armed fault, its outside signal), every future is waited for with a bound,
// and the pool is torn down with a bound. Leaks are checked by the caller
// (leaks.h) once the pool is gone.
//
// Example:
//   WaveConfig config;
//   config.transport = "unix";
//   WaveResult r = RunWave(MakePlan(seed, i, params), config);
//   if (r.teardown_hung) ...  // the pool is stuck: stop running waves
//
// Hangs: a future not resolved within hang_timeout of the last submission
// counts as hung, and the tool then calls KillWorkers() to get the wave
// unstuck; one still unresolved once the pool is destroyed counts as
// unresolved. A worker seen stopped (SIGSTOP, or fault::Mode::kStop) for
// stop_timeout is hung: the tool calls KillWorkers(), as the pool's heartbeats
// would (Options::heartbeat_timeout, off by default as in CPython). With
// heartbeat_timeout set, the pool must have detected it first: a worker still
// stopped after stop_timeout then counts as hung.
//
// Thread safety: RunWave may run on one thread at a time (it reads the
// process's children and descriptors through the caller's leak checks).
#ifndef PROCPOOL_TOOLS_CHAOS_WAVE_H_
#define PROCPOOL_TOOLS_CHAOS_WAVE_H_

#include <string>

#include "absl/time/time.h"
#include "tools/chaos/outcome.h"
#include "tools/chaos/plan.h"

namespace procpool {
namespace chaos {

struct WaveConfig {
  std::string transport;
  // The transport the pools use: `transport`, or its parent-side fault
  // wrapper ("fault-" + transport), needed by plans with a parent_fault.
  std::string pool_transport;
  // A file the workers append a byte to as an armed fault fires (truncated
  // before each wave); empty: fired worker faults are not counted.
  std::string fired_file;
  absl::Duration hang_timeout = absl::Seconds(30);
  absl::Duration stop_timeout = absl::Seconds(1);
  // Options::heartbeat_timeout of the wave's pool (infinite: off).
  absl::Duration heartbeat_timeout = absl::InfiniteDuration();
};

WaveResult RunWave(const WavePlan& plan, const WaveConfig& config);

}  // namespace chaos
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_CHAOS_WAVE_H_
