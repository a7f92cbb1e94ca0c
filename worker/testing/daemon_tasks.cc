// Tasks served by the daemon tests' worker binary (daemon_test_worker): they
// tell the test where and as whom they ran.
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/task.h"

namespace procpool {
namespace daemon_testing {

// The network namespace the task ran in ("net:[4026531840]").
std::string DaemonTestNetns() {
  char target[PATH_MAX] = {};
  const ssize_t n = readlink("/proc/self/ns/net", target, sizeof(target) - 1);
  return n > 0 ? std::string(target, static_cast<size_t>(n)) : "unknown";
}
PROCPOOL_TASK(DaemonTestNetns);

int32_t DaemonTestPid() { return static_cast<int32_t>(getpid()); }
PROCPOOL_TASK(DaemonTestPid);

int64_t DaemonTestAdd(int64_t a, int64_t b) { return a + b; }
PROCPOOL_TASK(DaemonTestAdd);

// The length of its argument (a task whose argument declares its size).
int64_t DaemonTestLength(std::vector<int64_t> v) {
  return static_cast<int64_t>(v.size());
}
PROCPOOL_TASK(DaemonTestLength);

// A long task: the worker's channel must answer heartbeats meanwhile.
int32_t DaemonTestSleep(int32_t ms) {
  absl::SleepFor(absl::Milliseconds(ms));
  return ms;
}
PROCPOOL_TASK(DaemonTestSleep);

// DaemonTestSleep that first creates the empty file `started` (a path the
// test chose): the test waits for it to know that the worker is running the
// task, instead of sleeping and hoping so. -1 if the file cannot be made.
int32_t DaemonTestMarkAndSleep(const std::string& started, int32_t ms) {
  const int fd = open(started.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  close(fd);
  return DaemonTestSleep(ms);
}
PROCPOOL_TASK(DaemonTestMarkAndSleep);

}  // namespace daemon_testing
}  // namespace procpool
