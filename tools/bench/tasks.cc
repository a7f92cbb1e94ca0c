#include "tools/bench/tasks.h"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "executor/process_pool_executor.h"

namespace procpool {
namespace bench {

void Noop() {}
int Identity(int x) { return x; }
std::string Echo(const std::string& s) { return s; }
int GetPid() { return getpid(); }

int BusyAnnounce(const std::string& dir, int index, int ms) {
  const std::string path = absl::StrCat(dir, "/", index, "-", getpid());
  const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0) close(fd);
  absl::SleepFor(absl::Milliseconds(ms));
  return getpid();
}

SharedArray<double> EchoArray(SharedArray<double> xs) { return xs; }

void TransformSlice(const double* x, double* y, size_t n, int64_t part,
                    int64_t parts) {
  const size_t begin = n * part / parts, end = n * (part + 1) / parts;
  for (size_t i = begin; i < end; ++i) y[i] = std::sqrt(x[i]) * 0.5 + 1;
}

int64_t TransformTask(SharedArray<double> x, SharedArray<double> y,
                      int64_t part, int64_t parts) {
  const SharedArray<double>& in = x;
  TransformSlice(in.data(), y.data(), in.size(), part, parts);
  return static_cast<int64_t>(in.size() * (part + 1) / parts -
                              in.size() * part / parts);
}

PROCPOOL_TASK(Noop);
PROCPOOL_TASK(Identity);
PROCPOOL_TASK(Echo);
PROCPOOL_TASK(GetPid);
PROCPOOL_TASK(BusyAnnounce);
PROCPOOL_TASK(EchoArray);
PROCPOOL_TASK(TransformTask);

}  // namespace bench
}  // namespace procpool
