// tools/bench_cluster: procpool's cluster pool against mpi4py.futures
// (issue 14, point 5). Rank 0 runs the workloads below on a pool whose
// workers are the cluster's slots (Options left empty); every other rank is
// a worker daemon (//cluster:mpi). tools/bench_mpi4py.py measures the same
// workloads on MPIPoolExecutor, and tools/bench_cluster.sh runs both under
// the same launcher and rank count and prints them side by side with the
// ratios (see tools/BENCHMARKS.md, "On a cluster").
//
// Usage:
//   PROCPOOL_BENCH_LAUNCH_TIME=$(date +%s.%N) \
//   mpirun --allow-run-as-root --oversubscribe --enable-recovery -n 3 \
//       -x PROCPOOL_BENCH_LAUNCH_TIME \
//       bazel-bin/tools/bench_cluster --procpool_cluster=mpi [--json] [--quick]
//
// The workloads, in this order, on one pool:
//   first_result_from_launch_ms    wall clock from PROCPOOL_BENCH_LAUNCH_TIME
//                                  (the driver's `date +%s.%N` just before
//                                  the launch line) to the first result;
//                                  skipped without it
//   first_result_in_program_ms     (extra) pool construction to that result
//   roundtrip_us_p50 / _p99        sequential Submit(Noop).Get()
//   submit_throughput_tasks_per_s  N no-op Submits, then Get() on all
//   map_chunk1000_items_per_s      Map(Identity, 0..N-1), chunksize 1000
//   echo_1MiB_MB_per_s             a 1 MiB std::string out and back
//
// --json prints, on stdout, one line per figure:
//   {"system": "procpool-cluster", "metric": "roundtrip_us_p50", "value": 41.2}
// and {"system": ..., "metric": "workers", "value": N} (the distinct worker
// pids seen in the warm-up). Progress goes to stderr.
//
// This binary is also the ranks' worker binary: main() calls procpool::Init
// first (ranks > 0 serve from there), and the tasks are registered below.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "executor/process_pool_executor.h"
#include "tools/bench/stats.h"

ABSL_FLAG(bool, json, false,
          "Print one JSON line per figure on stdout instead of a table.");
ABSL_FLAG(bool, quick, false,
          "Shrink every workload to a smoke run (the figures mean nothing).");
ABSL_FLAG(std::string, only, "roundtrip,submit,map,echo",
          "Comma-separated subset of roundtrip, submit, map, echo (the first "
          "result is always measured).");
ABSL_FLAG(int, reps, 3, "Repetitions of submit and map (median).");
ABSL_FLAG(int, roundtrips, 2000, "Sequential round trips measured.");
ABSL_FLAG(int, submit_tasks, 20000, "No-op tasks per submit repetition.");
ABSL_FLAG(int, map_items, 100000, "Elements per Map repetition.");
ABSL_FLAG(int, map_chunksize, 1000, "Map's chunksize.");
ABSL_FLAG(int, echo_reps, 50, "Sequential 1 MiB echoes measured.");

