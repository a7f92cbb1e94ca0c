// A worker's crash-report pipe, read by the pool: the worker writes a NUL
// byte per heartbeat (wire::Config::heartbeat_interval_ms) and, when a
// catchable signal kills it, its symbolized stack (worker/child's crash
// reporter). ReadCrashPipe separates the two.
//
// Example:
//   if (ReadCrashPipe(w.crash_fd.get(), &w.crash_report)) {
//     w.last_heartbeat = now;
//   }
//
// Thread safety: none of its own; one reader per pipe.
#ifndef PROCPOOL_EXECUTOR_INTERNAL_CRASH_PIPE_H_
#define PROCPOOL_EXECUTOR_INTERNAL_CRASH_PIPE_H_

#include <string>

namespace procpool {
namespace internal {

// Reads everything available on the non-blocking pipe `fd` (retrying on
// EINTR, stopping at EAGAIN or end of file): appends what is not a heartbeat
// to `*report`. Returns whether a heartbeat arrived. A negative `fd` reads
// nothing.
bool ReadCrashPipe(int fd, std::string* report);

}  // namespace internal
}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_INTERNAL_CRASH_PIPE_H_
