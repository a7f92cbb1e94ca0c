// The benchmark's workloads: each runs on fresh or shared pools of
// `Config::workers` workers and returns its figures.
//
// The same workloads, with the same sizes and metric names, are in
// tools/bench_python.py (for CPython, loky and pebble); keep the two in step.
//
// Example:
//   Config config;
//   config.transport = "unix";
//   Progress progress(1);
//   std::vector<Figure> f = RunRoundtrip(config, progress);
//
// Not thread-safe: run one workload at a time (each measures the machine).
#ifndef PROCPOOL_TOOLS_BENCH_WORKLOADS_H_
#define PROCPOOL_TOOLS_BENCH_WORKLOADS_H_

#include <string>
#include <vector>

#include "executor/process_pool_executor.h"
#include "tools/bench/report.h"

namespace procpool {
namespace bench {

struct Config {
  std::string transport;  // a registered transport name
  StartMethod start_method = StartMethod::kForkServer;  // all but first_result
  int workers = 2;
  int reps = 3;              // repetitions of the throughput workloads (median)
  int submit_tasks = 20000;  // submit_throughput_tasks_per_s
  int map_items = 200000;    // map_chunk256_items_per_s
  int map_chunksize = 256;
  int roundtrips = 2000;       // roundtrip_us_p50 / _p99
  int echo_small_reps = 50;    // echo_1MiB_MB_per_s
  int echo_large_reps = 5;     // echo_64MiB_MB_per_s
  int crash_reps = 3;          // crash_detect_ms (median)
  int first_result_reps = 5;   // first_result_ms_* (median)
  // array_workloads.h: the two array sizes, the round trips per size.
  size_t array_small_bytes = size_t{64} << 20;
  size_t array_big_bytes = size_t{1} << 30;
  int array_roundtrip_reps = 20;
  // Where the round trip workload writes each call's start (CLOCK_MONOTONIC
  // ns, as `perf record -k mono` stamps events) and duration (ns), one call
  // per line, to line slow calls up with `perf sched timehist`; empty: none.
  std::string latency_log;

  // Every workload shrunk to a smoke run (seconds, not minutes).
  static Config Quick(Config base);
  Options PoolOptions(StartMethod method) const;
};

// first_result_ms_{fork,forkserver,spawn} (+ first_result_ms_forkserver_cold).
// Must run before any other workload: the cold figure is the first fork-server
// pool of this process.
std::vector<Figure> RunFirstResult(const Config& config, Progress& progress);

// submit_throughput_tasks_per_s, on one pool shared with the next three.
std::vector<Figure> RunSubmit(const Config& config,
                              ProcessPoolExecutor& pool, Progress& progress);
// map_chunk256_items_per_s.
std::vector<Figure> RunMap(const Config& config, ProcessPoolExecutor& pool,
                           Progress& progress);
// roundtrip_us_p50, roundtrip_us_p99.
std::vector<Figure> RunRoundtrip(const Config& config,
                                 ProcessPoolExecutor& pool, Progress& progress);
// echo_1MiB_MB_per_s, echo_64MiB_MB_per_s.
std::vector<Figure> RunEcho(const Config& config, ProcessPoolExecutor& pool,
                            Progress& progress);

// crash_detect_ms, on fresh pools (each repetition breaks one).
std::vector<Figure> RunCrashDetect(const Config& config, Progress& progress);

// Starts every worker of `pool` and runs a few round trips.
void WarmUp(const Config& config, ProcessPoolExecutor& pool);

}  // namespace bench
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_BENCH_WORKLOADS_H_
