// main() for tests that run pools: the test binary doubles as the worker
// binary, so procpool::Init must come before anything else.
#include "absl/flags/parse.h"
#include "glog/logging.h"
#include "gtest/gtest.h"
#include "worker/init.h"

int main(int argc, char** argv) {
  procpool::Init(argc, argv);
  testing::InitGoogleTest(&argc, argv);
  absl::ParseCommandLine(argc, argv);
  // Log to stderr only: log files would be opened lazily and look like
  // descriptors leaked by the pool.
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  google::InstallFailureSignalHandler();
  return RUN_ALL_TESTS();
}
