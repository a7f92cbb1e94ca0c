// Reading the shared authentication key (handshake.h) from a file, as the
// worker daemon's --auth_key_file and the parent's key option name it.
//
// The file holds the secret as is (any bytes; a line of base64 is typical:
// `head -c 32 /dev/urandom | base64 > key && chmod 600 key`). It is read
// whole, and one trailing newline ("\n" or "\r\n") is stripped so that a key
// written by an editor or `echo` matches one written without. It is refused
// when it is empty (after that strip), not a regular file, or readable or
// writable by group or others (as ssh refuses a private key): a key everyone
// on the host can read authenticates no one.
//
// Example:
//   ASSIGN_OR_RETURN(std::string key, ReadKeyFile("/etc/procpool/key"));
#ifndef PROCPOOL_COMMON_AUTH_KEY_FILE_H_
#define PROCPOOL_COMMON_AUTH_KEY_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace procpool {
namespace auth {

// The key in `path`. Errors name the file and say what to do: kNotFound /
// kPermissionDenied when it cannot be opened, kFailedPrecondition when it is
// not a regular file, is group/world accessible (with the chmod to run) or is
// empty.
absl::StatusOr<std::string> ReadKeyFile(absl::string_view path);

}  // namespace auth
}  // namespace procpool

#endif  // PROCPOOL_COMMON_AUTH_KEY_FILE_H_
