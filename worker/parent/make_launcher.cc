#include "worker/parent/make_launcher.h"

#include "worker/parent/fork_server_launcher.h"
#include "worker/parent/local_launchers.h"

namespace procpool {

std::unique_ptr<Launcher> MakeLauncher(StartMethod method) {
  switch (method) {
    case StartMethod::kSpawn:
      return MakeSpawnLauncher();
    case StartMethod::kFork:
      return MakeForkLauncher();
    case StartMethod::kForkServer:
      return MakeForkServerLauncher();
  }
  return nullptr;
}

}  // namespace procpool
