#include "common/posix_error.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"

namespace procpool {
namespace {

// "64", or "unlimited", for a resource limit's soft value.
std::string SoftLimit(int resource) {
  struct rlimit limit;
  if (getrlimit(resource, &limit) != 0) return "?";
  if (limit.rlim_cur == RLIM_INFINITY) return "unlimited";
  return absl::StrCat(limit.rlim_cur);
}

}  // namespace

std::string ExhaustionAdvice(int error_number, bool starting_process) {
  switch (error_number) {
    case EMFILE:
      return absl::StrCat("this process may open at most ",
                          SoftLimit(RLIMIT_NOFILE),
                          " descriptors (RLIMIT_NOFILE): raise it with "
                          "`ulimit -n`, or use fewer workers");
    case ENFILE:
      return "the system's table of open files is full (fs.file-max): close "
             "descriptors elsewhere or raise the limit";
    case ENOSPC:
      return "no space left for shared memory (tmpfs or the memory cgroup): "
             "free some, or pass smaller arguments";
    case ENOMEM:
      if (starting_process) {
        return absl::StrCat(
            "no memory to start a process (address space limit, RLIMIT_AS: ",
            SoftLimit(RLIMIT_AS),
            "): free memory, raise the limit (`ulimit -v`, the cgroup's "
            "memory.max), or use fewer workers");
      }
      return absl::StrCat(
          "out of memory or address space (RLIMIT_AS: ", SoftLimit(RLIMIT_AS),
          "): free memory, raise the limit (`ulimit -v`, the cgroup's "
          "memory.max), or pass smaller arguments and use fewer workers");
    case EAGAIN:
      if (!starting_process) return "";
      return absl::StrCat(
          "the process limit is reached (RLIMIT_NPROC: ", SoftLimit(RLIMIT_NPROC),
          " processes of this user, `ulimit -u`; or kernel.pid_max, "
          "kernel.threads-max, the cgroup's pids.max): let processes end, "
          "raise the limit, or use fewer workers");
    default:
      return "";
  }
}

namespace {

// "<context>: <strerror> (<advice>)" for a resource that ran out (advice
// not empty), else nullopt.
std::optional<absl::Status> Exhausted(absl::string_view context,
                                      int error_number,
                                      const std::string& advice) {
  if (advice.empty()) return std::nullopt;
  return absl::ResourceExhaustedError(absl::StrCat(
      context, ": ", strerror(error_number), " (", advice, ")"));
}

}  // namespace

absl::Status PosixError(absl::string_view context, int error_number) {
  if (std::optional<absl::Status> exhausted =
          Exhausted(context, error_number, ExhaustionAdvice(error_number))) {
    return *exhausted;
  }
  const std::string message =
      absl::StrCat(context, ": ", strerror(error_number));
  switch (error_number) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case EPIPE:
    case ECONNRESET:
      return absl::UnavailableError(message);
    case EAGAIN:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status ProcessStartError(absl::string_view context, int error_number) {
  if (std::optional<absl::Status> exhausted = Exhausted(
          context, error_number,
          ExhaustionAdvice(error_number, /*starting_process=*/true))) {
    return *exhausted;
  }
  return PosixError(context, error_number);
}

absl::Status WriteFully(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return PosixError("write", errno);
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status ReadFully(int fd, void* data, size_t size) {
  char* p = static_cast<char*>(data);
  size_t done = 0;
  while (done < size) {
    ssize_t n = read(fd, p + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return PosixError("read", errno);
    }
    if (n == 0) {
      if (done == 0) return absl::UnavailableError("closed by peer");
      return absl::DataLossError(
          absl::StrCat("closed by peer after ", done, " of ", size, " bytes"));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace procpool
