// The launcher for a start method: the one call the pool makes to get a
// Launcher (worker/parent/launcher.h) for Options::start_method.
//
// Example:
//   std::unique_ptr<Launcher> launcher = MakeLauncher(StartMethod::kSpawn);
//
// Thread safety: MakeLauncher may be called from any thread; kForkServer
// launchers share one fork server per worker binary.
#ifndef PROCPOOL_WORKER_PARENT_MAKE_LAUNCHER_H_
#define PROCPOOL_WORKER_PARENT_MAKE_LAUNCHER_H_

#include <memory>

#include "core/start_method.h"
#include "worker/parent/launcher.h"

namespace procpool {

// The launcher for `method` (see core/start_method.h for what each does).
std::unique_ptr<Launcher> MakeLauncher(StartMethod method);

}  // namespace procpool

#endif  // PROCPOOL_WORKER_PARENT_MAKE_LAUNCHER_H_
