// The soak tool's output (tools/soak): a table of checkpoints on stdout, a
// verdict, and one line of JSON with every figure.
//
// Example:
//   PrintHeader(std::cout);
//   PrintRow(std::cout, 1, sample, /*base=*/true);
//   PrintJson(std::cout, summary);
//
// Thread safety: the functions write to the stream they are given.
#ifndef PROCPOOL_TOOLS_SOAK_REPORT_H_
#define PROCPOOL_TOOLS_SOAK_REPORT_H_

#include <ostream>
#include <string>

#include "tools/soak/runner.h"
#include "tools/soak/sampler.h"

namespace procpool {
namespace soak {

struct Summary {
  std::string transport;
  std::string start_method;
  int workers = 0;
  int64_t target_tasks = 0;
  double seconds = 0;
  Tally tally;
  int64_t restarts = 0;  // the main pool's replaced or recycled workers
  std::string leak_for_test;
  Sample base;           // the checkpoint after the first 10% of tasks
  Sample end;            // the last checkpoint
  Bounds bounds;
  bool trim = true;       // rss_kib read after malloc_trim(0)
  int mmap_threshold_kib = 0;  // 0: glibc's dynamic threshold
  int arena_max = 0;           // 0: glibc's default
  Verdict verdict;
  bool measured = false;  // base and end were taken
  bool hung = false;      // the run stopped at a hang
  bool ok = false;
};

void PrintHeader(std::ostream& out);
// One checkpoint; `base` marks the one the verdict compares against.
void PrintRow(std::ostream& out, int index, const Sample& sample, bool base);
void PrintVerdict(std::ostream& out, const Summary& summary);
// One line: {"transport": "unix", ..., "ok": true}
void PrintJson(std::ostream& out, const Summary& summary);

}  // namespace soak
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_SOAK_REPORT_H_
