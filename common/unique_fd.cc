#include "common/unique_fd.h"

#include <unistd.h>

namespace procpool {

void CloseFd(int fd) {
  if (fd < 0) return;
  // Once, whatever it returns (see unique_fd.h).
  (void)close(fd);
}

}  // namespace procpool
