// Ends an mpirun that would never end: Open MPI 4.1.4's mpirun
// --enable-recovery waits forever for the ranks of a host it lost (the host
// went away, or its orted was killed), even after every live rank has exited
// (measured: still waiting after 735 s; SIGTERM does nothing, one SIGINT
// neither; two SIGINTs within 5 s end it in under a second, rc 1, and take
// down the orteds and ranks left on the live hosts).
//
// So rank 0, when it exits under mpirun, leaves a watcher behind: a detached
// process (its own session, no descriptors but /dev/null) that gives mpirun a
// grace period to end by itself (it does, at once, when no host was lost:
// the worker ranks exit on rank 0's goodbye) and otherwise sends it the two
// SIGINTs. Only when mpirun is rank 0's parent (rank 0 on mpirun's host, as
// mpirun places it by default); elsewhere the launching script must bound
// mpirun itself.
#ifndef PROCPOOL_CLUSTER_MPIRUN_WATCH_H_
#define PROCPOOL_CLUSTER_MPIRUN_WATCH_H_

#include <sys/types.h>

#include "absl/time/time.h"

namespace procpool {
namespace cluster {

// True if `pid` runs mpirun (Open MPI's mpirun, mpiexec or orterun).
bool IsMpirun(pid_t pid);

// Forks the watcher for `mpirun` (see above) and returns at once. Safe to call
// from an exit handler.
void EndMpirunIfItLingers(pid_t mpirun, absl::Duration grace);

}  // namespace cluster
}  // namespace procpool

#endif  // PROCPOOL_CLUSTER_MPIRUN_WATCH_H_
