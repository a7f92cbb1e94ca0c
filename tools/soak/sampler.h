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
  int64_t tasks = 0;       // tasks done when it was taken
  double seconds = 0;      // since the run started
  int64_t anon_kib = -1;   // RssAnon: private memory (heap, stacks)
  int64_t file_kib = -1;   // RssFile: pages of mapped files (code)
  int64_t shmem_kib = -1;  // RssShmem: shared memory (shm rings)
  int64_t rss_kib = -1;    // VmRSS: their sum
  int64_t raw_rss_kib = -1;  // VmRSS before malloc_trim (= rss_kib without)
  int64_t hwm_kib = -1;    // VmHWM: the peak resident size so far
  int64_t heap_kib = -1;   // bytes malloc has handed out and not had back
                           // (mallinfo2: uordblks + hblkhd), every arena
  int64_t maps = -1;       // lines of /proc/self/maps (mappings)
  int64_t fds = -1;        // entries of /proc/self/fd (not the one reading)
  int64_t threads = -1;    // Threads of /proc/self/status
};

// Reads the figures now (tasks and seconds are the caller's). A figure that
// cannot be read is -1. With `trim`, VmRSS is read once as it is
// (raw_rss_kib), then every figure after malloc_trim(0) has given the free
// memory of glibc's heaps back to the kernel: what is left is the memory
// the process holds, not what the allocator keeps for later (see
// tools/RELIABILITY.md, "Soak").
Sample TakeSample(int64_t tasks, double seconds, bool trim);

// What "flat" allows: anonymous resident memory may grow by at most rss_pct
// percent; descriptors, threads and mappings by at most their slack.
//
// Why anonymous memory (RssAnon) and not all of VmRSS: a leak in the
// process grows its heap, which is anonymous. The other parts of VmRSS move
// without a leak: RssFile by the pages of code first run late (error
// paths), RssShmem by how much of each shm ring its channel has touched so
// far (up to the ring's size per live channel). A leaked mapping of either
// kind shows in `maps`. VmRSS is reported beside it.
struct Bounds {
  double rss_pct = 5;
  int64_t fd_slack = 0;
  int64_t thread_slack = 0;
  int64_t maps_slack = 0;
};

struct Verdict {
  bool flat = true;
  double anon_growth_pct = 0;  // (end - base) / base, in percent
  double rss_growth_pct = 0;   // the same for VmRSS (not judged)
  int64_t fd_growth = 0;      // end - base
  int64_t thread_growth = 0;  // end - base
  int64_t maps_growth = 0;    // end - base
  std::string why;            // what grew beyond its bound; "" when flat
};

// Compares `end` with `base`. Shrinking is always flat; a figure that could
// not be read (-1) is not flat.
Verdict Judge(const Sample& base, const Sample& end, const Bounds& bounds);

}  // namespace soak
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_SOAK_SAMPLER_H_
