// What a destroyed pool left behind in this process: worker processes (its
// own children, and the fork server's), descriptors and shared mappings,
// measured against a baseline taken after a warm-up pool (which starts the
// fork server and whatever else a first pool creates once per process).
//
// Example:
//   LeakChecker leaks;                     // after the warm-up pool
//   ... run a wave, destroy its pool ...
//   Leaks found = leaks.Check(absl::Seconds(2));
//
// Thread safety: not thread-safe; no pool may be running during Check.
#ifndef PROCPOOL_TOOLS_CHAOS_LEAKS_H_
#define PROCPOOL_TOOLS_CHAOS_LEAKS_H_

#include <set>
#include <string>

#include "absl/time/time.h"

namespace procpool {
namespace chaos {

struct Leaks {
  int processes = 0;
  int fds = 0;
  int mappings = 0;
  std::string detail;  // what leaked, for the report; empty if nothing
};

class LeakChecker {
 public:
  // Takes the baseline now.
  LeakChecker();

  // Waits up to `grace` for everything to return to the baseline, then
  // reports what is over it. Leftover worker processes are killed (and
  // reaped if they are this process's children), and the baseline moves to
  // the descriptors and mappings now open, so that each leak counts once.
  Leaks Check(absl::Duration grace);

 private:
  std::set<int> fds_;  // descriptor numbers open at the baseline
  int mappings_ = 0;
};

}  // namespace chaos
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_CHAOS_LEAKS_H_
