// A worker binary built from "different task code": Pow has another
// signature here than in the test binary (the handshake must name it).
#include <cstdint>

#include "executor/process_pool_executor.h"

namespace procpool {
namespace test_tasks {
int64_t Pow(int64_t base, int64_t exp) {
  int64_t r = 1;
  for (int64_t i = 0; i < exp; ++i) r *= base;
  return r;
}
}  // namespace test_tasks
}  // namespace procpool

namespace tt = ::procpool::test_tasks;
PROCPOOL_TASK(tt::Pow);
