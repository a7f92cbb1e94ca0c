#include "tools/bench/workloads.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tools/bench/stats.h"
#include "tools/bench/tasks.h"

namespace procpool {
namespace bench {
namespace {

// Milliseconds from pool construction to the first result of GetPid; the pool
// is destroyed (workers reaped) after the clock stops.
double FirstResultMs(const Config& config, StartMethod method) {
  const Clock::time_point start = Clock::now();
  ProcessPoolExecutor pool(config.PoolOptions(method));
  pool.Submit(GetPid).Get();
  return SecondsSince(start) * 1e3;
}

// Polls `dir` for the file "INDEX-PID" that BusyAnnounce creates.
bool FindAnnounced(const std::string& dir, int* index, pid_t* pid) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return false;
  bool found = false;
  while (dirent* e = readdir(d)) {
    std::vector<std::string> parts = absl::StrSplit(e->d_name, '-');
    int i = 0, p = 0;
    if (parts.size() == 2 && absl::SimpleAtoi(parts[0], &i) &&
        absl::SimpleAtoi(parts[1], &p)) {
      *index = i;
      *pid = p;
      found = true;
      break;
    }
  }
  closedir(d);
  return found;
}

void RemoveDir(const std::string& dir) {
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") unlink((dir + "/" + name).c_str());
    }
    closedir(d);
  }
  rmdir(dir.c_str());
}

// One repetition of crash_detect_ms: a fresh pool whose workers all run
// BusyAnnounce; the first to announce itself is SIGKILLed and the clock runs
// until its future fails with BrokenProcessPool.
double CrashDetectMs(const Config& config) {
  ProcessPoolExecutor pool(config.PoolOptions(config.start_method));
  WarmUp(config, pool);
  char dir_template[] = "/tmp/procpool-bench-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) {
    throw std::runtime_error("crash_detect: mkdtemp failed");
  }
  const std::string dir = dir_template;
  std::vector<Future<int>> futures;
  for (int i = 0; i < config.workers; ++i) {
    futures.push_back(pool.Submit(BusyAnnounce, dir, i, 30000));
  }
  int index = -1;
  pid_t pid = -1;
  const Clock::time_point wait_start = Clock::now();
  while (!FindAnnounced(dir, &index, &pid)) {
    if (SecondsSince(wait_start) > 10) {
      RemoveDir(dir);
      pool.KillWorkers();
      throw std::runtime_error("crash_detect: no busy worker after 10 s");
    }
    usleep(50);
  }
  const Clock::time_point start = Clock::now();
  kill(pid, SIGKILL);
  double ms = -1;
  try {
    futures[index].Get(absl::Seconds(20));
  } catch (const BrokenProcessPool&) {
    ms = SecondsSince(start) * 1e3;
  }
  pool.KillWorkers();
  RemoveDir(dir);
  if (ms < 0) {
    throw std::runtime_error(
        "crash_detect: the killed worker's future did not fail with "
        "BrokenProcessPool");
  }
  return ms;
}

}  // namespace

Config Config::Quick(Config base) {
  base.reps = 1;
  base.submit_tasks = 500;
  base.map_items = 5000;
  base.roundtrips = 100;
  base.echo_small_reps = 2;
  base.echo_large_reps = 1;
  base.crash_reps = 1;
  base.first_result_reps = 1;
  base.array_small_bytes = size_t{1} << 20;
  base.array_big_bytes = size_t{16} << 20;
  base.array_roundtrip_reps = 2;
  return base;
}

Options Config::PoolOptions(StartMethod method) const {
  Options options;
  options.max_workers = workers;
  options.transport = transport;
  options.start_method = method;
  return options;
}

