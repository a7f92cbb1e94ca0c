#include "testing/process_helpers.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "worker/parent/fork_server_launcher.h"
#include "worker/parent/launcher.h"

namespace procpool {
namespace testing {

std::vector<pid_t> ChildPids() {
  std::vector<pid_t> out;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return out;
  while (struct dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(absl::StrCat("/proc/self/task/", e->d_name, "/children"));
    pid_t pid;
    while (f >> pid) out.push_back(pid);
  }
  closedir(dir);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<pid_t> ChildPidsExceptForkServer() {
  pid_t server = ForkServerPid(SelfExecutable());
  std::vector<pid_t> out = ChildPids();
  out.erase(std::remove(out.begin(), out.end(), server), out.end());
  return out;
}

int OpenFdCount() {
  int n = 0;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (struct dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the DIR's own descriptor
}

std::string DescribeFds() {
  std::string out;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return out;
  while (struct dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    char target[512];
    ssize_t n = readlink(absl::StrCat("/proc/self/fd/", e->d_name).c_str(),
                         target, sizeof(target) - 1);
    target[n > 0 ? n : 0] = '\0';
    absl::StrAppend(&out, e->d_name, " -> ", target, "\n");
  }
  closedir(dir);
  return out;
}

int SharedMappingCount() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  int n = 0;
  while (std::getline(maps, line)) {
    if (line.find("/memfd:") != std::string::npos ||
        line.find("/dev/shm/") != std::string::npos) {
      ++n;
    }
  }
  return n;
}

bool IsAlive(pid_t pid) {
  // Plain read(2): the process may vanish while we read (ESRCH), which
  // libstdc++'s streams report by throwing.
  int fd = open(absl::StrCat("/proc/", pid, "/stat").c_str(),
                O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return false;
  std::string content(buf, static_cast<size_t>(n));
  size_t close_paren = content.rfind(')');
  if (close_paren == std::string::npos || close_paren + 2 >= content.size()) {
    return false;
  }
  char state = content[close_paren + 2];
  return state != 'Z' && state != 'X';
}

}  // namespace testing
}  // namespace procpool
