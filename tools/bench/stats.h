// The small statistics both benchmark programs report with (tools/bench and
// tools/bench_cluster): elapsed seconds, median, nearest-rank percentile, and
// the "median of N runs" note of a row.
#ifndef PROCPOOL_TOOLS_BENCH_STATS_H_
#define PROCPOOL_TOOLS_BENCH_STATS_H_

#include <algorithm>
#include <chrono>
#include <cmath>
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

inline std::string RepsNote(int reps) {
  return reps == 1 ? "1 run" : absl::StrCat("median of ", reps, " runs");
}

}  // namespace bench
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_BENCH_STATS_H_
