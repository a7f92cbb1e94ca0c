// The small statistics both benchmark programs report with (tools/bench and
// tools/bench_cluster): elapsed seconds, median, nearest-rank percentile, and
// the "median of N runs" note of a row.
#ifndef PROCPOOL_TOOLS_BENCH_STATS_H_
#define PROCPOOL_TOOLS_BENCH_STATS_H_

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace procpool {
namespace bench {

using Clock = std::chrono::steady_clock;

inline double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Nearest-rank percentile (p in (0, 100]) of `sorted`.
inline double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * sorted.size()));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

// A log2 histogram of `us` (microseconds), one bucket per line:
// "[lo, hi) count".
inline std::string Histogram(const std::vector<double>& us) {
  std::vector<size_t> buckets;
  for (double v : us) {
    size_t b = 0;
    while (b < 40 && v >= static_cast<double>(uint64_t{1} << b)) ++b;
    if (buckets.size() <= b) buckets.resize(b + 1);
    ++buckets[b];
  }
  std::string out;
  for (size_t b = 0; b < buckets.size(); ++b) {
    if (buckets[b] == 0) continue;
    absl::StrAppend(&out, "  [", b == 0 ? 0 : uint64_t{1} << (b - 1), ", ",
                    uint64_t{1} << b, ") ", buckets[b], "\n");
  }
  return out;
}

// Writes "START_NS DURATION_NS" per call (Clock is CLOCK_MONOTONIC on Linux).
inline void WriteLatencyLog(const std::string& path,
                            const std::vector<Clock::time_point>& starts,
                            const std::vector<double>& us) {
  std::ofstream out(path);
  for (size_t i = 0; i < starts.size() && i < us.size(); ++i) {
    out << std::chrono::duration_cast<std::chrono::nanoseconds>(
               starts[i].time_since_epoch())
               .count()
        << " " << static_cast<int64_t>(us[i] * 1000) << "\n";
  }
}

inline std::string RepsNote(int reps) {
  return reps == 1 ? "1 run" : absl::StrCat("median of ", reps, " runs");
}

}  // namespace bench
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_BENCH_STATS_H_
