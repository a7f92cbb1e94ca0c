// Test helpers that look at this process from /proc: its children, its open
// descriptors and shared mappings, and whether a pid is still alive.
#ifndef PROCPOOL_TESTING_PROCESS_HELPERS_H_
#define PROCPOOL_TESTING_PROCESS_HELPERS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace procpool {
namespace testing {

// The live (not yet reaped) children of this process, from
// /proc/self/task/*/children.
std::vector<pid_t> ChildPids();

// The children other than the fork server of this executable.
std::vector<pid_t> ChildPidsExceptForkServer();

// Number of open descriptors of this process.
int OpenFdCount();

// The open descriptors as "fd -> target" lines (for failure messages).
std::string DescribeFds();

// Number of shared mappings (memfd or /dev/shm) in /proc/self/maps.
int SharedMappingCount();

// True while `pid` exists and is not a zombie.
bool IsAlive(pid_t pid);

// Polls `condition` until it holds or `timeout` passes; returns its last value.
template <typename F>
bool WaitFor(F condition, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return condition();
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

}  // namespace testing
}  // namespace procpool

#endif  // PROCPOOL_TESTING_PROCESS_HELPERS_H_
