// Test helpers for //shared_array: what this process holds, from /proc, and
// a bounded wait for a child.
#ifndef PROCPOOL_SHARED_ARRAY_TEST_UTIL_H_
#define PROCPOOL_SHARED_ARRAY_TEST_UTIL_H_

#include <sys/types.h>

#include <optional>

#include "absl/time/time.h"

namespace procpool {
namespace shared_array_testing {

// Entries of /proc/self/fd.
int FdCount();

// Lines of /proc/self/maps.
int MapsLineCount();

// Lines of /proc/self/maps that map a shared array ("/memfd:procpool-array").
int ArrayMappingCount();

// Waits up to `timeout` for child `pid`; its wait status, or nullopt if it
// is still running then (it is killed with SIGKILL and reaped).
std::optional<int> WaitChild(pid_t pid, absl::Duration timeout);

}  // namespace shared_array_testing
}  // namespace procpool

#endif  // PROCPOOL_SHARED_ARRAY_TEST_UTIL_H_
