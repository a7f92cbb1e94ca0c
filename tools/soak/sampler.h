// The soak tool's measures of the parent process (tools/soak): resident
// memory, open descriptors and threads, read from /proc/self, and the verdict
// that says whether they stayed flat.
//
// Example:
//   Sample base = TakeSample(tasks_done, seconds);
//   ...
//   Verdict v = Judge(base, TakeSample(...), Bounds{});
//   if (!v.flat) std::cerr << v.why;
//
// Thread safety: every function is thread-safe.
#ifndef PROCPOOL_TOOLS_SOAK_SAMPLER_H_
#define PROCPOOL_TOOLS_SOAK_SAMPLER_H_

#include <cstdint>
#include <string>

namespace procpool {
namespace soak {

// One checkpoint's figures.
struct Sample {
  int64_t tasks = 0;     // tasks done when it was taken
  double seconds = 0;    // since the run started
  int64_t rss_kib = -1;  // VmRSS of /proc/self/status (after the trim)
  int64_t raw_rss_kib = -1;  // VmRSS before malloc_trim (= rss_kib without)
  int64_t hwm_kib = -1;  // VmHWM: the peak resident size so far
  int64_t fds = -1;      // entries of /proc/self/fd (not the one reading it)
  int64_t threads = -1;  // Threads of /proc/self/status
};

// Reads the figures now (tasks and seconds are the caller's). A figure that
// cannot be read is -1. With `trim`, VmRSS is read once as it is
// (raw_rss_kib), then again after malloc_trim(0) has given the free memory
// of glibc's heaps back to the kernel (rss_kib): what is left is the memory
// the process holds, not what the allocator keeps for later (see
// tools/RELIABILITY.md, "Soak").
Sample TakeSample(int64_t tasks, double seconds, bool trim);

// What "flat" allows: resident memory may grow by at most rss_pct percent;
// descriptors and threads by at most fd_slack and thread_slack.
struct Bounds {
  double rss_pct = 5;
  int64_t fd_slack = 0;
  int64_t thread_slack = 0;
};

struct Verdict {
  bool flat = true;
  double rss_growth_pct = 0;  // (end - base) / base, in percent
  int64_t fd_growth = 0;      // end - base
  int64_t thread_growth = 0;  // end - base
  std::string why;            // what grew beyond its bound; "" when flat
};

// Compares `end` with `base`. Shrinking is always flat; a figure that could
// not be read (-1) is not flat.
Verdict Judge(const Sample& base, const Sample& end, const Bounds& bounds);

}  // namespace soak
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_SOAK_SAMPLER_H_
