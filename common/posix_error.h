// The one place where errno becomes an absl::Status (LevelDB's PosixError).
#ifndef PROCPOOL_COMMON_POSIX_ERROR_H_
#define PROCPOOL_COMMON_POSIX_ERROR_H_

#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace procpool {

// Returns a Status for `error_number` (an errno value) whose message is
// "<context>: <strerror>". ENOENT maps to kNotFound, EACCES/EPERM to
// kPermissionDenied, EPIPE/ECONNRESET to kUnavailable, EAGAIN to
// kResourceExhausted, everything else to kInternal.
absl::Status PosixError(absl::string_view context, int error_number);

// Writes all of `data` to a blocking descriptor, retrying on EINTR.
absl::Status WriteFully(int fd, const void* data, size_t size);

// Reads exactly `size` bytes from a blocking descriptor, retrying on EINTR.
// A clean end of file before the first byte is kUnavailable ("closed"); in
// the middle of the data it is kDataLoss.
absl::Status ReadFully(int fd, void* data, size_t size);

}  // namespace procpool

#endif  // PROCPOOL_COMMON_POSIX_ERROR_H_
