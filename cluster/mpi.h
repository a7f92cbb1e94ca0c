// procpool on a cluster: mpirun or srun starts one process per rank, and the
// ranks other than 0 become the workers of rank 0's pools.
//
// Link //cluster:mpi into the program and launch it with
//   mpirun --enable-recovery -n 17 ./app --procpool_cluster=mpi
//   srun --mpi=pmix -n 17 ./app --procpool_cluster=mpi
// (or call InitMpiCluster in code). procpool::Init(argc, argv) (first in
// main) then, on every rank:
//   1. MPI_Init. Rank 0 makes a fresh 32-byte key and listens for control
//      connections (cluster/control.h); both are broadcast.
//   2. Every other rank connects its control connection to rank 0, starts
//      the worker daemon (worker/daemon/daemon.h) on an ephemeral port of
//      the address that connection leaves from, and its "address, slots,
//      host" are gathered to rank 0.
//   3. Rank 0 checks every rank's control connection (a proof of the key);
//      the verdict is broadcast; every rank calls MPI_Finalize. No task runs
//      while MPI is initialized, so no MPI failure rule applies to tasks.
//   4. Rank 0 returns from Init and runs main(): a pool whose Options name no
//      workers (no remote_workers, transport empty or "capnp") gets the
//      gathered slots, authenticated with the key, over Cap'n Proto. Ranks
//      other than 0 never return: they serve until rank 0 ends, then exit 0
//      if it said goodbye (it exited normally) or 3 if it vanished (died, or
//      its host went away); their workers die with them.
// A single rank (the program run by hand, or -n 1) is no cluster: Init
// returns and pools use local workers.
//
// Slots: --procpool_cluster_slots_per_rank=N workers per rank (default 1, so
// -n 17 is one parent and 16 workers, as with mpi4py.futures); 0 serves the
// CPUs the rank is bound to (mpirun --map-by ppr:1:node:PE=8, srun
// --cpus-per-task=8).
//
// A bad launch line (cluster/launch_line.h) is refused before MPI_Init: rank
// 0 prints what to add and every rank exits 2.
#ifndef PROCPOOL_CLUSTER_MPI_H_
#define PROCPOOL_CLUSTER_MPI_H_

#include "absl/time/time.h"

namespace procpool {

struct MpiClusterOptions {
  // Worker slots each rank other than 0 serves; 0: the CPUs it is bound to.
  int slots_per_rank = 1;
  // Bounds the bootstrap's network steps (a rank reaching rank 0, rank 0
  // waiting for every rank's control connection).
  absl::Duration bootstrap_timeout = absl::Seconds(60);
  // TLS under the key handshake, as for remote workers (README "Remote
  // workers"): every rank other than 0 serves with this certificate and key
  // (the same paths on every host; the certificate must name the host as
  // gethostname() there says it), and rank 0 trusts tls_ca_file (empty: the
  // system's store). Both empty: no TLS. Flags: --procpool_cluster_tls_cert_file,
  // --procpool_cluster_tls_key_file, --procpool_cluster_tls_ca_file.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_ca_file;
};

// The bootstrap above, from code: what --procpool_cluster=mpi does (which
// reads --procpool_cluster_slots_per_rank). Call it first in main(), in
// place of procpool::Init (it calls Init itself). Returns on rank 0 only.
void InitMpiCluster(int argc, char** argv, const MpiClusterOptions& options);

}  // namespace procpool

#endif  // PROCPOOL_CLUSTER_MPI_H_
