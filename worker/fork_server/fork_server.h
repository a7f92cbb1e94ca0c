// The fork server's own main: a single-threaded process, spawned once per
// worker binary by the parent (worker/parent/fork_server_launcher.h), that
// forks workers on request (worker/fork_server/protocol.h says what travels
// on its control socket).
//
// The server reaps its workers (it is their parent) and reports their exit
// status, so the parent can name the signal or exit code of a dead worker.
// It exits when the parent's end closes, and dies with the parent.
//
// Thread safety: RunForkServer runs once, on the only thread of the fork
// server process (procpool::Init calls it).
#ifndef PROCPOOL_WORKER_FORK_SERVER_FORK_SERVER_H_
#define PROCPOOL_WORKER_FORK_SERVER_FORK_SERVER_H_

#include <sys/types.h>

namespace procpool {

// The fork server's main loop on `control_fd`, for the parent process
// `parent`; returns its exit code. Each child it forks serves as a worker
// (worker/child/serve.h) and never returns here. `control_fd` is a plain
// number: the server's end of the control socket arrives across exec as
// descriptor 3 (init.cc), and the process holds it until it exits.
int RunForkServer(int control_fd, pid_t parent);

}  // namespace procpool

#endif  // PROCPOOL_WORKER_FORK_SERVER_FORK_SERVER_H_
