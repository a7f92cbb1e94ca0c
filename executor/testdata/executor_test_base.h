// The executor suite's fixture: every executor test runs once per transport
// and start method. A new transport joins the whole suite by adding its name
// to kTransports below.
#ifndef PROCPOOL_EXECUTOR_TESTDATA_EXECUTOR_TEST_BASE_H_
#define PROCPOOL_EXECUTOR_TESTDATA_EXECUTOR_TEST_BASE_H_

#include <string>
#include <tuple>
#include <vector>

#include "absl/time/time.h"
#include "executor/process_pool_executor.h"
#include "executor/testdata/test_tasks.h"
#include "gtest/gtest.h"
#include "testing/process_helpers.h"

namespace procpool {
namespace testing {

// Every wait in the suite is bounded by this: a hang fails, it never stalls.
inline constexpr absl::Duration kWait = absl::Seconds(60);

inline const std::vector<std::string>& Transports() {
  static const auto* transports = new std::vector<std::string>{"capnp", "shm", "unix"};
  return *transports;
}

struct PoolParam {
  std::string transport;
  StartMethod start_method;
};

inline void PrintTo(const PoolParam& p, std::ostream* os) {
  *os << p.transport << "/" << StartMethodName(p.start_method);
}

inline std::vector<PoolParam> AllPoolParams() {
  std::vector<PoolParam> out;
  for (const std::string& t : Transports()) {
    for (StartMethod m :
         {StartMethod::kForkServer, StartMethod::kSpawn, StartMethod::kFork}) {
      // capnp runs an event-loop thread per channel in the parent: the pool
      // refuses to fork() such a process (see ProcessPoolExecutor's options).
      if (t == "capnp" && m == StartMethod::kFork) continue;
      out.push_back({t, m});
    }
  }
  return out;
}

inline std::string PoolParamName(
    const ::testing::TestParamInfo<PoolParam>& info) {
  return info.param.transport + "_" + StartMethodName(info.param.start_method);
}

class ExecutorTest : public ::testing::TestWithParam<PoolParam> {
 protected:
  Options MakeOptions(int max_workers = 2) const {
    Options o;
    o.max_workers = max_workers;
    o.transport = GetParam().transport;
    o.start_method = GetParam().start_method;
    return o;
  }
  bool IsFork() const { return GetParam().start_method == StartMethod::kFork; }
};

// Instantiates `suite` (a TEST_P suite deriving from ExecutorTest) for every
// transport and start method.
#define INSTANTIATE_EXECUTOR_SUITE(suite)                               \
  INSTANTIATE_TEST_SUITE_P(All, suite,                                  \
                           ::testing::ValuesIn(                         \
                               ::procpool::testing::AllPoolParams()),   \
                           ::procpool::testing::PoolParamName)

}  // namespace testing
}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_TESTDATA_EXECUTOR_TEST_BASE_H_
