// tools/chaos: runs waves of pools under random faults and checks that
// nothing hangs, leaks or is lost (issue 4, point 4). See kUsage below, or
// `bazel run //tools:chaos -- --help`.
//
// (Named chaos_main.cc so that absl's --help lists the flags defined here.)
// This binary is its own worker binary: main() calls procpool::Init first.
// It links the fault-injection harness (which arms faults in the workers) and
// the executor's test tasks (the work it submits).
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "executor/process_pool_executor.h"
#include "executor/testdata/test_tasks.h"
#include "glog/logging.h"
#include "testing/fault_injection/fault_injection.h"
#include "testing/fault_injection/parent_faults.h"
#include "testing/process_helpers.h"
#include "tools/chaos/leaks.h"
#include "tools/chaos/plan.h"
#include "tools/chaos/summary.h"
#include "tools/chaos/wave.h"
#include "transport/transport.h"

ABSL_FLAG(std::string, transport, "",
          "Registered transport to torture (unix, shm, capnp, ...); empty: "
          "--procpool_transport's value.");
ABSL_FLAG(double, seconds, 60, "Run waves for this long.");
ABSL_FLAG(double, kill_probability, 0.5,
          "Probability that a wave arms a random fault in its workers.");
ABSL_FLAG(double, outside_kill_probability, -1,
          "Probability that a wave sends SIGKILL, SIGTERM or SIGSTOP to one "
          "of its workers from outside; negative: half --kill_probability.");
ABSL_FLAG(bool, json, false, "Print the summary as one line of JSON.");
ABSL_FLAG(std::string, start_method, "forkserver",
          "fork | forkserver | spawn | all (one drawn per wave).");
ABSL_FLAG(uint64_t, seed, 0, "Seed of the wave plans; 0: from the clock.");
ABSL_FLAG(int64_t, waves, 0, "Stop after this many waves (0: no limit).");
ABSL_FLAG(int64_t, faults, 0,
          "Stop once this many faults were injected (waves that armed a fault "
          "or signalled a worker; 0: no limit). --seconds still bounds the "
          "run: raise it for a long fault-count campaign.");
ABSL_FLAG(int64_t, only_wave, -1,
          "Run the plan of this wave (of --seed) in every wave: replays a "
          "wave that found a problem.");
ABSL_FLAG(absl::Duration, hang_timeout, absl::Seconds(30),
          "A future not resolved this long after the wave's last submission "
          "is hung; so is a pool whose teardown takes this long.");
ABSL_FLAG(absl::Duration, stop_timeout, absl::ZeroDuration(),
          "A worker stopped this long is hung: the tool calls KillWorkers(). "
          "0: 1s, or 3 x --heartbeat_timeout + 1s when that is set.");
ABSL_FLAG(absl::Duration, heartbeat_timeout, absl::InfiniteDuration(),
          "Options::heartbeat_timeout of every pool (default: off, as in "
          "CPython). When set, the pool itself must detect stopped workers; "
          "one the tool still finds stopped after --stop_timeout is hung.");
ABSL_FLAG(bool, dense, false,
          "Dense injection: short waves (3 to 8 small ops), each injecting "
          "exactly one fault, cycling through every kind: each worker-side "
          "point x mode of testing/fault_injection, each parent-side channel "
          "fault (over the fault-TRANSPORT wrapper) and SIGKILL/SIGTERM/"
          "SIGSTOP from outside mid-work, at start-up, during a multi-MiB "
          "transfer and during shutdown. The probabilities are not used; "
          "--stop_timeout defaults to 100ms.");
ABSL_FLAG(bool, verbose, false, "Print every wave's plan and outcome.");
ABSL_FLAG(bool, pool_logs, false,
          "Let the pool's own log lines (one per broken pool) through.");

namespace procpool {
namespace chaos {
namespace {

constexpr char kUsage[] = R"(chaos: waves of procpool pools under random faults.

