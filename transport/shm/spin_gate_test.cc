#include "transport/shm/spin_gate.h"

#include "gtest/gtest.h"

namespace procpool {
namespace shm_internal {
namespace {

TEST(SpinGateTest, RunnableThreadsCountsThisOne) {
  // This thread runs while it reads the file; -1 only without /proc.
  const int runnable = RunnableThreads();
  EXPECT_TRUE(runnable == -1 || runnable >= 1) << runnable;
}

TEST(SpinGateTest, DisabledAlwaysAllows) {
  SpinGate gate(/*enabled=*/false);
  EXPECT_TRUE(gate.Allowed(0));
  gate.Preempted(0);
  EXPECT_TRUE(gate.Allowed(1));
}

TEST(SpinGateTest, PreemptedForbidsUntilTheNextSample) {
  SpinGate gate(/*enabled=*/true);
  const int64_t t0 = int64_t{1} << 40;
  gate.Allowed(t0);  // samples the load
  gate.Preempted(t0);
  EXPECT_FALSE(gate.Allowed(t0 + 1));
  EXPECT_FALSE(gate.Allowed(t0 + SpinGate::kRefreshNs - 1));
  // The next sample decides by the load again: allowed on an idle enough
  // machine, so only its consistency with a fresh reading is checked.
  const bool allowed = gate.Allowed(t0 + SpinGate::kRefreshNs);
  EXPECT_EQ(gate.Allowed(t0 + SpinGate::kRefreshNs + 1), allowed);
}

}  // namespace
}  // namespace shm_internal
}  // namespace procpool
