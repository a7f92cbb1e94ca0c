// Eventfds used as wake-ups between threads or processes: make one, signal
// it, drain it. Every eventfd here is non-blocking and close-on-exec, so
// signalling never blocks and draining an unset one returns at once.
//
// Example:
//   ASSIGN_OR_RETURN(UniqueFd wake, MakeEventFd("pool"));
//   SignalEventFd(wake.get());          // another thread: wake up
//   ... poll() or epoll says wake.get() is readable ...
//   if (DrainEventFd(wake.get())) { /* was signalled */ }
//
// Thread safety: the functions hold no state; an eventfd may be signalled
// from any thread or process while another drains it (the kernel orders
// them).
#ifndef PROCPOOL_COMMON_EVENT_FD_H_
#define PROCPOOL_COMMON_EVENT_FD_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"

namespace procpool {

// A new eventfd (EFD_CLOEXEC | EFD_NONBLOCK) whose counter starts at
// `initial`. On failure the error reads "<context>: eventfd: <strerror>"
// (PosixError).
absl::StatusOr<UniqueFd> MakeEventFd(absl::string_view context,
                                     unsigned int initial = 0);

// Adds 1 to the eventfd's counter, retrying on EINTR. Never blocks: the
// counter holds 2^64 - 2, which no count of wake-ups reaches (EAGAIN would
// only mean it is already set).
void SignalEventFd(int fd);

// Resets the eventfd's counter to zero, retrying on EINTR; true if it was
// set (non-zero), false if it was not (EAGAIN) or the read failed.
bool DrainEventFd(int fd);

}  // namespace procpool

#endif  // PROCPOOL_COMMON_EVENT_FD_H_
