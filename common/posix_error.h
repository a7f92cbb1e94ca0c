// The one place where errno becomes an absl::Status (LevelDB's PosixError).
#ifndef PROCPOOL_COMMON_POSIX_ERROR_H_
#define PROCPOOL_COMMON_POSIX_ERROR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace procpool {

// Returns a Status for `error_number` (an errno value) whose message is
// "<context>: <strerror>". ENOENT maps to kNotFound, EACCES/EPERM to
// kPermissionDenied, EPIPE/ECONNRESET to kUnavailable, EAGAIN to
// kResourceExhausted, everything else to kInternal. A resource that ran out
// (EMFILE, ENFILE, ENOMEM, ENOSPC) is kResourceExhausted and the message
// says which and what to do: "<context>: Too many open files (this process
// may open at most 64 descriptors, RLIMIT_NOFILE: raise it with `ulimit -n`,
// or use fewer workers)".
absl::Status PosixError(absl::string_view context, int error_number);

// PosixError for a call that starts a process or thread (fork, clone,
// posix_spawn, pthread_create): there EAGAIN (and ENOMEM) mean the process
// limit was reached, and the message says which and what to do.
absl::Status ProcessStartError(absl::string_view context, int error_number);

// What to do about `error_number` when it is a resource that ran out, as a
// sentence for a message ("this process may open at most 64 descriptors
// ..."); empty for any other error. `starting_process`: EAGAIN/ENOMEM come
// from fork/clone/posix_spawn.
std::string ExhaustionAdvice(int error_number, bool starting_process = false);

// Writes all of `data` to a blocking descriptor, retrying on EINTR.
absl::Status WriteFully(int fd, const void* data, size_t size);

// Reads exactly `size` bytes from a blocking descriptor, retrying on EINTR.
// A clean end of file before the first byte is kUnavailable ("closed"); in
// the middle of the data it is kDataLoss.
absl::Status ReadFully(int fd, void* data, size_t size);

}  // namespace procpool

#endif  // PROCPOOL_COMMON_POSIX_ERROR_H_
