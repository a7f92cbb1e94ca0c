#include "tools/chaos/leaks.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "testing/process_helpers.h"
#include "tools/chaos/proc.h"
#include "worker/parent/fork_server_launcher.h"
#include "worker/parent/launcher.h"

namespace procpool {
namespace chaos {
namespace {

// Worker processes still around: this process's children other than the
// fork server, and the fork server's children (the workers it forked).
std::vector<pid_t> LeftoverWorkers() {
  std::vector<pid_t> out = testing::ChildPidsExceptForkServer();
  const pid_t server = ForkServerPid(SelfExecutable());
  if (server > 0) {
    for (pid_t pid : ChildrenOf(server)) out.push_back(pid);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::set<int> OpenFds() {
  std::set<int> out;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return out;
  const int own = dirfd(dir);
  while (struct dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const int fd = atoi(e->d_name);
    if (fd != own) out.insert(fd);
  }
  closedir(dir);
  return out;
}

std::string FdTarget(int fd) {
  char target[512];
  ssize_t n = readlink(absl::StrCat("/proc/self/fd/", fd).c_str(), target,
                       sizeof(target) - 1);
  return std::string(target, n > 0 ? static_cast<size_t>(n) : 0);
}

std::string Cmdline(pid_t pid) {
  std::string s = ReadProcFile(absl::StrCat("/proc/", pid, "/cmdline"));
  std::replace(s.begin(), s.end(), '\0', ' ');
  return s.substr(0, 120);
}

// Kills a leftover worker and reaps it if it is this process's child (the
// fork server reaps its own).
void KillLeftover(pid_t pid) {
  SignalWorker(pid, SIGKILL, nullptr);
  PollUntil(
      [pid] {
        const pid_t r = waitpid(pid, nullptr, WNOHANG | __WALL);
        return r == pid || (r < 0 && errno == ECHILD);
      },
      absl::Seconds(1));
}

}  // namespace

LeakChecker::LeakChecker()
    : fds_(OpenFds()), mappings_(testing::SharedMappingCount()) {}

Leaks LeakChecker::Check(absl::Duration grace) {
  auto fds_back = [&] {
    std::set<int> now = OpenFds();
    return std::includes(fds_.begin(), fds_.end(), now.begin(), now.end());
  };
  PollUntil(
      [&] {
        return LeftoverWorkers().empty() && fds_back() &&
               testing::SharedMappingCount() <= mappings_;
      },
      grace);
  Leaks leaks;
  for (pid_t pid : LeftoverWorkers()) {
    ++leaks.processes;
    absl::StrAppend(&leaks.detail, "process ", pid, " (", Cmdline(pid),
                    ") left running; ");
    KillLeftover(pid);
  }
  const std::set<int> now = OpenFds();
  for (int fd : now) {
    if (fds_.count(fd) != 0) continue;
    ++leaks.fds;
    absl::StrAppend(&leaks.detail, "fd ", fd, " -> ", FdTarget(fd),
                    " left open; ");
  }
  fds_ = now;
  const int mappings = testing::SharedMappingCount();
  if (mappings > mappings_) {
    leaks.mappings = mappings - mappings_;
    absl::StrAppend(&leaks.detail, leaks.mappings,
                    " shared mappings left mapped; ");
  }
  mappings_ = mappings;
  return leaks;
}

}  // namespace chaos
}  // namespace procpool
