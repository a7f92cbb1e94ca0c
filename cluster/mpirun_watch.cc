#include "cluster/mpirun_watch.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>

namespace procpool {
namespace cluster {
namespace {

// The name in /proc/PID/comm, without its newline; false if unreadable.
bool CommOf(pid_t pid, char* name, size_t size) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/comm", static_cast<int>(pid));
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = read(fd, name, size - 1);
  close(fd);
  if (n <= 0) return false;
  name[n] = '\0';
  if (name[n - 1] == '\n') name[n - 1] = '\0';
  return true;
}

}  // namespace

bool IsMpirun(pid_t pid) {
  char name[64];
  if (pid <= 1 || !CommOf(pid, name, sizeof(name))) return false;
  return strcmp(name, "mpirun") == 0 || strcmp(name, "mpiexec") == 0 ||
         strcmp(name, "orterun") == 0;
}

void EndMpirunIfItLingers(pid_t mpirun, absl::Duration grace) {
  const pid_t child = fork();
  if (child != 0) {
    if (child > 0) {
      int status;
      while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
      }
    }
    return;
  }
  // The child: detach (the grandchild is the watcher), so that rank 0 exits
  // now and nothing of it holds mpirun's pipes or the control connections.
  if (fork() != 0) _exit(0);
  setsid();
  const int null_fd = open("/dev/null", O_RDWR);
  if (null_fd >= 0) {
    dup2(null_fd, 0);
    dup2(null_fd, 1);
    dup2(null_fd, 2);
  }
  close_range(3, ~0U, 0);
  const int64_t step_us = 50000;
  for (int64_t waited = 0; waited < absl::ToInt64Microseconds(grace);
       waited += step_us) {
    if (!IsMpirun(mpirun)) _exit(0);  // it ended by itself
    usleep(step_us);
  }
  if (IsMpirun(mpirun)) {
    kill(mpirun, SIGINT);
    usleep(500000);
    if (IsMpirun(mpirun)) kill(mpirun, SIGINT);
  }
  _exit(0);
}

}  // namespace cluster
}  // namespace procpool
