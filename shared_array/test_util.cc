#include "shared_array/test_util.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <string>

#include "absl/time/clock.h"

namespace procpool {
namespace shared_array_testing {

int FdCount() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the directory's own descriptor
}

namespace {

int CountMaps(const char* needle) {
  std::ifstream maps("/proc/self/maps");
  int n = 0;
  for (std::string line; std::getline(maps, line);) {
    if (needle == nullptr || line.find(needle) != std::string::npos) ++n;
  }
  return n;
}

}  // namespace

int MapsLineCount() { return CountMaps(nullptr); }

int ArrayMappingCount() { return CountMaps("/memfd:procpool-array"); }

std::optional<int> WaitChild(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 || absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(2));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  return std::nullopt;
}

}  // namespace shared_array_testing
}  // namespace procpool
