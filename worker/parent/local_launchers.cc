#include "worker/parent/local_launchers.h"

#include <errno.h>
#include <signal.h>
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
#include "common/status_macros.h"
#include "common/sys.h"
#include "common/unique_fd.h"
#include "worker/child/serve.h"

extern char** environ;

namespace procpool {
namespace {

using internal::StartError;

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
    // The worker finds them by number, 3..3+n (and the crash pipe after
    // them): the command line below says how many (worker/child/serve.h).
    std::vector<int> to_pass = fds;
    if (request.crash_fd >= 0) to_pass.push_back(request.crash_fd);
    std::string ppid = std::to_string(getpid());
    std::string nfds = std::to_string(fds.size());
    std::string crash_fd =
        std::to_string(request.crash_fd >= 0 ? 3 + static_cast<int>(fds.size())
                                             : -1);
    std::vector<const char*> argv = {binary.c_str(), kWorkerRoleFlag,
                                     request.transport.c_str(), ppid.c_str(),
                                     nfds.c_str(), request.endpoint.spec.c_str(),
                                     crash_fd.c_str(), nullptr};
    ASSIGN_OR_RETURN(pid_t pid, internal::SpawnWithDescriptors(binary, to_pass, argv));
    return internal::WatchStartedProcess(binary, pid, /*our_child=*/true);
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
    pid_t pid = GetSys().Fork();
    if (pid < 0) {
      return StartError("fork()", ProcessStartError("fork", errno));
    }
    if (pid == 0) {
      internal::ServeAsForkedWorker(request.transport, request.endpoint,
                                    request.crash_fd, parent);
    }
    return internal::WatchStartedProcess("fork()", pid, /*our_child=*/true);
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
