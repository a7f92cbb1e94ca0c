// The executor tests' worker binary (//executor:test_worker, a data
// dependency of the tests that use it) and the options of a pool whose
// workers are slots of a worker daemon running it.
#ifndef PROCPOOL_EXECUTOR_TESTDATA_TEST_WORKER_H_
#define PROCPOOL_EXECUTOR_TESTDATA_TEST_WORKER_H_

#include <cstdlib>
#include <string>

#include "executor/options.h"

namespace procpool {
namespace testing {

// Its path in the test's runfiles.
inline std::string TestWorkerBinary() {
  const char* srcdir = getenv("TEST_SRCDIR");
  return std::string(srcdir != nullptr ? srcdir : ".") +
         "/procpool/executor/test_worker";
}

// `slots` worker slots at the daemon at `address`, authenticated with the
// key in `key_file`; default heartbeats.
inline Options RemotePoolOptions(const std::string& address,
                                 const std::string& key_file, int slots) {
  Options o;
  o.remote_workers.assign(slots, address);
  o.auth_key_file = key_file;
  return o;
}

}  // namespace testing
}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_TESTDATA_TEST_WORKER_H_
