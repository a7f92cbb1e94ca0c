#include "executor/internal/event_set.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/event_fd.h"
#include "common/posix_error.h"
#include "common/sys.h"
#include "core/errors.h"
#include "glog/logging.h"

namespace procpool {
namespace internal {

EventSet::EventSet() {
  absl::StatusOr<UniqueFd> wake = MakeEventFd("the pool's wake-up");
  if (!wake.ok()) {
    throw Error(absl::StrCat("A pool could not be made: ",
                             wake.status().message()));
  }
  wake_fd_ = std::move(*wake);
  epoll_fd_.reset(GetSys().EpollCreate1(EPOLL_CLOEXEC));
  if (!epoll_fd_.valid()) {
    throw Error(absl::StrCat(
        "A pool could not be made: ",
        PosixError("epoll_create1 (the pool's event set)", errno).message()));
  }
  Add(wake_fd_.get(), kWakeKey, EPOLLIN);
}

void EventSet::Add(int fd, uint64_t key, uint32_t events) {
  struct epoll_event ev = {};
  ev.events = events;
  ev.data.u64 = key;
  PCHECK(epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) == 0);
}

void EventSet::Modify(int fd, uint64_t key, uint32_t events) {
  struct epoll_event ev = {};
  ev.events = events;
  ev.data.u64 = key;
  PCHECK(epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, fd, &ev) == 0);
}

void EventSet::Remove(int fd) {
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

void EventSet::Wake() { SignalEventFd(wake_fd_.get()); }

void EventSet::DrainWake() { DrainEventFd(wake_fd_.get()); }

int EventSet::Wait(struct epoll_event* events, int max_events,
                   absl::Duration timeout) {
#ifdef SYS_epoll_pwait2
  static std::atomic<bool> have_pwait2{true};
  if (have_pwait2.load(std::memory_order_relaxed)) {
    struct timespec ts = absl::ToTimespec(timeout);
    long n = syscall(SYS_epoll_pwait2, epoll_fd_.get(), events, max_events,
                     timeout == absl::InfiniteDuration() ? nullptr : &ts,
                     nullptr, 0);
    if (n >= 0 || errno != ENOSYS) return static_cast<int>(n);
    have_pwait2.store(false, std::memory_order_relaxed);
  }
#endif
  int ms = -1;
  if (timeout != absl::InfiniteDuration()) {
    ms = static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(
        timeout, absl::Milliseconds(1))));
  }
  return epoll_wait(epoll_fd_.get(), events, max_events, ms);
}

}  // namespace internal
}  // namespace procpool
