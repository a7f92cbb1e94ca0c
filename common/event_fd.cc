#include "common/event_fd.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/posix_error.h"
#include "common/sys.h"

namespace procpool {

absl::StatusOr<UniqueFd> MakeEventFd(absl::string_view context,
                                     unsigned int initial) {
  UniqueFd fd(GetSys().EventFd(initial, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd.valid()) return PosixError(absl::StrCat(context, ": eventfd"), errno);
  return fd;
}

void SignalEventFd(int fd) {
  const uint64_t one = 1;
  while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

bool DrainEventFd(int fd) {
  uint64_t value;
  for (;;) {
    if (read(fd, &value, sizeof(value)) == sizeof(value)) return true;
    if (errno != EINTR) return false;
  }
}

}  // namespace procpool
