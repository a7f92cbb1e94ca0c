// The entry of a worker process that procpool started: how a spawned or a
// forked child becomes a worker, opens its channel, serves it and exits.
//
// A spawned worker (StartMethod::kSpawn) is started with the command line
//   BINARY --procpool-internal-worker TRANSPORT PARENT_PID NFDS SPEC CRASH_FD
// (the endpoint's descriptors are 3 .. 3+NFDS-1; CRASH_FD is -1 or 3+NFDS),
// which the spawn launcher (worker/parent/local_launchers.h) writes and
// procpool::Init (worker/init.h) hands to ServeSpawnedWorker. A forked worker
// (kFork's launcher, or the fork server's child) calls ServeAsForkedWorker
// right after fork().
//
// Thread safety: each function runs once, on the only thread of a fresh
// child process, and never returns.
#ifndef PROCPOOL_WORKER_CHILD_SERVE_H_
#define PROCPOOL_WORKER_CHILD_SERVE_H_

#include <sys/types.h>

#include <string>

#include "transport/transport.h"

namespace procpool {

// argv[1] of a worker started by kSpawn (the command line above).
inline constexpr char kWorkerRoleFlag[] = "--procpool-internal-worker";

namespace internal {

// Spawned child: parses the command line above, installs the crash reporter,
// opens the channel, serves it, and exits (status 3, with the reason on
// stderr, if the command line or the channel is bad). argv[1] must be
// kWorkerRoleFlag.
[[noreturn]] void ServeSpawnedWorker(int argc, char** argv);

// Forked child (fork and fork server): keeps only 0-2, the endpoint's fds and
// crash_fd, installs the crash reporter, opens the channel, serves it, and
// exits.
[[noreturn]] void ServeAsForkedWorker(const std::string& transport,
                                      const ChildEndpoint& endpoint,
                                      int crash_fd, pid_t parent);

}  // namespace internal
}  // namespace procpool

#endif  // PROCPOOL_WORKER_CHILD_SERVE_H_
