// Starting worker processes, in the parent: the Launcher interface that each
// start method (core/start_method.h) implements, and what it needs and gives.
// make_launcher.h picks the implementation for a start method:
// local_launchers.h (kSpawn, kFork) or fork_server_launcher.h (kForkServer).
//
// A worker binary is any executable whose main() calls procpool::Init first;
// the launcher passes it the role and channel on its command line.
//
// Example:
//   std::unique_ptr<Launcher> launcher = MakeLauncher(StartMethod::kSpawn);
//   ASSIGN_OR_RETURN(WorkerProcess w,
//                    launcher->Start({"unix", pair.child, SelfExecutable()}));
//   ... close pair.child's fds; wait until w.pidfd.get() is readable ...
//   ASSIGN_OR_RETURN(int wait_status, launcher->Reap(w, absl::Seconds(5)));
//   // w.pidfd closes when w goes (or w.pidfd.reset()).
//
// Thread safety: Launchers are thread-safe; the functions here may be called
// from any thread.
#ifndef PROCPOOL_WORKER_PARENT_LAUNCHER_H_
#define PROCPOOL_WORKER_PARENT_LAUNCHER_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"
#include "transport/transport.h"

namespace procpool {

// A started worker. Move-only: it owns its pidfd.
struct WorkerProcess {
  pid_t pid = -1;
  // Readable once the process has exited; none for a remote worker. Closed
  // with the WorkerProcess (keep it until after Reap()).
  UniqueFd pidfd;
};

// What Launcher::Start needs to start one worker.
struct LaunchRequest {
  std::string transport;   // registered transport name
  ChildEndpoint endpoint;  // the parent still owns and closes these fds
  std::string binary;      // the worker executable (kSpawn, kForkServer)
  // Write end of the pipe the worker's failure handler reports into
  // (worker/child/crash_reporter.h), or -1. The parent still owns and closes
  // it.
  int crash_fd = -1;
};

// Starts and reaps workers by one start method.
class Launcher {
 public:
  virtual ~Launcher() = default;

  // Starts a worker. On failure the status message is
  // "could not be started: PATH: REASON".
  virtual absl::StatusOr<WorkerProcess> Start(const LaunchRequest& request) = 0;

  // The wait status (as waitpid reports it) of a worker whose pidfd became
  // readable; waits at most `timeout`.
  virtual absl::StatusOr<int> Reap(const WorkerProcess& process,
                                   absl::Duration timeout) = 0;
};

// This executable's path (/proc/self/exe resolved).
std::string SelfExecutable();

namespace internal {

// The WorkerProcess of the process `pid` just started: a pidfd for it
// (close-on-exec), or for a process that already exited a descriptor that is
// readable at once. When no descriptor can be had (EMFILE: the descriptor
// limit), the process is killed (and reaped when `our_child`), and the error
// is a StartError saying so and what to do.
absl::StatusOr<WorkerProcess> WatchStartedProcess(const std::string& binary,
                                                  pid_t pid, bool our_child);

// Launcher::Start's error: FailedPrecondition "could not be started:
// BINARY: REASON".
absl::Status StartError(const std::string& binary, absl::string_view reason);
// The same for a failed call's `cause`, whose message is the reason; a cause
// that is kResourceExhausted (a descriptor, memory or process limit:
// common/posix_error.h) keeps that code, so that the pool can tell a start
// that may work later from one that never will.
absl::Status StartError(const std::string& binary, const absl::Status& cause);

// posix_spawn of `binary` with `fds[i]` as descriptor 3 + i in the child
// (each first copied above 100, or above the highest of `fds` when the
// descriptor limit is below 100, so that the dup2s cannot overwrite one
// another; `fds` stay the caller's), `argv` (null-terminated), this
// process's environment and an empty signal mask. Returns the child's pid,
// or a StartError (a copy failing: "copying descriptor N: REASON";
// posix_spawn failing: its reason, with what to do when a limit was hit).
absl::StatusOr<pid_t> SpawnWithDescriptors(
    const std::string& binary, const std::vector<int>& fds,
    const std::vector<const char*>& argv);

}  // namespace internal
}  // namespace procpool

#endif  // PROCPOOL_WORKER_PARENT_LAUNCHER_H_