void WarmUp(const Config& config, ProcessPoolExecutor& pool) {
  // Bursts until every worker has started and served (workers start on
  // demand), then sequential round trips.
  std::set<int> pids;
  for (int round = 0; round < 100 && static_cast<int>(pids.size()) <
                                         config.workers; ++round) {
    std::vector<Future<int>> fs;
    for (int i = 0; i < 4 * config.workers; ++i) {
      fs.push_back(pool.Submit(GetPid));
    }
    for (const Future<int>& f : fs) pids.insert(f.Get());
  }
  for (int i = 0; i < 100; ++i) pool.Submit(Noop).Get();
}

std::vector<Figure> RunFirstResult(const Config& config, Progress& progress) {
  struct Method {
    StartMethod method;
    const char* name;
  };
  const Method methods[] = {{StartMethod::kFork, "fork"},
                            {StartMethod::kForkServer, "forkserver"},
                            {StartMethod::kSpawn, "spawn"}};
  const int total = 1 + 3 * (1 + config.first_result_reps);
  int done = 0;
  // The first fork-server pool of this process also starts the server.
  const double cold = FirstResultMs(config, StartMethod::kForkServer);
  progress.Update(++done, total);
  std::vector<Figure> figures;
  for (const Method& m : methods) {
    if (m.method == StartMethod::kFork && config.transport == "capnp") {
      // Refused at construction (KJ threads and fork() do not mix).
      done += 1 + config.first_result_reps;
      continue;
    }
    FirstResultMs(config, m.method);  // warm-up (page cache, allocator)
    progress.Update(++done, total);
    std::vector<double> ms;
    for (int r = 0; r < config.first_result_reps; ++r) {
      ms.push_back(FirstResultMs(config, m.method));
      progress.Update(++done, total);
    }
    std::string note = absl::StrCat("pool construction to first result, ",
                                     RepsNote(config.first_result_reps));
    if (m.method == StartMethod::kForkServer) {
      note = absl::StrFormat("%s; server already up (cold: %.2f ms)", note,
                             cold);
    }
    figures.push_back({absl::StrCat("first_result_ms_", m.name), Median(ms),
                       "ms", note});
    if (m.method == StartMethod::kForkServer) {
      figures.push_back({"first_result_ms_forkserver_cold", cold, "ms",
                         "first pool of the process: starts the fork server",
                         /*extra=*/true});
    }
  }
  return figures;
}

std::vector<Figure> RunSubmit(const Config& config, ProcessPoolExecutor& pool,
                              Progress& progress) {
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
    for (int i = 0; i < n; ++i) {
      futures.push_back(pool.Submit(Noop));
      if ((i & 1023) == 0) progress.Update(r * 2L * n + i, 2L * n * config.reps);
    }
    for (int i = 0; i < n; ++i) {
      futures[i].Get();
      if ((i & 1023) == 0) {
        progress.Update(r * 2L * n + n + i, 2L * n * config.reps);
      }
    }
    rates.push_back(n / SecondsSince(start));
  }
  return {{"submit_throughput_tasks_per_s", Median(rates), "tasks/s",
           absl::StrCat(n, " no-op Submits, then Get all; ",
                        RepsNote(config.reps))}};
}

std::vector<Figure> RunMap(const Config& config, ProcessPoolExecutor& pool,
                           Progress& progress) {
  std::vector<int> inputs(config.map_items);
  std::iota(inputs.begin(), inputs.end(), 0);
  const int64_t expected = static_cast<int64_t>(config.map_items) *
                           (config.map_items - 1) / 2;
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
    long i = 0;
    for (int v : pool.Map(Identity, inputs, options)) {
      sum += v;
      if ((++i & 8191) == 0) {
        progress.Update(r * inputs.size() + i, config.reps * inputs.size());
      }
    }
    rates.push_back(config.map_items / SecondsSince(start));
    if (sum != expected) throw std::runtime_error("map: wrong results");
  }
  return {{absl::StrCat("map_chunk", config.map_chunksize, "_items_per_s"),
           Median(rates), "items/s",
           absl::StrCat("Map(Identity) over ", config.map_items,
                        " ints, chunksize ", config.map_chunksize, "; ",
                        RepsNote(config.reps))}};
}

