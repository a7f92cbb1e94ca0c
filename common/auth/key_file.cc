// Reads the authentication key file; the rules are in key_file.h.
#include "common/auth/key_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/posix_error.h"
#include "common/unique_fd.h"

namespace procpool {
namespace auth {
namespace {

// The largest key file accepted: a key is a few dozen bytes; anything this
// big is the wrong file.
constexpr off_t kMaxKeyFileSize = 1 << 16;

}  // namespace

absl::StatusOr<std::string> ReadKeyFile(absl::string_view path) {
  const std::string name(path);
  const UniqueFd owned(open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  const int fd = owned.get();
  if (fd < 0) {
    return PosixError(absl::StrCat("cannot open the key file ", name), errno);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return PosixError(absl::StrCat("cannot stat the key file ", name), errno);
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the key file ", name, " is not a regular file"));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the key file %s is accessible by group or others (mode %04o); a "
        "shared key must be private to its owner: chmod 600 %s",
        name, st.st_mode & 07777, name));
  }
  if (st.st_size > kMaxKeyFileSize) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the key file ", name, " has ", st.st_size,
        " bytes; a key is a short secret (at most ", kMaxKeyFileSize,
        " bytes): is it the right file?"));
  }
  std::string key;
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return PosixError(absl::StrCat("cannot read the key file ", name), errno);
    }
    if (n == 0) break;
    key.append(buffer, static_cast<size_t>(n));
    if (key.size() > static_cast<size_t>(kMaxKeyFileSize)) break;
  }
  if (absl::EndsWith(key, "\r\n")) {
    key.resize(key.size() - 2);
  } else if (absl::EndsWith(key, "\n")) {
    key.resize(key.size() - 1);
  }
  if (key.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the key file ", name, " is empty; put a random secret in it, e.g. "
        "`head -c 32 /dev/urandom | base64 > ", name, " && chmod 600 ", name,
        "`, and give the same file to the parent and the worker daemon"));
  }
  return key;
}

}  // namespace auth
}  // namespace procpool
