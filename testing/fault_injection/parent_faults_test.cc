// Tests of the parent-side channel faults (parent_faults.h): a pool over a
// wrapping transport works as the plain one while nothing is armed, and each
// armed mode fires exactly once and breaks the pool (BrokenProcessPool within
// a bound, never a hang or a wrong value).
#include "testing/fault_injection/parent_faults.h"

#include <string>
#include <tuple>

#include "absl/time/time.h"
#include "executor/process_pool_executor.h"
#include "executor/testdata/test_tasks.h"
#include "gtest/gtest.h"

namespace procpool {
namespace fault {
namespace {

namespace tt = ::procpool::test_tasks;

constexpr absl::Duration kBound = absl::Seconds(20);

Options PoolOptions(const std::string& transport) {
  Options options;
  options.max_workers = 1;
  options.transport = WrappedTransportName(transport);
  options.start_method = StartMethod::kForkServer;
  return options;
}

class CleanTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CleanTest, UnarmedWrapperIsTheRealTransport) {
  ArmParentFault({ParentMode::kPumpFails, 1});
  EXPECT_EQ(DisarmParentFault(), 0);  // armed, nothing ran: not fired
  ProcessPoolExecutor pool(PoolOptions(GetParam()));
  EXPECT_EQ(pool.Submit(tt::Pow, 2, 10).Get(kBound), 1024);
  const std::string big(3 << 20, 'b');  // SendParts, many Pumps
  EXPECT_EQ(pool.Submit(tt::Echo, big).Get(kBound), big);
  EXPECT_EQ(DisarmParentFault(), 0);
}

// Names begin with the transport, as the executor suite's do, so that
// tools/test.sh's sanitizer filters (*/shm_*, *capnp*, ...) apply.
INSTANTIATE_TEST_SUITE_P(
    Transports, CleanTest, ::testing::Values("shm", "unix", "capnp"),
    [](const ::testing::TestParamInfo<std::string>& info) {
      return info.param + "_unarmed";
    });

class ModeTest
    : public ::testing::TestWithParam<std::tuple<ParentMode, std::string>> {};

TEST_P(ModeTest, FiresOnceAndBreaksThePool) {
  const auto [mode, transport] = GetParam();
  ArmParentFault({mode, 1});
  bool broken = false;
  {
    ProcessPoolExecutor pool(PoolOptions(transport));
    try {
      int value = pool.Submit(tt::Pow, 2, 3).Get(kBound);
      ADD_FAILURE() << "completed with " << value;
    } catch (const BrokenProcessPool&) {
      broken = true;
    }
  }
  EXPECT_TRUE(broken);
  EXPECT_EQ(DisarmParentFault(), 1);
}

INSTANTIATE_TEST_SUITE_P(
    Modes, ModeTest,
    ::testing::Combine(::testing::ValuesIn(AllParentModes()),
                       ::testing::Values("shm", "unix", "capnp")),
    [](const ::testing::TestParamInfo<std::tuple<ParentMode, std::string>>&
           info) {
      return std::get<1>(info.param) + "_" +
             ParentModeName(std::get<0>(info.param));
    });

}  // namespace
}  // namespace fault
}  // namespace procpool
