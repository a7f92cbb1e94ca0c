#include "worker/init.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "core/cluster.h"
#include "glog/logging.h"
#include "worker/child/serve.h"
#include "worker/fork_server/fork_server.h"
#include "worker/fork_server/protocol.h"

// Read by Init from argv itself (before absl::ParseCommandLine); defined here
// so that ParseCommandLine accepts it.
ABSL_FLAG(std::string, procpool_cluster, "",
          "Start as one rank of a cluster job: \"mpi\" under mpirun or srun "
          "(link //cluster:mpi; README \"On a cluster\").");

namespace procpool {
namespace {

// --procpool_cluster=NAME: runs the bootstrap registered under NAME (which
// returns on the parent rank only), or exits 2 saying what to link.
void StartCluster(int argc, char** argv) {
  const char* name = internal::FindFlagValue(argc, argv, "procpool_cluster");
  if (name == nullptr || *name == '\0') return;
  internal::ClusterBootstrap bootstrap = internal::FindClusterBootstrap(name);
  if (bootstrap == nullptr) {
    fprintf(stderr,
            "procpool: --procpool_cluster=%s: this binary has no such cluster "
            "bootstrap linked in; for \"mpi\" add \"//cluster:mpi\" to its "
            "deps (README \"On a cluster\")\n",
            name);
    fflush(stderr);
    _exit(2);
  }
  bootstrap(argc, argv);
}

}  // namespace

bool IsInternalRole(int argc, char** argv) {
  return argc >= 2 && (strcmp(argv[1], kWorkerRoleFlag) == 0 ||
                       strcmp(argv[1], kForkServerRoleFlag) == 0);
}

void Init(int argc, char** argv) {
  if (!IsInternalRole(argc, argv)) {
    StartCluster(argc, argv);
    return;
  }
  if (!google::IsGoogleLoggingInitialized()) {
    google::InitGoogleLogging(argv[0]);
  }
  if (strcmp(argv[1], kWorkerRoleFlag) == 0) {
    internal::ServeSpawnedWorker(argc, argv);
  }
  // BINARY --procpool-internal-forkserver PARENT_PID
  int parent = 0;
  if (argc < 3 || !absl::SimpleAtoi(argv[2], &parent)) {
    fprintf(stderr, "procpool worker: bad fork server command line\n");
    _exit(3);
  }
  int code = RunForkServer(3, parent);
  fflush(stdout);
  fflush(stderr);
  _exit(code);
}

}  // namespace procpool
