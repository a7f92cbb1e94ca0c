#include "transport/shm/spin_gate.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"

namespace procpool {
namespace shm_internal {

int RunnableThreads() {
  const UniqueFd fd(open("/proc/loadavg", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return -1;
  char buf[128];
  const ssize_t n = read(fd.get(), buf, sizeof(buf) - 1);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* slash = strchr(buf, '/');
  if (slash == nullptr) return -1;
  const char* p = slash;
  while (p > buf && p[-1] >= '0' && p[-1] <= '9') --p;
  int runnable = 0;
  if (!absl::SimpleAtoi(absl::string_view(p, slash - p), &runnable)) return -1;
  return runnable;
}

SpinGate::SpinGate(bool enabled)
    : enabled_(enabled),
      cpus_(std::max(1, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)))) {}

void SpinGate::Sample(int64_t now) {
  sampled_at_ = now;
  const int runnable = RunnableThreads();
  // One runnable thread more than CPUs is allowed: the pool's caller polls
  // for results (executor/internal/pool.h) and counts as runnable, but it
  // waits for us rather than competing (tools/BENCHMARKS.md, "shm spin
  // gate").
  allowed_ = runnable < 0 || runnable <= cpus_ + 1;
}

}  // namespace shm_internal
}  // namespace procpool
