// A pipeline that prints results as they arrive: AsCompleted and a progress
// bar.
//
// Stage 1 (the workers): sieve one block [lo, hi) of the integers and count
// its primes and twin primes. Stage 2 (the parent): take each block's result
// the moment it completes (AsCompleted, not submission order), print it,
// add it to the running totals and redraw a progress bar on stderr. At the
// end the totals are checked against the known values of pi(10^k) and of the
// twin-prime count, when --n is a power of ten.
//
// Python:
//   futures = {pool.submit(count_primes, lo, hi): (lo, hi) for lo, hi in
//   blocks} for f in as_completed(futures, timeout=600):
//       print(futures[f], f.result()); progress.update(1)
//
// Usage:
//   bazel run //examples/pipeline                      # n = 10^8, 40 blocks
//   bazel run //examples/pipeline -- --n=1000000000 --blocks=100
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "executor/process_pool_executor.h"

ABSL_FLAG(int64_t, n, 100000000, "Count the primes below n.");
ABSL_FLAG(int, blocks, 40, "Split [0, n) into this many tasks.");
ABSL_FLAG(absl::Duration, timeout, absl::Minutes(10),
          "AsCompleted's timeout, counted from the AsCompleted call.");

namespace pipeline {

// Primes p in [lo, hi), and twin pairs (p, p + 2) with p in [lo, hi) (so a
// pair that straddles two blocks is counted once). A segmented sieve of
// Eratosthenes over [lo, hi + 2).
std::pair<int64_t, int64_t> CountPrimes(int64_t lo, int64_t hi) {
  const int64_t end = hi + 2;
  int64_t root = 1;
  while (root * root < end) ++root;
  std::vector<bool> small_composite(root + 1, false);
  std::vector<char> prime(end - lo, 1);
  for (int64_t v = lo; v < std::min<int64_t>(end, 2); ++v) prime[v - lo] = 0;
  for (int64_t p = 2; p <= root; ++p) {
    if (small_composite[p]) continue;
    for (int64_t m = p * p; m <= root; m += p) small_composite[m] = true;
    for (int64_t m = std::max(p * p, (lo + p - 1) / p * p); m < end; m += p) {
      prime[m - lo] = 0;
    }
  }
  int64_t primes = 0, twins = 0;
  for (int64_t v = lo; v < hi; ++v) {
    if (!prime[v - lo]) continue;
    ++primes;
    if (prime[v + 2 - lo]) ++twins;
  }
  return {primes, twins};
}
PROCPOOL_TASK(CountPrimes);

// Known values below 10^k: pi(10^k) and the number of twin-prime pairs.
const std::map<int64_t, std::pair<int64_t, int64_t>> kKnown = {
    {1000, {168, 35}},
    {10000, {1229, 205}},
    {100000, {9592, 1224}},
    {1000000, {78498, 8169}},
    {10000000, {664579, 58980}},
    {100000000, {5761455, 440312}},
    {1000000000, {50847534, 3424506}},
    {10000000000, {455052511, 27412679}},
};

// A one-line progress bar on stderr. On a terminal it is redrawn in place
// (and Clear() wipes it before a result line is printed on stdout);
// otherwise it prints a line at every tenth of the way.
class ProgressBar {
 public:
  explicit ProgressBar(int total)
      : total_(total),
        tty_(isatty(STDERR_FILENO)),
        start_(std::chrono::steady_clock::now()) {}

  void Update(int done) {
    done_ = done;
    if (tty_) {
      std::cerr << "\r" << Text() << std::flush;
    } else if (done * 10 / total_ != last_tenth_ || done == total_) {
      last_tenth_ = done * 10 / total_;
      std::cerr << Text() << "\n";
    }
  }
  void Clear() {
    if (tty_) std::cerr << "\r\033[K" << std::flush;
  }
  void Finish() {
    if (tty_) std::cerr << "\r" << Text() << "\n";
  }

 private:
  std::string Text() const {
    const int width = 30;
    const int filled = done_ * width / total_;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
            .count();
    return absl::StrFormat(
        "[%s%s] %d/%d blocks %.1fs", std::string(filled, '#'),
        std::string(width - filled, '.'), done_, total_, seconds);
  }

  const int total_;
  const bool tty_;
  const std::chrono::steady_clock::time_point start_;
  int done_ = 0;
  int last_tenth_ = -1;
};

int Main() {
  const int64_t n = absl::GetFlag(FLAGS_n);
  const int blocks =
      std::max<int64_t>(1, std::min<int64_t>(absl::GetFlag(FLAGS_blocks), n));

  procpool::ProcessPoolExecutor pool;  // --procpool_* flags decide

  // Stage 1: one task per block.
  std::vector<procpool::Future<std::pair<int64_t, int64_t>>> futures;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (int i = 0; i < blocks; ++i) {
    const int64_t lo = n * i / blocks, hi = n * (i + 1) / blocks;
    ranges.emplace_back(lo, hi);
    futures.push_back(pool.Submit(CountPrimes, lo, hi));
  }

  // Stage 2: results in completion order.
  ProgressBar bar(blocks);
  bar.Update(0);
  int64_t primes = 0, twins = 0;
  int done = 0;
  try {
    for (const auto& f :
         procpool::AsCompleted(futures, absl::GetFlag(FLAGS_timeout))) {
      // Which block is it? Futures compare equal when they share a state.
      const int i =
          std::find(futures.begin(), futures.end(), f) - futures.begin();
      const auto [p, t] = f.Get();  // rethrows the task's exception, if any
      primes += p;
      twins += t;
      bar.Clear();
      std::cout << absl::StrFormat(
                       "block %3d [%d, %d): %d primes, %d twin pairs\n", i,
                       ranges[i].first, ranges[i].second, p, t)
                << std::flush;
      bar.Update(++done);
    }
  } catch (const procpool::TimeoutError& e) {
    bar.Clear();
    // e.what() is "N (of M) futures unfinished".
    std::cerr << "timed out: " << e.what() << "\n";
    pool.Shutdown(/*wait=*/false, /*cancel_futures=*/true);
    return 1;
  }
  bar.Finish();

  std::cout << absl::StrFormat("below %d: %d primes, %d twin-prime pairs\n", n,
                               primes, twins);
  const auto known = kKnown.find(n);
  if (known == kKnown.end()) return 0;
  const bool ok = known->second == std::make_pair(primes, twins);
  std::cout << (ok ? "matches the known values\n"
                   : absl::StrFormat("WRONG: known values are %d and %d\n",
                                     known->second.first,
                                     known->second.second));
  return ok ? 0 : 1;
}

}  // namespace pipeline

int main(int argc, char** argv) {
  procpool::Init(argc, argv);  // in a worker: serves here, never returns
  absl::ParseCommandLine(argc, argv);
  return pipeline::Main();
}