  bazel run //tools:chaos -- --transport=unix --seconds=60 --kill_probability=0.5
      [--json] [--start_method=forkserver|fork|spawn|all] [--seed=N]
      [--faults=N] [--waves=N] [--dense]

It stops after --seconds, or earlier after --waves waves or once --faults
faults have fired, whichever comes first. A fault fired when a worker armed
with it reached its point (each worker that did counts one: it notes so in a
file), when a parent-side channel fault acted, or when a signal from outside
reached a live worker; faults armed that never fired are not counted. The
summary counts them per kind (faults_by_kind).

--dense makes every wave short and inject exactly one fault, cycling through
every kind in turn (the wave's kind is DenseKinds()[(seed + wave) % count]):
each point x mode of the worker-side harness, each parent-side channel fault
(testing/fault_injection/parent_faults.h: the pools then use the
"fault-TRANSPORT" wrapper of the transport), and SIGKILL, SIGTERM and SIGSTOP
from outside while ops are submitted, at a worker's start-up, right after two
multi-MiB arguments were sent, and right after Shutdown(wait=false). The JSON
fields fault_kinds and fault_kinds_hit say how many kinds there are and how
many fired at least once.

Each wave starts a ProcessPoolExecutor with 2 workers, submits a random mix of
the executor's test tasks with Submit and Map, and checks every result. With
probability --kill_probability the wave arms a random fault in its workers
(testing/fault_injection: SIGKILL, SIGSEGV, abort, _exit(n), a dropped channel,
a corrupt frame or SIGSTOP, at a random point, on a random call); with
probability --outside_kill_probability one worker gets SIGKILL, SIGTERM or
SIGSTOP from outside (its pid from WorkerPids()).

Every wait is bounded. A future not resolved within --hang_timeout of the
wave's last submission counts as hung (the tool then calls KillWorkers() to
go on); one still unresolved when its pool has been destroyed counts as
unresolved. A stopped worker (SIGSTOP, or the Stop fault) hangs without dying:
by default (Options::heartbeat_timeout off, as in CPython) the pool cannot
tell it from a slow one, so once a worker has been stopped for --stop_timeout
the tool calls KillWorkers(), as the heartbeats of issue 6 would; such waves
count as stop_kills, not as hangs. With --heartbeat_timeout the pools use
those heartbeats, and a worker still stopped after --stop_timeout means the
pool missed it: that counts as hung.

After each wave (its pool destroyed) the tool counts what is left over the
baseline taken after a warm-up pool: worker processes (its own children and
the fork server's), descriptors and shared mappings.

Detection latency (detect_ms_p50/p99) runs from the fault to the first
BrokenProcessPool of the wave (a Submit future's done callback, a Map element,
or Submit refusing work). A signal sent from outside is timed from kill(2):
exact (detect_kill_ms_*). A fault armed inside a worker is timed from the
moment it fired: the worker appends the time (CLOCK_MONOTONIC) to a file just
before it acts (detect_fired_ms_*; both exact kinds: detect_exact_ms_p99).
Where no such time was written (a fault that did not fire, yet the pool
broke), it is timed from the Submit that would make it fire (plus the delay
of a MidTask fault; an Initializer fault from the first Submit): an upper
bound that includes the worker's start and the time the call queued
(detect_fault_ms_*). Waves that only the tool's own KillWorkers() broke give
no sample.

Exit status: 0 if nothing hung, leaked or was left unresolved, no result was
wrong, no future failed with an unexpected exception and no pool broke with
nothing injected; 1 otherwise; 2 for bad flags. Each problem is printed on
stderr with the wave's plan and a command that replays it (--only_wave).)";

std::vector<StartMethod> ParseStartMethods(const std::string& name) {
  if (name == "fork") return {StartMethod::kFork};
  if (name == "forkserver") return {StartMethod::kForkServer};
  if (name == "spawn") return {StartMethod::kSpawn};
  if (name == "all") {
    return {StartMethod::kForkServer, StartMethod::kSpawn, StartMethod::kFork};
  }
  return {};
}

// A pool per start method, then one that breaks, so that whatever a process
// creates once (the fork server, lazily opened files) is in the baseline.
bool WarmUp(const WaveConfig& config, const std::vector<StartMethod>& methods) {
  const absl::Duration bound = config.hang_timeout;
  namespace tt = ::procpool::test_tasks;
  try {
    for (StartMethod method : methods) {
      Options options;
      options.max_workers = 2;
      options.transport = config.pool_transport;
      options.start_method = method;
      options.heartbeat_timeout = config.heartbeat_timeout;
      {
        ProcessPoolExecutor pool(options);
        Future<void> a = pool.Submit(tt::Noop);
        Future<void> b = pool.Submit(tt::Noop);
        a.Get(bound);
        b.Get(bound);
      }
      options.initializer =
          fault::ArmFault({fault::Point::kTaskStart, fault::Mode::kSigsegv});
      ProcessPoolExecutor pool(options);
      try {
        pool.Submit(tt::Noop).Get(bound);
      } catch (const BrokenProcessPool&) {
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "chaos: the warm-up pool failed: " << e.what() << "\n";
    return false;
  }
  return true;
}

enum class WarmUpResult { kOk, kFailed, kHung };

// WarmUp on a thread of its own, bounded like every wave: a pool that cannot
// be destroyed must not hang the tool.
WarmUpResult BoundedWarmUp(const WaveConfig& config,
                           const std::vector<StartMethod>& methods) {
  const absl::Duration bound = config.hang_timeout;
  auto result = std::make_shared<std::atomic<int>>(-1);
  std::thread warm([=] { result->store(WarmUp(config, methods)); });
  if (!testing::WaitFor([&] { return result->load() >= 0; },
                        3 * bound + absl::Seconds(10))) {
    warm.detach();
    std::cerr << "chaos: PROBLEM: a warm-up pool (2 Noop tasks, then a "
                 "worker killed by a fault) did not finish within "
              << absl::FormatDuration(3 * bound + absl::Seconds(10)) << "\n";
    return WarmUpResult::kHung;
  }
  warm.join();
  return result->load() == 1 ? WarmUpResult::kOk : WarmUpResult::kFailed;
}

void Report(const Summary& summary) {
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(std::cout, summary);
  } else {
    PrintTable(std::cout, summary);
  }
  std::cout.flush();
  std::cerr.flush();
}

// A command that runs `plan`'s wave again (and again: timing varies).
std::string ReplayCommand(const WavePlan& plan, const PlanParams& params,
                          const WaveConfig& config) {
  std::string command = absl::StrCat(
      "bazel run //tools:chaos -- --transport=", config.transport,
      // The flag as given: the plan draws its start method from that list.
      " --start_method=", absl::GetFlag(FLAGS_start_method),
      absl::GetFlag(FLAGS_dense) ? " --dense" : "",
      " --seed=", plan.seed, " --only_wave=", plan.index,
      " --kill_probability=", params.fault_probability,
      " --outside_kill_probability=", params.kill_probability);
  if (config.heartbeat_timeout != absl::InfiniteDuration()) {
    absl::StrAppend(&command, " --heartbeat_timeout=",
                    absl::FormatDuration(config.heartbeat_timeout));
  }
  return absl::StrCat(command, " --waves=20 --verbose");
}

int Main() {
  std::string transport = absl::GetFlag(FLAGS_transport);
  if (transport.empty()) transport = absl::GetFlag(FLAGS_procpool_transport);
  if (!GetTransport(transport).ok()) {
    std::cerr << "chaos: transport \"" << transport
              << "\" is not registered in this build (known: "
              << absl::StrJoin(KnownTransports(), ", ") << ")\n";
    return 2;
  }
  const std::string method = absl::GetFlag(FLAGS_start_method);
  PlanParams params;
  params.start_methods = ParseStartMethods(method);
  if (params.start_methods.empty()) {
    std::cerr << "chaos: unknown --start_method=" << method
              << " (known: fork, forkserver, spawn, all)\n";
    return 2;
  }
  params.dense = absl::GetFlag(FLAGS_dense);
  if (transport == "capnp" && method != "forkserver" && method != "spawn") {
    std::cerr << "chaos: the capnp transport does not run with the fork start "
                 "method: use --start_method=forkserver or spawn\n";
    return 2;
  }
  params.fault_probability = absl::GetFlag(FLAGS_kill_probability);
  params.kill_probability = absl::GetFlag(FLAGS_outside_kill_probability);
  if (params.kill_probability < 0) {
    params.kill_probability = params.fault_probability / 2;
  }
  if (params.fault_probability < 0 || params.fault_probability > 1 ||
      params.kill_probability > 1) {
    std::cerr << "chaos: probabilities must lie in [0, 1]\n";
    return 2;
  }
  WaveConfig config;
  config.transport = transport;
  config.hang_timeout = absl::GetFlag(FLAGS_hang_timeout);
  config.heartbeat_timeout = absl::GetFlag(FLAGS_heartbeat_timeout);
  config.stop_timeout = absl::GetFlag(FLAGS_stop_timeout);
  if (config.stop_timeout <= absl::ZeroDuration()) {
    config.stop_timeout =
        config.heartbeat_timeout != absl::InfiniteDuration()
            ? 3 * config.heartbeat_timeout + absl::Seconds(1)
            : params.dense ? absl::Milliseconds(100) : absl::Seconds(1);
  }
  // Dense runs need the parent-side wrapper; the others use the transport
  // itself, as before.
  config.pool_transport =
      params.dense ? fault::WrappedTransportName(transport) : transport;
  const char* tmp = getenv("TEST_TMPDIR");
  config.fired_file = absl::StrCat(tmp != nullptr && *tmp ? tmp : "/tmp",
                                   "/chaos-fired-", getpid());
  uint64_t seed = absl::GetFlag(FLAGS_seed);
  if (seed == 0) seed = std::random_device()() | 1;
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const int64_t max_waves = absl::GetFlag(FLAGS_waves);
  const int64_t max_faults = absl::GetFlag(FLAGS_faults);
  const int64_t only_wave = absl::GetFlag(FLAGS_only_wave);
  const bool verbose = absl::GetFlag(FLAGS_verbose);

  Summary summary;
  summary.transport = transport;
  summary.start_method = method;
  summary.seed = seed;
  if (params.dense) summary.kinds = DenseKinds();
  switch (BoundedWarmUp(config, params.start_methods)) {
    case WarmUpResult::kOk:
      break;
    case WarmUpResult::kFailed:
      return 1;
    case WarmUpResult::kHung:
      summary.hung = 1;
      summary.aborted = true;
      Report(summary);
      _exit(1);  // the stuck pool's threads would keep exit() waiting
  }
  LeakChecker leaks;
  Progress progress(seconds);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  };
  for (int64_t i = 0;
       elapsed() < seconds && (max_waves <= 0 || i < max_waves) &&
       (max_faults <= 0 || summary.faults() < max_faults);
       ++i) {
    const int64_t index = only_wave >= 0 ? only_wave : i;
    const WavePlan plan = MakePlan(seed, index, params);
    WaveResult result = RunWave(plan, config);
    summary.Add(result);
    Leaks left;
    if (!result.teardown_hung) {
      left = leaks.Check(absl::Seconds(2));
      summary.AddLeaks(left);
      if (!left.detail.empty()) result.problems.push_back(left.detail);
    }
    if (verbose || !result.problems.empty()) {
      progress.Done();
      std::cerr << (result.problems.empty() ? "" : "chaos: PROBLEM: ")
                << Describe(plan) << "\n  outcome: " << result.submitted()
                << " futures, " << result.completed << " completed, "
                << result.failed_broken << " broken, "
                << result.failed_task_error << " task errors, "
                << result.cancelled << " cancelled, " << result.rejected
                << " rejected"
                << (result.detect_ms ? absl::StrFormat(", detected in %.1f ms",
                                                       *result.detect_ms)
                                     : "")
                << "\n";
      for (const std::string& p : result.problems) {
        std::cerr << "  problem: " << p << "\n";
      }
      if (!result.problems.empty()) {
        std::cerr << "  replay: " << ReplayCommand(plan, params, config)
                  << "\n";
      }
    }
    progress.Update(summary, elapsed());
    if (result.teardown_hung) break;  // the pool is stuck: stop here
  }
  summary.seconds = elapsed();
  progress.Update(summary, summary.seconds, /*force=*/true);
  progress.Done();
  Report(summary);
  unlink(config.fired_file.c_str());
  // A stuck pool's threads would keep a normal exit waiting.
  if (summary.aborted) _exit(1);
  return summary.Ok() ? 0 : 1;
}

}  // namespace
}  // namespace chaos
}  // namespace procpool

int main(int argc, char** argv) {
  procpool::Init(argc, argv);  // in a worker: serves here, never returns
  absl::SetProgramUsageMessage(procpool::chaos::kUsage);
  absl::ParseCommandLine(argc, argv);
  // Log to stderr only (log files would look like leaked descriptors), and
  // by default not the pool's line per broken pool: it would drown the
  // progress display.
  FLAGS_logtostderr = true;
  if (!absl::GetFlag(FLAGS_pool_logs)) FLAGS_minloglevel = google::GLOG_FATAL;
  google::InitGoogleLogging(argv[0]);
  return procpool::chaos::Main();
}
