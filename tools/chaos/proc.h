// Small /proc and pidfd helpers for the chaos tool. /proc files are read with
// read(2): a process that exits mid-read makes std::ifstream's
// istreambuf_iterator throw (std::ios_base::failure, ESRCH), which a tool
// that watches dying processes meets within a minute.
//
// Example:
//   pid_t ppid;
//   if (ProcState(pid, &ppid) == 'T') ...  // stopped
//
// Thread safety: every function is thread-safe.
#ifndef PROCPOOL_TOOLS_CHAOS_PROC_H_
#define PROCPOOL_TOOLS_CHAOS_PROC_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace procpool {
namespace chaos {

// The whole file, or "" if it cannot be read.
std::string ReadProcFile(const std::string& path);

// The state letter of /proc/PID/stat ('R', 'S', 'T', 'Z', ...), or 0 if the
// process is gone; sets `*ppid` (if not null) to its parent.
char ProcState(pid_t pid, pid_t* ppid);

// The children of `pid`, all its threads' together.
std::vector<pid_t> ChildrenOf(pid_t pid);

// Monotonic time in nanoseconds (comparable across threads).
int64_t NowNs();

// Sends `sig` to `pid` if it is a live worker of this process (its child, or
// its fork server's). The signal goes through a pidfd opened before the
// parentage check, so a recycled pid is never signalled. Returns whether it
// was sent; sets `*sent_ns` (if not null) to the moment it was.
bool SignalWorker(pid_t pid, int sig, int64_t* sent_ns);

// testing::WaitFor with a 1 ms poll instead of 5: a dense wave waits for
// several states in turn (results, workers gone, pool destroyed, leaks
// back to baseline), and 5 ms polls were a fifth of its time.
template <typename F>
bool PollUntil(F condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return condition();
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

}  // namespace chaos
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_CHAOS_PROC_H_
