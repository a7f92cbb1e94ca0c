// tools/bench: procpool's benchmark suite (issue 3). Runs fixed workloads on
// pools of 2 workers and prints one figure per metric, as a table or as JSON
// lines that tools/bench_compare.sh sets beside CPython's, loky's and
// pebble's (tools/bench_python.py measures the same workloads there).
//
// Usage:
//   bazel run -c opt //tools:bench -- --transport=unix
//   bazel run -c opt //tools:bench -- --transport=unix --json
//   bazel run -c opt //tools:bench -- --quick --only=roundtrip,echo
//
// --json prints, on stdout, one line per figure:
//   {"system": "procpool-unix", "metric": "roundtrip_us_p50", "value": 41.2}
// and the progress display goes to stderr either way. See tools/BENCHMARKS.md
// for what each metric measures and the figures of the last run.
//
// This binary is also its own worker binary: main() calls procpool::Init
// first, and the tasks are registered in tasks.cc.
#include <unistd.h>

#include <exception>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "executor/process_pool_executor.h"
#include "tools/bench/array_workloads.h"
#include "tools/bench/report.h"
#include "tools/bench/workloads.h"
#include "transport/transport.h"

ABSL_FLAG(std::string, transport, "",
          "Registered transport to measure (e.g. unix, shm); empty: "
          "--procpool_transport's value.");
ABSL_FLAG(std::string, start_method, "forkserver",
          "fork | forkserver | spawn: how the pools of every workload but "
          "first_result start their workers (first_result measures all three).");
ABSL_FLAG(bool, json, false,
          "Print one JSON line per figure on stdout instead of a table.");
ABSL_FLAG(bool, quick, false,
          "Shrink every workload to a smoke run (a few seconds; the figures "
          "are not meaningful).");
ABSL_FLAG(int, workers, 2, "Workers per pool.");
ABSL_FLAG(int, reps, 0,
          "Repetitions of the throughput workloads (0: the default, 3); more "
          "for profiling one workload with perf.");
ABSL_FLAG(std::string, latency_log, "",
          "File for the roundtrip workload's per-call log: start (CLOCK_MONOTONIC "
          "ns) and duration (ns) of each call; a histogram of the durations "
          "goes to stderr. For `perf sched record -k mono` (tools/BENCHMARKS.md, "
          "\"The tail\").");
ABSL_FLAG(std::string, only, "",
          "Comma-separated subset of the workloads first_result, submit, map, "
          "roundtrip, echo, arrays, crash (empty: all).");

namespace procpool {
namespace bench {
namespace {

const char* const kWorkloads[] = {"first_result", "submit", "map",
                                  "roundtrip",    "echo",   "arrays",
                                  "crash"};

StartMethod ParseStartMethodOrDie(const std::string& name) {
  if (name == "fork") return StartMethod::kFork;
  if (name == "forkserver") return StartMethod::kForkServer;
  if (name == "spawn") return StartMethod::kSpawn;
  std::cerr << "bench: unknown --start_method=" << name
            << " (known: fork, forkserver, spawn)\n";
  exit(2);
}

std::set<std::string> SelectedWorkloads(const std::string& only) {
  std::set<std::string> known(std::begin(kWorkloads), std::end(kWorkloads));
  if (only.empty()) return known;
  std::set<std::string> selected;
  for (absl::string_view w : absl::StrSplit(only, ',', absl::SkipEmpty())) {
    if (known.count(std::string(w)) == 0) {
      std::cerr << "bench: unknown workload in --only: " << w << " (known: "
                << absl::StrJoin(kWorkloads, ", ") << ")\n";
      exit(2);
    }
    selected.insert(std::string(w));
  }
  return selected;
}

int Main() {
  Config config;
  config.transport = absl::GetFlag(FLAGS_transport);
  if (config.transport.empty()) {
    config.transport = absl::GetFlag(FLAGS_procpool_transport);
  }
  if (!GetTransport(config.transport).ok()) {
    std::cerr << "bench: transport \"" << config.transport
              << "\" is not registered in this build (known: "
              << absl::StrJoin(KnownTransports(), ", ") << ")\n";
    return 2;
  }
  const std::string method_name = absl::GetFlag(FLAGS_start_method);
  config.start_method = ParseStartMethodOrDie(method_name);
  config.workers = absl::GetFlag(FLAGS_workers);
  if (absl::GetFlag(FLAGS_quick)) config = Config::Quick(config);
  if (absl::GetFlag(FLAGS_reps) > 0) config.reps = absl::GetFlag(FLAGS_reps);
  config.latency_log = absl::GetFlag(FLAGS_latency_log);
  const std::set<std::string> selected =
      SelectedWorkloads(absl::GetFlag(FLAGS_only));
  const std::string system = absl::StrCat("procpool-", config.transport);

  Progress progress(static_cast<int>(selected.size()));
  std::vector<Figure> figures;
  auto append = [&figures](std::vector<Figure> more) {
    figures.insert(figures.end(), more.begin(), more.end());
  };
  // First: its cold figure is the first fork-server pool of the process.
  if (selected.count("first_result")) {
    progress.Begin("first_result (fork, forkserver, spawn)");
    append(RunFirstResult(config, progress));
    progress.End();
  }
  {
    std::unique_ptr<ProcessPoolExecutor> pool;
    auto shared_pool = [&]() -> ProcessPoolExecutor& {
      if (pool == nullptr) {
        pool = std::make_unique<ProcessPoolExecutor>(
            config.PoolOptions(config.start_method));
        WarmUp(config, *pool);
      }
      return *pool;
    };
    if (selected.count("submit")) {
      progress.Begin("submit");
      append(RunSubmit(config, shared_pool(), progress));
      progress.End();
    }
    if (selected.count("map")) {
      progress.Begin("map");
      append(RunMap(config, shared_pool(), progress));
      progress.End();
    }
    if (selected.count("roundtrip")) {
      progress.Begin("roundtrip");
      append(RunRoundtrip(config, shared_pool(), progress));
      progress.End();
    }
    if (selected.count("echo")) {
      progress.Begin("echo (1 MiB, 64 MiB)");
      append(RunEcho(config, shared_pool(), progress));
      progress.End();
    }
    if (selected.count("arrays")) {
      progress.Begin("arrays (round trips, split transform)");
      append(RunArrays(config, shared_pool(), progress));
      progress.End();
    }
  }
  if (selected.count("crash")) {
    progress.Begin("crash");
    append(RunCrashDetect(config, progress));
    progress.End();
  }

  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(std::cout, system, figures);
  } else {
    PrintTable(std::cout,
               absl::StrCat(system, ": ", config.workers,
                            " workers, start method ", method_name,
                            " (first_result: each method), ",
                            sysconf(_SC_NPROCESSORS_ONLN), " CPUs",
                            absl::GetFlag(FLAGS_quick) ? ", --quick" : ""),
               figures);
  }
  return 0;
}

}  // namespace
}  // namespace bench
}  // namespace procpool

int main(int argc, char** argv) {
  procpool::Init(argc, argv);  // in a worker: serves here, never returns
  absl::SetProgramUsageMessage(
      "procpool's benchmark suite: bench --transport=T [--start_method=M] "
      "[--json] [--quick] [--only=W,...]");
  absl::ParseCommandLine(argc, argv);
  try {
    return procpool::bench::Main();
  } catch (const std::exception& e) {
    std::cerr << "bench: " << e.what() << "\n";
    return 1;
  }
}
