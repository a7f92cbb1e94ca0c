// The fork server (internal to worker/): a single-threaded process, spawned
// once per worker binary from the parent, that forks workers on request.
//
// Control protocol over a SOCK_SEQPACKET socketpair (one message a packet):
//   parent -> server: Request {transport, spec} + the endpoint fds (SCM_RIGHTS)
//   server -> parent: Started {pid} or Error {message} per request, and
//                     Exited {pid, wait status} whenever a worker dies
// The server reaps its workers (it is their parent) and reports their exit
// status, so the parent can name the signal or exit code of a dead worker.
// It exits when the parent's end closes, and dies with the parent.
#ifndef PROCPOOL_WORKER_FORK_SERVER_H_
#define PROCPOOL_WORKER_FORK_SERVER_H_

#include <sys/types.h>

#include <memory>

#include "worker/launcher.h"

namespace procpool {

// argv[1] of a worker started by kSpawn:
//   BINARY --procpool-internal-worker TRANSPORT PARENT_PID NFDS SPEC CRASH_FD
// (the endpoint's descriptors are 3 .. 3+NFDS-1; CRASH_FD is -1 or 3+NFDS).
inline constexpr char kWorkerRoleFlag[] = "--procpool-internal-worker";

// argv[1] of the fork server: BINARY --procpool-internal-forkserver PARENT_PID
// (its control socket is descriptor 3).
inline constexpr char kForkServerRoleFlag[] = "--procpool-internal-forkserver";

std::unique_ptr<Launcher> MakeForkServerLauncher();

// The fork server's main loop on `control_fd`; returns its exit code.
int RunForkServer(int control_fd, pid_t parent);

}  // namespace procpool

#endif  // PROCPOOL_WORKER_FORK_SERVER_H_
