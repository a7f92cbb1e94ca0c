#include "worker/parent/launcher.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/event_fd.h"
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

UniqueFd OpenPidFd(pid_t pid) {
  UniqueFd fd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (fd.valid()) {
    fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
    return fd;
  }
  // Already gone (and reaped by someone else): a descriptor readable at once,
  // an eventfd whose counter starts set.
  absl::StatusOr<UniqueFd> efd = MakeEventFd("OpenPidFd", /*initial=*/1);
  CHECK(efd.ok()) << efd.status();
  return *std::move(efd);
}

absl::Status StartError(const std::string& binary, absl::string_view reason) {
  return absl::FailedPreconditionError(
      absl::StrCat("could not be started: ", binary, ": ", reason));
}

absl::StatusOr<pid_t> SpawnWithDescriptors(
    const std::string& binary, const std::vector<int>& fds,
    const std::vector<const char*>& argv) {
  std::vector<UniqueFd> high;  // our copies; the child gets its own
  for (int fd : fds) {
    UniqueFd h(fcntl(fd, F_DUPFD_CLOEXEC, 100));
    if (!h.valid()) {
      return StartError(binary, absl::StrCat("fcntl(F_DUPFD_CLOEXEC): ",
                                             strerror(errno)));
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
  const int rc = posix_spawn(&pid, binary.c_str(), &actions, &attr,
                             const_cast<char* const*>(argv.data()), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return StartError(binary, strerror(rc));
  return pid;
}

}  // namespace internal
}  // namespace procpool
