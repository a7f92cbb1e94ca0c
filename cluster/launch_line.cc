#include "cluster/launch_line.h"

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace procpool {
namespace cluster {

const char* LauncherName(Launcher launcher) {
  switch (launcher) {
    case Launcher::kMpirun:
      return "mpirun";
    case Launcher::kSrun:
      return "srun";
    case Launcher::kNone:
      break;
  }
  return "none";
}

LaunchLine CheckLaunchLine(
    const std::function<const char*(const char*)>& getenv) {
  auto is = [&](const char* name) {
    const char* v = getenv(name);
    return v != nullptr && *v != '\0';
  };
  LaunchLine line;
  if (is("OMPI_COMM_WORLD_SIZE")) {
    line.launcher = Launcher::kMpirun;
    int size = 0;
    const bool many = absl::SimpleAtoi(getenv("OMPI_COMM_WORLD_SIZE"), &size) &&
                      size > 1;
    const char* recovery = getenv("OMPI_MCA_orte_enable_recovery");
    const bool recovers =
        recovery != nullptr && (std::string(recovery) == "1" ||
                                std::string(recovery) == "true");
    // Under srun Open MPI sets OMPI_COMM_WORLD_SIZE too: srun's rule applies.
    if (is("SLURM_STEP_ID") && !is("OMPI_MCA_orte_hnp_uri")) {
      line.launcher = Launcher::kSrun;
    } else if (many && !recovers) {
      line.problem =
          "under mpirun, --procpool_cluster=mpi needs mpirun "
          "--enable-recovery: without it a worker rank that dies (killed, or "
          "its host gone) makes mpirun kill the whole job, this program "
          "with it. Add --enable-recovery to the mpirun command line "
          "(README \"On a cluster\")";
      return line;
    }
  } else if (is("SLURM_STEP_ID")) {
    line.launcher = Launcher::kSrun;
  }
  if (line.launcher == Launcher::kSrun && !is("PMIX_RANK")) {
    line.problem =
        "under srun, --procpool_cluster=mpi needs srun --mpi=pmix: Open "
        "MPI cannot start its ranks with --mpi=pmi2 or --mpi=none. Add "
        "--mpi=pmix to the srun command line (README \"On a cluster\")";
  }
  return line;
}

}  // namespace cluster
}  // namespace procpool
