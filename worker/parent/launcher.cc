#include "worker/parent/launcher.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/event_fd.h"
#include "common/posix_error.h"
#include "common/sys.h"
#include "common/unique_fd.h"
#include "glog/logging.h"

namespace procpool {

std::string SelfExecutable() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "/proc/self/exe";
  return std::string(buf, static_cast<size_t>(n));
}

namespace internal {

absl::StatusOr<WorkerProcess> WatchStartedProcess(const std::string& binary,
                                                  pid_t pid, bool our_child) {
  UniqueFd fd(GetSys().PidfdOpen(pid));
  if (fd.valid()) {
    fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
    return WorkerProcess{pid, std::move(fd)};
  }
  const int open_error = errno;
  absl::Status error = PosixError("pidfd_open", open_error);
  if (open_error == ESRCH) {
    // Already gone (and reaped by someone else): a descriptor readable at
    // once, an eventfd whose counter starts set.
    absl::StatusOr<UniqueFd> efd = MakeEventFd("pidfd stand-in", 1);
    if (efd.ok()) return WorkerProcess{pid, *std::move(efd)};
    error = efd.status();
  }
  // A worker we cannot watch would be a process nobody waits for.
  kill(pid, SIGKILL);
  if (our_child) {
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  return StartError(
      binary, absl::Status(error.code(),
                           absl::StrCat("it was started as pid ", pid,
                                        " but cannot be watched (",
                                        error.message(), "); it was killed")));
}

absl::Status StartError(const std::string& binary, absl::string_view reason) {
  return absl::FailedPreconditionError(
      absl::StrCat("could not be started: ", binary, ": ", reason));
}

absl::Status StartError(const std::string& binary, const absl::Status& cause) {
  absl::Status error = StartError(binary, cause.message());
  if (cause.code() != absl::StatusCode::kResourceExhausted) return error;
  return absl::ResourceExhaustedError(error.message());
}

absl::StatusOr<pid_t> SpawnWithDescriptors(
    const std::string& binary, const std::vector<int>& fds,
    const std::vector<const char*>& argv) {
  // Copies above every descriptor the dup2s write (3 .. 3 + fds.size()),
  // at 100 when the descriptor limit allows (F_DUPFD fails with EINVAL for
  // a minimum at or above RLIMIT_NOFILE).
  int floor = 3 + static_cast<int>(fds.size());
  for (int fd : fds) floor = std::max(floor, fd + 1);
  struct rlimit limit;
  int min_fd = 100;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
      limit.rlim_cur <= 100) {
    min_fd = floor;
  }
  std::vector<UniqueFd> high;  // our copies; the child gets its own
  for (int fd : fds) {
    UniqueFd h(GetSys().DupCloexec(fd, std::max(min_fd, floor)));
    if (!h.valid()) {
      const int error = errno == EINVAL ? EMFILE : errno;
      return StartError(
          binary, PosixError(absl::StrCat("copying descriptor ", fd), error));
    }
    high.push_back(std::move(h));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  for (size_t i = 0; i < high.size(); ++i) {
    posix_spawn_file_actions_adddup2(&actions, high[i].get(),
                                     3 + static_cast<int>(i));
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  const int rc =
      GetSys().PosixSpawn(&pid, binary.c_str(), &actions, &attr,
                          const_cast<char* const*>(argv.data()), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return StartError(binary, ProcessStartError("posix_spawn", rc));
  }
  return pid;
}

}  // namespace internal
}  // namespace procpool
