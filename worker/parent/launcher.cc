#include "worker/parent/launcher.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "glog/logging.h"

namespace procpool {

std::string SelfExecutable() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "/proc/self/exe";
  return std::string(buf, static_cast<size_t>(n));
}

namespace internal {

int OpenPidFd(pid_t pid) {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd >= 0) {
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
  }
  // Already gone (and reaped by someone else): a descriptor readable at once.
  int efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
  PCHECK(efd >= 0) << "eventfd";
  return efd;
}

}  // namespace internal
}  // namespace procpool
