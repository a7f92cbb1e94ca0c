#include "worker/parent/local_launchers.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "common/posix_error.h"
#include "common/unique_fd.h"
#include "worker/child/serve.h"

extern char** environ;

namespace procpool {
namespace {

absl::Status StartError(const std::string& binary, absl::string_view reason) {
  return absl::FailedPreconditionError(
      absl::StrCat("could not be started: ", binary, ": ", reason));
}

absl::StatusOr<int> ReapChild(const WorkerProcess& process,
                              absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(process.pid, &status, WNOHANG);
    if (r == process.pid) return status;
    if (r < 0 && errno != EINTR) return PosixError("waitpid", errno);
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("worker pid ", process.pid, " did not exit in time"));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
}

class SpawnLauncher final : public Launcher {
 public:
  absl::StatusOr<WorkerProcess> Start(const LaunchRequest& request) override {
    const std::string& binary = request.binary;
    if (access(binary.c_str(), X_OK) != 0) {
      return StartError(binary, strerror(errno));
    }
    const std::vector<int>& fds = request.endpoint.fds;
    // Move the endpoint out of the way of the target numbers 3..3+n first.
    // The copies are ours; the originals stay the caller's.
    std::vector<UniqueFd> high;
    std::vector<int> to_pass = fds;
    if (request.crash_fd >= 0) to_pass.push_back(request.crash_fd);
    for (int fd : to_pass) {
      UniqueFd h(fcntl(fd, F_DUPFD_CLOEXEC, 100));
      if (!h.valid()) return PosixError("fcntl(F_DUPFD_CLOEXEC)", errno);
      high.push_back(std::move(h));
    }
    // The worker finds them by number, 3..3+n (and the crash pipe after
    // them): the command line below says how many (worker/child/serve.h).
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

    std::string ppid = std::to_string(getpid());
    std::string nfds = std::to_string(fds.size());
    std::string crash_fd =
        std::to_string(request.crash_fd >= 0 ? 3 + static_cast<int>(fds.size())
                                             : -1);
    std::vector<const char*> argv = {binary.c_str(), kWorkerRoleFlag,
                                     request.transport.c_str(), ppid.c_str(),
                                     nfds.c_str(), request.endpoint.spec.c_str(),
                                     crash_fd.c_str(), nullptr};
    pid_t pid = -1;
    int rc = posix_spawn(&pid, binary.c_str(), &actions, &attr,
                         const_cast<char* const*>(argv.data()), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    high.clear();  // closes the copies; the child has its own
    if (rc != 0) return StartError(binary, strerror(rc));
    return WorkerProcess{pid, internal::OpenPidFd(pid)};
  }

  absl::StatusOr<int> Reap(const WorkerProcess& process,
                           absl::Duration timeout) override {
    return ReapChild(process, timeout);
  }
};

class ForkLauncher final : public Launcher {
 public:
  absl::StatusOr<WorkerProcess> Start(const LaunchRequest& request) override {
    pid_t parent = getpid();
    // Flush first, or the child would write the parent's buffered output a
    // second time when it flushes at exit (CPython's popen_fork does too).
    fflush(nullptr);
    pid_t pid = fork();
    if (pid < 0) return StartError("fork()", strerror(errno));
    if (pid == 0) {
      internal::ServeAsForkedWorker(request.transport, request.endpoint,
                                    request.crash_fd, parent);
    }
    return WorkerProcess{pid, internal::OpenPidFd(pid)};
  }

  absl::StatusOr<int> Reap(const WorkerProcess& process,
                           absl::Duration timeout) override {
    return ReapChild(process, timeout);
  }
};

}  // namespace

std::unique_ptr<Launcher> MakeSpawnLauncher() {
  return std::make_unique<SpawnLauncher>();
}

std::unique_ptr<Launcher> MakeForkLauncher() {
  return std::make_unique<ForkLauncher>();
}

}  // namespace procpool
