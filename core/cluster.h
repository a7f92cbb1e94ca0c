// What a cluster launcher (mpirun, srun) gave this process, and the hook by
// which procpool::Init reaches a cluster bootstrap that is linked in only by
// programs that want it (//cluster:mpi).
//
// A bootstrap (cluster/mpi.cc) registers itself under a name at static
// initialization; procpool::Init looks the name of --procpool_cluster=NAME up
// here and calls it. On the parent rank the bootstrap records the worker slots
// it gathered (SetClusterWorkers); every pool whose Options name no workers
// then uses them (executor/process_pool_executor.cc).
//
// Thread safety: RegisterClusterBootstrap runs during static initialization;
// SetClusterWorkers once, in Init, before main() starts threads. The getters
// may then be called from any thread.
#ifndef PROCPOOL_CORE_CLUSTER_H_
#define PROCPOOL_CORE_CLUSTER_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace procpool {
namespace internal {

// The worker slots of a cluster, as the parent rank sees them.
struct ClusterWorkers {
  // "HOST:PORT" of a worker daemon, once per slot (a daemon serving k slots
  // appears k times), in the order pools take them.
  std::vector<std::string> addresses;
  // Per slot, what a crash report calls it, e.g. "rank 2 on node7
  // (10.0.0.7:40311)".
  std::vector<std::string> labels;
  // The shared key the daemons authenticate parents with (never on disk).
  std::string key;
  // "mpirun" or "srun": which launcher started the job (for messages).
  std::string launcher;
  // TLS under the key handshake (--procpool_cluster_tls_*): the CA file to
  // trust, and per slot the host name its daemon's certificate must carry.
  bool use_tls = false;
  std::string tls_ca_file;
  std::vector<std::string> tls_server_names;
};

// Records the slots; replaces what was there.
void SetClusterWorkers(ClusterWorkers workers);

// The slots Set recorded, or nullptr when this process is not the parent of a
// cluster (no --procpool_cluster, a single rank, or a worker rank).
const ClusterWorkers* GetClusterWorkers();

// A cluster bootstrap: runs in procpool::Init. On the parent rank it returns
// (having called SetClusterWorkers); on every other rank it serves and exits
// the process. It reports bad launch lines itself and exits.
using ClusterBootstrap = void (*)(int argc, char** argv);

// Registers `bootstrap` under `name` ("mpi"). Returns true, so that a
// namespace-scope `const bool registered = RegisterClusterBootstrap(...)`
// runs it at static initialization.
bool RegisterClusterBootstrap(absl::string_view name,
                              ClusterBootstrap bootstrap);

// The bootstrap registered under `name`, or nullptr.
ClusterBootstrap FindClusterBootstrap(absl::string_view name);

// The value of --NAME=VALUE or "--NAME VALUE" in argv (the last one wins), or
// nullptr. For flags a bootstrap must read before absl::ParseCommandLine.
const char* FindFlagValue(int argc, char** argv, absl::string_view name);

}  // namespace internal
}  // namespace procpool

#endif  // PROCPOOL_CORE_CLUSTER_H_
