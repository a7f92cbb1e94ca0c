// The launchers that start a worker as a direct child of the calling process:
// kSpawn (posix_spawn of the worker binary with the command line of
// worker/child/serve.h) and kFork (fork() of the calling process, whose child
// serves at once). Both reap with waitpid.
//
// Thread safety: the launchers are thread-safe (they hold no state).
#ifndef PROCPOOL_WORKER_PARENT_LOCAL_LAUNCHERS_H_
#define PROCPOOL_WORKER_PARENT_LOCAL_LAUNCHERS_H_

#include <memory>

#include "worker/parent/launcher.h"

namespace procpool {

std::unique_ptr<Launcher> MakeSpawnLauncher();
std::unique_ptr<Launcher> MakeForkLauncher();

}  // namespace procpool

#endif  // PROCPOOL_WORKER_PARENT_LOCAL_LAUNCHERS_H_
