#include "tools/bench/tasks.h"

#include <fcntl.h>
#include <unistd.h>

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

PROCPOOL_TASK(Noop);
PROCPOOL_TASK(Identity);
PROCPOOL_TASK(Echo);
PROCPOOL_TASK(GetPid);
PROCPOOL_TASK(BusyAnnounce);

}  // namespace bench
}  // namespace procpool
