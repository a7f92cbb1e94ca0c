// main() of a procpool worker binary (//worker:procpool_worker and every
// procpool_worker_binary): serves the tasks linked into it when started by a
// pool; with --listen=HOST:PORT it is a worker daemon for parents on other
// hosts (worker/daemon/daemon.h); run by hand otherwise it says what it is
// and which tasks it has.
#include <cstdio>

#include "core/task.h"
#include "worker/daemon/daemon.h"
#include "worker/init.h"

int main(int argc, char** argv) {
  procpool::Init(argc, argv);
  if (procpool::IsDaemonCommandLine(argc, argv)) {
    return procpool::DaemonMain(argc, argv);
  }
  std::printf(
      "%s: a procpool worker binary. Pools start it; it is not run by hand.\n"
      "Point procpool::Options::worker_binary at it. Tasks it serves:\n",
      argv[0]);
  for (const procpool::internal::TaskInfo* task : procpool::internal::AllTasks()) {
    std::printf("  %s %s\n", task->name.c_str(), task->signature.c_str());
  }
  return 0;
}
