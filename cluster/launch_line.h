// Which cluster launcher started this process, and whether its command line
// has what procpool's cluster needs, read from the environment the launcher
// set (before MPI_Init, so that a bad line is refused with a message, not a
// hang or an MPI abort).
//
//   mpirun (Open MPI): OMPI_COMM_WORLD_SIZE is set. With more than one rank it
//     must carry --enable-recovery (OMPI_MCA_orte_enable_recovery=1): without
//     it, a worker rank that dies after MPI_Finalize (its host went away, or
//     it was killed) makes mpirun kill the whole job, rank 0 with it.
//   srun (Slurm): SLURM_STEP_ID is set. It must carry --mpi=pmix (PMIX_RANK
//     set): Debian's Open MPI fails in MPI_Init under --mpi=pmi2 or none.
//   neither: a singleton (the program run by hand): no cluster, local
//     workers as without --procpool_cluster.
#ifndef PROCPOOL_CLUSTER_LAUNCH_LINE_H_
#define PROCPOOL_CLUSTER_LAUNCH_LINE_H_

#include <functional>
#include <string>

namespace procpool {
namespace cluster {

enum class Launcher { kNone, kMpirun, kSrun };

// "mpirun", "srun" or "none".
const char* LauncherName(Launcher launcher);

struct LaunchLine {
  Launcher launcher = Launcher::kNone;
  // Empty if the line is usable; else what is wrong and what to add.
  std::string problem;
};

// Reads the variables through `getenv` (tests pass their own).
LaunchLine CheckLaunchLine(
    const std::function<const char*(const char*)>& getenv);

}  // namespace cluster
}  // namespace procpool

#endif  // PROCPOOL_CLUSTER_LAUNCH_LINE_H_
