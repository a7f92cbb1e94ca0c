#include "tools/chaos/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "worker/parent/fork_server_launcher.h"
#include "worker/parent/launcher.h"

namespace procpool {
namespace chaos {

std::string ReadProcFile(const std::string& path) {
  std::string out;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // end of file, or the process is gone (ESRCH)
    }
  }
  close(fd);
  return out;
}

char ProcState(pid_t pid, pid_t* ppid) {
  const std::string stat = ReadProcFile(absl::StrCat("/proc/", pid, "/stat"));
  // "PID (COMM) S PPID ...": COMM may hold spaces and parentheses.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 4 >= stat.size()) return 0;
  if (ppid != nullptr)
    *ppid = static_cast<pid_t>(atoi(stat.c_str() + paren + 4));
  return stat[paren + 2];
}

std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> out;
  const std::string tasks = absl::StrCat("/proc/", pid, "/task");
  DIR* dir = opendir(tasks.c_str());
  if (dir == nullptr) return out;
  while (struct dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const std::string children =
        ReadProcFile(absl::StrCat(tasks, "/", e->d_name, "/children"));
    for (absl::string_view s :
         absl::StrSplit(children, ' ', absl::SkipWhitespace())) {
      int child;
      if (absl::SimpleAtoi(s, &child)) out.push_back(child);
    }
  }
  closedir(dir);
  return out;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool SignalWorker(pid_t pid, int sig, int64_t* sent_ns) {
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return false;
  pid_t ppid = -1;
  const char state = ProcState(pid, &ppid);
  const bool ours =
      state != 0 && state != 'Z' &&
      (ppid == getpid() || ppid == ForkServerPid(SelfExecutable()));
  bool sent = false;
  if (ours) {
    if (sent_ns != nullptr) *sent_ns = NowNs();
    sent = syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0;
  }
  close(pidfd);
  return sent;
}

}  // namespace chaos
}  // namespace procpool
