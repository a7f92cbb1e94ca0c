#include "tools/bench/array_workloads.h"

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tools/bench/stats.h"
#include "tools/bench/tasks.h"

namespace procpool {
namespace bench {
namespace {

// Median microseconds of `reps` round trips of `a` through EchoArray.
double RoundTripUs(ProcessPoolExecutor& pool, const SharedArray<double>& a,
                   int reps, Progress& progress, long* done, long total) {
  std::vector<double> us;
  for (int r = 0; r < reps; ++r) {
    const Clock::time_point start = Clock::now();
    SharedArray<double> back = pool.Submit(EchoArray, a).Get();
    us.push_back(SecondsSince(start) * 1e6);
    if (back.size() != a.size() || back[a.size() / 2] != a[a.size() / 2]) {
      throw std::runtime_error("array_roundtrip: the array came back changed");
    }
    progress.Update(++*done, total);
  }
  return Median(us);
}

// The transform on `threads` threads of this process.
void TransformOnThreads(const double* x, double* y, size_t n, int threads) {
  std::vector<std::thread> running;
  for (int t = 0; t < threads; ++t) {
    running.emplace_back([=] {
      TransformSlice(x, y, n, t, threads);
    });
  }
  for (std::thread& t : running) t.join();
}

}  // namespace

std::vector<Figure> RunArrays(const Config& config, ProcessPoolExecutor& pool,
                              Progress& progress) {
  const size_t small = config.array_small_bytes / sizeof(double);
  const size_t big = config.array_big_bytes / sizeof(double);
  const long total = 2L * config.array_roundtrip_reps + 2L * config.reps;
  long done = 0;
  std::vector<Figure> figures;

  // Both arrays filled once; the round trips do not touch their bytes.
  SharedArray<double> x(big);
  for (size_t i = 0; i < big; ++i) x[i] = static_cast<double>(i % 4096);
  SharedArray<double> a(small);
  for (size_t i = 0; i < small; ++i) a[i] = static_cast<double>(i % 4096);
  pool.Submit(EchoArray, a).Get();  // each buffer's first trip seals it
  pool.Submit(EchoArray, x).Get();
  // The names are fixed (--quick shrinks the sizes, not the names).
  const std::string small_name = "array_roundtrip_64MiB_us";
  const std::string big_name = "array_roundtrip_1GiB_us";
  figures.push_back({small_name,
                     RoundTripUs(pool, a, config.array_roundtrip_reps, progress,
                                 &done, total),
                     "us",
                     absl::StrCat("SharedArray<double> of ",
                                  config.array_small_bytes >> 20,
                                  " MiB into a task that returns it; median "
                                  "of ",
                                  config.array_roundtrip_reps)});
  figures.push_back({big_name,
                     RoundTripUs(pool, x, config.array_roundtrip_reps, progress,
                                 &done, total),
                     "us",
                     absl::StrCat("the same with ",
                                  config.array_big_bytes >> 20, " MiB")});

  // The split transform, and the same work on threads.
  const std::string transform_name = "transform_1GiB";
  SharedArray<double> y(big, SharedArrayMode::kOutput);
  const int parts = config.workers;
  std::vector<double> pool_ms;
  for (int r = 0; r <= config.reps; ++r) {  // the first one faults pages in
    const Clock::time_point start = Clock::now();
    std::vector<Future<int64_t>> slices;
    for (int p = 0; p < parts; ++p) {
      slices.push_back(
          pool.Submit(TransformTask, x, y, int64_t{p}, int64_t{parts}));
    }
    for (Future<int64_t>& f : slices) f.Get();
    if (r > 0) pool_ms.push_back(SecondsSince(start) * 1e3);
    progress.Update(++done, total);
  }
  if (y[big - 1] != std::sqrt(x[big - 1]) * 0.5 + 1) {
    throw std::runtime_error("transform: wrong output");
  }
  std::vector<double> out(big);  // faulted in before the clock (as y was)
  TransformOnThreads(x.data(), out.data(), big, parts);
  std::vector<double> threads_ms;
  for (int r = 0; r < config.reps; ++r) {
    const Clock::time_point start = Clock::now();
    TransformOnThreads(x.data(), out.data(), big, parts);
    threads_ms.push_back(SecondsSince(start) * 1e3);
    progress.Update(++done, total);
  }
  figures.push_back({transform_name + "_ms", Median(pool_ms), "ms",
                     absl::StrCat("sqrt(x)*0.5+1 over ",
                                  config.array_big_bytes >> 20, " MiB in ",
                                  parts,
                                  " slices, one task each, into an output "
                                  "array; ",
                                  RepsNote(config.reps))});
  figures.push_back({transform_name + "_threads_ms", Median(threads_ms), "ms",
                     absl::StrCat("the same on ", parts,
                                  " threads of this process")});
  return figures;
}

}  // namespace bench
}  // namespace procpool