namespace procpool {
namespace bench_cluster {

// --- The tasks (tools/bench_mpi4py.py has their Python twins) ---------------

void Noop() {}
int Identity(int x) { return x; }
std::string Echo(const std::string& s) { return s; }
int GetPid() { return getpid(); }
// GetPid after 2 ms: warm-up bursts of these keep the first workers busy, so
// that the pool (which starts a worker only when none is idle at a submit,
// as CPython's does) starts every slot.
int GetPidSlowly() {
  usleep(2000);
  return getpid();
}

PROCPOOL_TASK(Noop);
PROCPOOL_TASK(Identity);
PROCPOOL_TASK(Echo);
PROCPOOL_TASK(GetPid);
PROCPOOL_TASK(GetPidSlowly);

namespace {

constexpr char kSystem[] = "procpool-cluster";
constexpr char kLaunchTimeEnv[] = "PROCPOOL_BENCH_LAUNCH_TIME";

using bench::Clock;
using bench::Median;
using bench::Percentile;
using bench::RepsNote;
using bench::SecondsSince;

struct Figure {
  std::string metric;
  double value = 0;
  std::string unit;
  std::string note;
};

struct Config {
  int reps = 3;
  int roundtrips = 2000;
  int submit_tasks = 20000;
  int map_items = 100000;
  int map_chunksize = 1000;
  int echo_reps = 50;
};

void Log(const std::string& text) {
  std::cerr << "bench_cluster: " << text << std::endl;
}

// The driver's launch time ($PROCPOOL_BENCH_LAUNCH_TIME, seconds since the
// epoch as `date +%s.%N` prints it), or nullopt.
std::optional<absl::Time> LaunchTime() {
  const char* value = getenv(kLaunchTimeEnv);
  if (value == nullptr || *value == '\0') return std::nullopt;
  double seconds = 0;
  if (!absl::SimpleAtod(value, &seconds)) {
    Log(absl::StrCat("ignoring ", kLaunchTimeEnv, "=", value,
                     ": not a number"));
    return std::nullopt;
  }
  return absl::FromUnixNanos(static_cast<int64_t>(seconds * 1e9));
}

// Bursts of GetPidSlowly until no new worker shows up for 5 bursts (at least 10
// bursts, at most 100), then 100 sequential no-ops, as tools/bench_mpi4py.py.
// Returns the number of distinct worker pids seen.
int WarmUp(ProcessPoolExecutor& pool) {
  std::set<int> pids;
  int stable = 0;
  for (int burst = 0; burst < 100; ++burst) {
    const size_t before = pids.size();
    std::vector<Future<int>> fs;
    for (int i = 0; i < 16; ++i) fs.push_back(pool.Submit(GetPidSlowly));
    for (const Future<int>& f : fs) pids.insert(f.Get());
    stable = pids.size() == before ? stable + 1 : 0;
    if (burst >= 9 && stable >= 5) break;
  }
  for (int i = 0; i < 100; ++i) pool.Submit(Noop).Get();
  return static_cast<int>(pids.size());
}

std::vector<Figure> RunRoundtrip(const Config& config,
                                 ProcessPoolExecutor& pool) {
  for (int i = 0; i < 200; ++i) pool.Submit(Noop).Get();  // warm-up
  std::vector<double> us;
  us.reserve(config.roundtrips);
  for (int i = 0; i < config.roundtrips; ++i) {
    const Clock::time_point start = Clock::now();
    pool.Submit(Noop).Get();
    us.push_back(SecondsSince(start) * 1e6);
  }
  std::sort(us.begin(), us.end());
  const std::string note =
      absl::StrCat(config.roundtrips, " sequential Submit(Noop).Get()");
  return {{"roundtrip_us_p50", Percentile(us, 50), "us", note},
          {"roundtrip_us_p99", Percentile(us, 99), "us", note}};
}

std::vector<Figure> RunSubmit(const Config& config, ProcessPoolExecutor& pool) {
  const int n = config.submit_tasks;
  std::vector<Future<void>> futures;
  futures.reserve(n);
  for (int i = 0; i < std::max(n / 10, 1); ++i) {
    futures.push_back(pool.Submit(Noop));
  }
  for (const Future<void>& f : futures) f.Get();  // warm-up
  std::vector<double> rates;
  for (int r = 0; r < config.reps; ++r) {
    futures.clear();
    const Clock::time_point start = Clock::now();
    for (int i = 0; i < n; ++i) futures.push_back(pool.Submit(Noop));
    for (const Future<void>& f : futures) f.Get();
    rates.push_back(n / SecondsSince(start));
  }
  return {{"submit_throughput_tasks_per_s", Median(rates), "tasks/s",
           absl::StrCat(n, " no-op Submits, then Get all; ",
                        RepsNote(config.reps))}};
}

std::vector<Figure> RunMap(const Config& config, ProcessPoolExecutor& pool) {
  std::vector<int> inputs(config.map_items);
  std::iota(inputs.begin(), inputs.end(), 0);
  const int64_t expected =
      static_cast<int64_t>(config.map_items) * (config.map_items - 1) / 2;
  MapOptions options;
  options.chunksize = config.map_chunksize;
  {
    std::vector<int> warm(inputs.begin(),
                          inputs.begin() + std::max(config.map_items / 10, 1));
    for (int v : pool.Map(Identity, warm, options)) (void)v;
  }
  std::vector<double> rates;
  for (int r = 0; r < config.reps; ++r) {
    const Clock::time_point start = Clock::now();
    int64_t sum = 0;
    for (int v : pool.Map(Identity, inputs, options)) sum += v;
    rates.push_back(config.map_items / SecondsSince(start));
    if (sum != expected) throw std::runtime_error("map: wrong results");
  }
  return {{absl::StrCat("map_chunk", config.map_chunksize, "_items_per_s"),
           Median(rates), "items/s",
           absl::StrCat("Map(Identity) over ", config.map_items,
                        " ints, chunksize ", config.map_chunksize, "; ",
                        RepsNote(config.reps))}};
}

std::vector<Figure> RunEcho(const Config& config, ProcessPoolExecutor& pool,
                            int workers) {
  const size_t size = size_t{1} << 20;
  std::string payload(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    payload[i] = static_cast<char>((i % 256) * 131);
  }
  // Warm-up and check, once per worker at the same time (the first big
  // message grows each worker's buffers), as tools/bench_mpi4py.py.
  std::vector<Future<std::string>> warm;
  for (int w = 0; w < std::max(workers, 1); ++w) {
    warm.push_back(pool.Submit(Echo, payload));
  }
  for (Future<std::string>& f : warm) {
    if (f.Get() != payload) {
      throw std::runtime_error("echo: the payload came back changed");
    }
  }
  const Clock::time_point start = Clock::now();
  for (int r = 0; r < config.echo_reps; ++r) {
    if (pool.Submit(Echo, payload).Get().size() != size) {
      throw std::runtime_error("echo: wrong size came back");
    }
  }
  const double secs = SecondsSince(start);
  return {{"echo_1MiB_MB_per_s", 2.0 * size * config.echo_reps / 1e6 / secs,
           "MB/s",
           absl::StrCat("1 MiB out and back, 2 x size x ", config.echo_reps,
                        " sequential runs / time (MB = 1e6 bytes)")}};
}

// Plain decimals (no exponent), with fewer digits as numbers grow.
std::string FormatValue(double v) {
  if (v >= 1000) return absl::StrFormat("%.0f", v);
  if (v >= 10) return absl::StrFormat("%.1f", v);
  return absl::StrFormat("%.3f", v);
}

void Print(int workers, const std::vector<Figure>& figures) {
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << absl::StrFormat(
        "{\"system\": \"%s\", \"metric\": \"workers\", \"value\": %d}\n",
        kSystem, workers);
    for (const Figure& f : figures) {
      std::cout << absl::StrFormat(
          "{\"system\": \"%s\", \"metric\": \"%s\", \"value\": %.3f}\n",
          kSystem, f.metric, f.value);
    }
    std::cout.flush();
    return;
  }
  size_t width = 6;
  for (const Figure& f : figures) width = std::max(width, f.metric.size());
  std::cout << kSystem << ": " << workers << " workers\n"
            << absl::StrFormat("%-*s  %12s  %-8s  %s\n", width, "metric",
                               "value", "unit", "how")
            << std::string(width + 64, '-') << "\n";
  for (const Figure& f : figures) {
    std::cout << absl::StrFormat("%-*s  %12s  %-8s  %s\n", width, f.metric,
                                 FormatValue(f.value), f.unit, f.note);
  }
  std::cout.flush();
}

int Main() {
  Config config;
  if (absl::GetFlag(FLAGS_quick)) {
    config.reps = 1;
    config.roundtrips = 100;
    config.submit_tasks = 500;
    config.map_items = 5000;
    config.echo_reps = 2;
  } else {
    config.reps = absl::GetFlag(FLAGS_reps);
    config.roundtrips = absl::GetFlag(FLAGS_roundtrips);
    config.submit_tasks = absl::GetFlag(FLAGS_submit_tasks);
    config.map_items = absl::GetFlag(FLAGS_map_items);
    config.map_chunksize = absl::GetFlag(FLAGS_map_chunksize);
    config.echo_reps = absl::GetFlag(FLAGS_echo_reps);
  }
  const std::set<std::string> known = {"roundtrip", "submit", "map", "echo"};
  std::set<std::string> only;
  for (absl::string_view w :
       absl::StrSplit(absl::GetFlag(FLAGS_only), ',', absl::SkipEmpty())) {
    if (known.count(std::string(w)) == 0) {
      std::cerr << "bench_cluster: unknown workload in --only: " << w
                << " (known: roundtrip, submit, map, echo)\n";
      return 2;
    }
    only.insert(std::string(w));
  }

  const std::optional<absl::Time> launched = LaunchTime();
  const Clock::time_point start = Clock::now();
  ProcessPoolExecutor pool;  // Options left empty: the cluster's slots
  pool.Submit(GetPid).Get();
  const absl::Time now = absl::Now();
  const double in_program_ms = SecondsSince(start) * 1e3;
  std::vector<Figure> figures;
  if (launched.has_value()) {
    figures.push_back({"first_result_from_launch_ms",
                       absl::ToDoubleMilliseconds(now - *launched), "ms",
                       "launch line to the first result (wall clock), 1 run"});
  } else {
    Log(absl::StrCat(kLaunchTimeEnv,
                     " is not set: no first_result_from_launch_ms"));
  }
  figures.push_back({"first_result_in_program_ms", in_program_ms, "ms",
                     "pool construction to the first result, 1 run"});

  Log("warm-up");
  const int workers = WarmUp(pool);
  Log(absl::StrCat(workers, " workers"));
  struct Workload {
    const char* name;
    std::vector<Figure> (*run)(const Config&, ProcessPoolExecutor&);
  };
  const Workload workloads[] = {{"roundtrip", RunRoundtrip},
                                {"submit", RunSubmit},
                                {"map", RunMap}};
  for (const Workload& w : workloads) {
    if (only.count(w.name) == 0) continue;
    const Clock::time_point t = Clock::now();
    std::vector<Figure> more = w.run(config, pool);
    figures.insert(figures.end(), more.begin(), more.end());
    Log(absl::StrFormat("%s done (%.1f s)", w.name, SecondsSince(t)));
  }
  if (only.count("echo")) {
    const Clock::time_point t = Clock::now();
    std::vector<Figure> more = RunEcho(config, pool, workers);
    figures.insert(figures.end(), more.begin(), more.end());
    Log(absl::StrFormat("echo done (%.1f s)", SecondsSince(t)));
  }
  pool.Shutdown();
  Print(workers, figures);
  return 0;
}

}  // namespace
}  // namespace bench_cluster
}  // namespace procpool

int main(int argc, char** argv) {
  procpool::Init(argc, argv);  // ranks > 0 (and workers) serve from here
  absl::SetProgramUsageMessage(
      "procpool's cluster pool against mpi4py.futures: under mpirun or srun, "
      "bench_cluster --procpool_cluster=mpi [--json] [--quick] "
      "[--only=roundtrip,submit,map,echo]");
  absl::ParseCommandLine(argc, argv);
  try {
    return procpool::bench_cluster::Main();
  } catch (const std::exception& e) {
    std::cerr << "bench_cluster: " << e.what() << "\n";
    return 1;
  }
}
