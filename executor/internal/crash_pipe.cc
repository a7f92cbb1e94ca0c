#include "executor/internal/crash_pipe.h"

#include <errno.h>
#include <unistd.h>

namespace procpool {
namespace internal {

bool ReadCrashPipe(int fd, std::string* report) {
  if (fd < 0) return false;
  char buf[4096];
  bool beat = false;
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] == '\0') {
        beat = true;
      } else {
        report->push_back(buf[i]);
      }
    }
  }
  return beat;
}

}  // namespace internal
}  // namespace procpool
