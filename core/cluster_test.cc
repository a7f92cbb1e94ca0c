#include "core/cluster.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace procpool {
namespace internal {
namespace {

void NoOp(int, char**) {}

TEST(ClusterTest, RegisteredBootstrapIsFoundByName) {
  EXPECT_EQ(FindClusterBootstrap("test-noop"), nullptr);
  RegisterClusterBootstrap("test-noop", &NoOp);
  EXPECT_EQ(FindClusterBootstrap("test-noop"), &NoOp);
  EXPECT_EQ(FindClusterBootstrap("test-noo"), nullptr);
}

TEST(ClusterTest, WorkersAreUnsetUntilSet) {
  EXPECT_EQ(GetClusterWorkers(), nullptr);
  ClusterWorkers workers;
  workers.addresses = {"10.0.0.2:4000", "10.0.0.3:4001"};
  workers.labels = {"rank 1", "rank 2"};
  workers.key = "k";
  SetClusterWorkers(workers);
  ASSERT_NE(GetClusterWorkers(), nullptr);
  EXPECT_EQ(GetClusterWorkers()->addresses, workers.addresses);
  EXPECT_EQ(GetClusterWorkers()->key, "k");
}

TEST(ClusterTest, FindFlagValueReadsBothFormsAndTheLastWins) {
  std::vector<std::string> args = {"prog", "--procpool_cluster=mpi",
                                   "--procpool_cluster_slots_per_rank", "4",
                                   "-procpool_cluster=other", "--",
                                   "--procpool_cluster=after"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  const int argc = static_cast<int>(argv.size());
  EXPECT_STREQ(FindFlagValue(argc, argv.data(), "procpool_cluster"), "other");
  EXPECT_STREQ(
      FindFlagValue(argc, argv.data(), "procpool_cluster_slots_per_rank"), "4");
  EXPECT_EQ(FindFlagValue(argc, argv.data(), "procpool_clust"), nullptr);
  EXPECT_EQ(FindFlagValue(argc, argv.data(), "missing"), nullptr);
}

}  // namespace
}  // namespace internal
}  // namespace procpool
