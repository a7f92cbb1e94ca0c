// The kForkServer launcher, in the parent: the client of the fork server
// (worker/fork_server/fork_server.h). One server runs per worker binary,
// spawned on first use and kept for the parent process's lifetime; every pool
// of the process that uses that binary shares it. A process forked from the
// one that started a server (a user's fork()) starts a server of its own.
//
// Thread safety: the launcher and ForkServerPid are thread-safe (each
// server's client serializes its requests with a mutex).
#ifndef PROCPOOL_WORKER_PARENT_FORK_SERVER_LAUNCHER_H_
#define PROCPOOL_WORKER_PARENT_FORK_SERVER_LAUNCHER_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "worker/parent/launcher.h"

namespace procpool {

// A launcher that starts workers through the fork server of
// LaunchRequest::binary (started on first use).
std::unique_ptr<Launcher> MakeForkServerLauncher();

// The pid of the fork server serving `binary`, or -1 if none runs (tests use
// it to tell the fork server from leaked workers).
pid_t ForkServerPid(const std::string& binary);

}  // namespace procpool

#endif  // PROCPOOL_WORKER_PARENT_FORK_SERVER_LAUNCHER_H_
