#include "tools/chaos/leaks.h"

#include <dirent.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "testing/process_helpers.h"
#include "worker/launcher.h"

namespace procpool {
namespace chaos {
namespace {

// The children of `pid` (all its threads').
std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> out;
  const std::string tasks = absl::StrCat("/proc/", pid, "/task");
  DIR* dir = opendir(tasks.c_str());
  if (dir == nullptr) return out;
  while (struct dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(absl::StrCat(tasks, "/", e->d_name, "/children"));
    pid_t child;
    while (f >> child) out.push_back(child);
  }
  closedir(dir);
  return out;
}

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
  std::ifstream f(absl::StrCat("/proc/", pid, "/cmdline"));
  std::string s((std::istreambuf_iterator<char>(f)),
                std::istreambuf_iterator<char>());
  std::replace(s.begin(), s.end(), '\0', ' ');
  return s.substr(0, 120);
}

// Kills a leftover worker through a pidfd (no pid-reuse race) and reaps it
// if it is this process's child.
void KillLeftover(pid_t pid) {
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return;
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  close(pidfd);
  waitpid(pid, nullptr, __WALL);  // ECHILD if the fork server's: it reaps
}

}  // namespace

LeakChecker::LeakChecker()
    : fds_(OpenFds()), mappings_(testing::SharedMappingCount()) {}

Leaks LeakChecker::Check(absl::Duration grace) {
  auto fds_back = [&] {
    std::set<int> now = OpenFds();
    return std::includes(fds_.begin(), fds_.end(), now.begin(), now.end());
  };
  testing::WaitFor(
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
