#include "cluster/launch_line.h"

#include <map>
#include <string>

#include "gtest/gtest.h"

namespace procpool {
namespace cluster {
namespace {

LaunchLine Check(const std::map<std::string, std::string>& env) {
  return CheckLaunchLine([&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

TEST(LaunchLineTest, NoLauncherIsASingleton) {
  const LaunchLine line = Check({});
  EXPECT_EQ(line.launcher, Launcher::kNone);
  EXPECT_EQ(line.problem, "");
}

TEST(LaunchLineTest, MpirunWithoutRecoveryIsRefusedWithWhatToAdd) {
  const LaunchLine line = Check({{"OMPI_COMM_WORLD_SIZE", "3"}});
  EXPECT_EQ(line.launcher, Launcher::kMpirun);
  EXPECT_NE(line.problem.find("--enable-recovery"), std::string::npos)
      << line.problem;
}

TEST(LaunchLineTest, MpirunWithRecoveryOrOneRankIsAccepted) {
  EXPECT_EQ(Check({{"OMPI_COMM_WORLD_SIZE", "3"},
                   {"OMPI_MCA_orte_enable_recovery", "1"}})
                .problem,
            "");
  EXPECT_EQ(Check({{"OMPI_COMM_WORLD_SIZE", "1"}}).problem, "");
}

TEST(LaunchLineTest, SrunNeedsPmix) {
  const LaunchLine bare = Check({{"SLURM_STEP_ID", "0"}});
  EXPECT_EQ(bare.launcher, Launcher::kSrun);
  EXPECT_NE(bare.problem.find("--mpi=pmix"), std::string::npos) << bare.problem;
  const LaunchLine pmix = Check({{"SLURM_STEP_ID", "0"}, {"PMIX_RANK", "1"}});
  EXPECT_EQ(pmix.launcher, Launcher::kSrun);
  EXPECT_EQ(pmix.problem, "");
}

TEST(LaunchLineTest, OpenMpiUnderSrunFollowsSrunsRule) {
  // Open MPI's variables with srun's and no mpirun (no HNP URI): srun's rule.
  const LaunchLine line = Check({{"OMPI_COMM_WORLD_SIZE", "3"},
                                 {"SLURM_STEP_ID", "0"},
                                 {"PMIX_RANK", "0"}});
  EXPECT_EQ(line.launcher, Launcher::kSrun);
  EXPECT_EQ(line.problem, "");
}

TEST(LaunchLineTest, Names) {
  EXPECT_STREQ(LauncherName(Launcher::kMpirun), "mpirun");
  EXPECT_STREQ(LauncherName(Launcher::kSrun), "srun");
  EXPECT_STREQ(LauncherName(Launcher::kNone), "none");
}

}  // namespace
}  // namespace cluster
}  // namespace procpool
