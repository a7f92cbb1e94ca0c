// Pools whose workers are a separate procpool_worker_binary, not this test.
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <set>

#include "executor/testdata/executor_test_base.h"
#include "executor/testdata/test_worker.h"

namespace procpool {
namespace testing {
namespace {

namespace tt = ::procpool::test_tasks;

class WorkerBinaryTest : public ::testing::TestWithParam<StartMethod> {};

TEST_P(WorkerBinaryTest, RunsTasksInTheWorkerBinary) {
  Options o;
  o.max_workers = 2;
  o.transport = "unix";
  o.start_method = GetParam();
  o.worker_binary = TestWorkerBinary();
  ProcessPoolExecutor pool(o);
  EXPECT_EQ(pool.Submit(tt::Pow, 3, 4).Get(kWait), 81);
  int pid = pool.Submit(tt::GetPid).Get(kWait);
  std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
  std::string argv0;
  std::getline(cmdline, argv0, '\0');
  EXPECT_NE(argv0.find("test_worker"), std::string::npos) << argv0;
  EXPECT_THROW(pool.Submit(tt::Throw, "domain_error").Get(kWait),
               std::domain_error);
}

INSTANTIATE_TEST_SUITE_P(All, WorkerBinaryTest,
                         ::testing::Values(StartMethod::kSpawn,
                                           StartMethod::kForkServer));

}  // namespace
}  // namespace testing
}  // namespace procpool
