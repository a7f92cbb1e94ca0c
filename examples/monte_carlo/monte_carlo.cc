// A Monte Carlo estimate of pi whose workers are prepared by an initializer.
//
// Each task draws `samples` points in the unit square and counts those inside
// the quarter circle; pi ~= 4 * inside / total. The random generator is
// per-worker state: Options::initializer runs SeedWorker once in every worker
// before its first task, seeding that worker's generator from --seed and the
// worker's pid, so no two workers draw the same stream. CountInside refuses to
// run in a worker whose initializer did not run.
//
// Python:
//   def seed_worker(seed): global rng; rng = random.Random(seed ^ os.getpid())
//   with ProcessPoolExecutor(initializer=seed_worker, initargs=(seed,)) as
//   pool:
//       inside = sum(pool.map(count_inside, [samples] * batches))
//
// Usage:
//   bazel run //examples/monte_carlo
//   bazel run //examples/monte_carlo -- --batches=64 --samples=10000000
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <iostream>
#include <optional>
#include <random>
#include <stdexcept>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "executor/process_pool_executor.h"

ABSL_FLAG(int, batches, 32, "Tasks to submit.");
ABSL_FLAG(int64_t, samples, 2000000, "Points drawn per task.");
ABSL_FLAG(uint64_t, seed, 42,
          "Base seed; each worker mixes in its pid (so runs differ).");

namespace monte_carlo {

// This worker's generator: set by SeedWorker, the pool's initializer. In the
// parent it stays empty.
std::optional<std::mt19937_64> rng;

// The initializer: runs once in each worker, before its first task. If it
// threw, the pool would break (BrokenProcessPool) instead of running tasks.
void SeedWorker(uint64_t seed) {
  std::seed_seq seq{seed, static_cast<uint64_t>(getpid())};
  rng.emplace(seq);
}
PROCPOOL_TASK(SeedWorker);  // an initializer is a registered task too

// Points of `samples` uniform draws in [0,1)^2 that fall inside the quarter
// circle of radius 1.
int64_t CountInside(int64_t samples) {
  if (!rng) throw std::logic_error("CountInside: SeedWorker did not run");
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  int64_t inside = 0;
  for (int64_t i = 0; i < samples; ++i) {
    const double x = unit(*rng), y = unit(*rng);
    if (x * x + y * y < 1.0) ++inside;
  }
  return inside;
}
PROCPOOL_TASK(CountInside);

int Main() {
  const int batches = absl::GetFlag(FLAGS_batches);
  const int64_t samples = absl::GetFlag(FLAGS_samples);

  procpool::Options options;
  options.initializer =
      procpool::MakeCall(SeedWorker, absl::GetFlag(FLAGS_seed));
  procpool::ProcessPoolExecutor pool(options);

  std::vector<procpool::Future<int64_t>> futures;
  for (int i = 0; i < batches; ++i) {
    futures.push_back(pool.Submit(CountInside, samples));
  }
  int64_t inside = 0;
  for (const procpool::Future<int64_t>& f : futures) inside += f.Get();

  const double total = static_cast<double>(samples) * batches;
  const double pi = 4.0 * inside / total;
  // One standard error of the estimate: 4 * sqrt(p (1 - p) / n), p = pi / 4.
  const double p = M_PI / 4;
  const double stderr_pi = 4 * std::sqrt(p * (1 - p) / total);
  std::cout << absl::StrFormat(
      "pi ~= %.6f from %.0f points (%d tasks of %d)\n"
      "error %+.6f, %.1f standard errors (one is %.6f)\n",
      pi, total, batches, samples, pi - M_PI, std::abs(pi - M_PI) / stderr_pi,
      stderr_pi);
  return 0;
}

}  // namespace monte_carlo

int main(int argc, char** argv) {
  procpool::Init(argc, argv);  // in a worker: serves here, never returns
  absl::ParseCommandLine(argc, argv);
  return monte_carlo::Main();
}