std::vector<Figure> RunRoundtrip(const Config& config,
                                 ProcessPoolExecutor& pool,
                                 Progress& progress) {
  for (int i = 0; i < 200; ++i) pool.Submit(Noop).Get();  // warm-up
  std::vector<double> us;
  std::vector<Clock::time_point> starts;
  us.reserve(config.roundtrips);
  starts.reserve(config.roundtrips);
  for (int i = 0; i < config.roundtrips; ++i) {
    const Clock::time_point start = Clock::now();
    pool.Submit(Noop).Get();
    us.push_back(SecondsSince(start) * 1e6);
    starts.push_back(start);
    if ((i & 127) == 0) progress.Update(i, config.roundtrips);
  }
  if (!config.latency_log.empty()) {
    WriteLatencyLog(config.latency_log, starts, us);
    std::cerr << "roundtrip latency histogram (us):\n" << Histogram(us);
  }
  std::sort(us.begin(), us.end());
  const std::string note =
      absl::StrCat(config.roundtrips, " sequential Submit(Noop).Get()");
  return {{"roundtrip_us_p50", Percentile(us, 50), "us", note},
          {"roundtrip_us_p99", Percentile(us, 99), "us", note}};
}

std::vector<Figure> RunEcho(const Config& config, ProcessPoolExecutor& pool,
                            Progress& progress) {
  struct Size {
    const char* metric;
    size_t bytes;
    int reps;
  };
  const Size sizes[] = {
      {"echo_1MiB_MB_per_s", size_t{1} << 20, config.echo_small_reps},
      {"echo_64MiB_MB_per_s", size_t{64} << 20, config.echo_large_reps}};
  const long total = config.echo_small_reps + config.echo_large_reps;
  long done = 0;
  std::vector<Figure> figures;
  for (const Size& s : sizes) {
    std::string payload(s.bytes, '\0');
    for (size_t i = 0; i < payload.size(); ++i) {
      payload[i] = static_cast<char>(i * 131 + (i >> 12));
    }
    // Warm-up and check, once per worker at the same time: the first big
    // message through a worker grows its heap (~150-200 ms of page faults
    // for 64 MiB on the 2-core VM), which is start-up, not throughput.
    std::vector<Future<std::string>> warm;
    for (int w = 0; w < config.workers; ++w) {
      warm.push_back(pool.Submit(Echo, payload));
    }
    for (Future<std::string>& f : warm) {
      if (f.Get() != payload) {
        throw std::runtime_error("echo: the payload came back changed");
      }
    }
    warm.clear();
    const Clock::time_point start = Clock::now();
    for (int r = 0; r < s.reps; ++r) {
      Future<std::string> f = pool.Submit(Echo, payload);
      if (f.Get().size() != payload.size()) {
        throw std::runtime_error("echo: wrong size came back");
      }
      progress.Update(++done, total);
    }
    const double secs = SecondsSince(start);
    figures.push_back(
        {s.metric, 2.0 * s.bytes * s.reps / 1e6 / secs, "MB/s",
         absl::StrCat("std::string out and back, 2 x size x ", s.reps,
                      " sequential runs / time (MB = 1e6 bytes)")});
  }
  return figures;
}

std::vector<Figure> RunCrashDetect(const Config& config, Progress& progress) {
  std::vector<double> ms;
  for (int r = 0; r < config.crash_reps; ++r) {
    ms.push_back(CrashDetectMs(config));
    progress.Update(r + 1, config.crash_reps);
  }
  return {{"crash_detect_ms", Median(ms), "ms",
           absl::StrCat("SIGKILL a busy worker until its future fails with "
                        "BrokenProcessPool; ",
                        RepsNote(config.crash_reps))}};
}

}  // namespace bench
}  // namespace procpool
