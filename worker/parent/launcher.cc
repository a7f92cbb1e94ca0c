#include "worker/parent/launcher.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <utility>

#include "absl/status/statusor.h"
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

}  // namespace internal
}  // namespace procpool
