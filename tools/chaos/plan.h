// What one chaos wave does: the work it submits, the fault it arms in its
// workers and the signal it sends one of them from outside. A plan is drawn
// from (seed, wave index) alone, so `chaos --seed=S --only_wave=K` replays
// wave K of a run exactly (its timing, of course, differs).
//
// Example:
//   PlanParams params{/*fault_probability=*/0.5, /*kill_probability=*/0.25,
//                     {StartMethod::kForkServer}};
//   WavePlan plan = MakePlan(/*seed=*/42, /*index=*/7, params);
//   std::cerr << Describe(plan) << "\n";
#ifndef PROCPOOL_TOOLS_CHAOS_PLAN_H_
#define PROCPOOL_TOOLS_CHAOS_PLAN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/start_method.h"
#include "testing/fault_injection/fault_injection.h"
#include "testing/fault_injection/parent_faults.h"

namespace procpool {
namespace chaos {

// The test tasks (executor/testdata/test_tasks.h) a wave submits.
enum class TaskKind { kPow, kSleepMs, kEcho, kLength, kFailIfThree, kNoop };

const char* TaskKindName(TaskKind kind);

// One Submit: kind(a, b) or kind(text).
struct SubmitOp {
  TaskKind kind = TaskKind::kNoop;
  int a = 0;
  int b = 0;
  std::string text;  // kEcho, kLength (1 MiB and more makes kMidSend fire)
};

// One Map over kPow (pairs of xs and ys), kFailIfThree or kSleepMs (xs).
struct MapOp {
  TaskKind kind = TaskKind::kPow;
  std::vector<int> xs;
  std::vector<int> ys;
  int chunksize = 1;
  int buffersize = 0;  // 0: every chunk submitted by Map() itself
};

struct Op {
  bool is_map = false;
  SubmitOp submit;
  MapOp map;
  int pause_us = 0;  // slept before the op, so that faults interleave
};

// A signal sent to one live worker from outside the pool.
struct OutsideKill {
  // When, besides before_op (dense plans name the moment they aim at).
  enum class When {
    kBeforeOp,     // while the ops are submitted
    kStartUp,      // as soon as a worker's pid shows, after the first Submit
    kBigTransfer,  // right after ops that send multi-MiB arguments (the
                   // wave first waits for ops[0], so the workers are up)
    kShutdown,     // right after Shutdown(wait=false), work still pending
  };
  int signal = 0;     // SIGKILL, SIGTERM or SIGSTOP
  int before_op = 0;  // sent before ops[before_op]; ops.size(): after them all
  int delay_ms = 0;   // slept first (only when sent after every op)
  int target = 0;     // WorkerPids()[target % size]
  When when = When::kBeforeOp;
};

const char* WhenName(OutsideKill::When when);

struct WavePlan {
  uint64_t seed = 0;
  int64_t index = 0;
  StartMethod start_method = StartMethod::kForkServer;
  std::vector<Op> ops;
  std::optional<fault::Spec> fault;  // armed in every worker (fault::ArmFault)
  // Armed in the parent's channels (needs the "fault-" transport).
  std::optional<fault::ParentSpec> parent_fault;
  std::optional<OutsideKill> kill;
};

// The kind of a fault, as the summary counts it: "worker:Point/Mode",
// "parent:Mode" or "signal:SIGNAME@when".
std::string KindName(const fault::Spec& spec);
std::string KindName(const fault::ParentSpec& spec);
std::string KindName(const OutsideKill& kill);

struct PlanParams {
  double fault_probability = 0.5;  // a wave arms a random fault
  double kill_probability = 0.25;  // a wave signals a worker from outside
  std::vector<StartMethod> start_methods;  // one is drawn per wave
  // Dense plans: short waves, each injecting one fault of the kind
  // DenseKinds()[(seed + index) % size]; the probabilities are not used.
  bool dense = false;
};

// The kinds a dense run cycles through, in order: every (point, mode) of the
// worker-side harness that Applies(), every parent-side mode, and SIGKILL,
// SIGTERM and SIGSTOP from outside at each OutsideKill::When. A dense wave
// injects exactly one of them (its name is KindName's).
std::vector<std::string> DenseKinds();

// The plan of wave `index` of a run seeded with `seed`. Deterministic.
WavePlan MakePlan(uint64_t seed, int64_t index, const PlanParams& params);

// One line: start method, fault, outside kill and the ops in short.
std::string Describe(const WavePlan& plan);

}  // namespace chaos
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_CHAOS_PLAN_H_
