// The manager's event set: one epoll instance and the wake eventfd that
// Submit/Shutdown write to rouse the manager thread.
//
// Every registered descriptor carries a 64-bit key saying whose it is and
// what kind of event it is (EventKey): a worker id and an EventKind. The wake
// eventfd has a key of its own (kWakeKey), registered at construction.
//
// Example:
//   EventSet events;
//   events.Add(pidfd, EventKey(id, EventKind::kPid), EPOLLIN);
//   events.Wake();  // from any thread
//   struct epoll_event ready[64];
//   int n = events.Wait(ready, 64, absl::Milliseconds(5));
//   for (int i = 0; i < n; ++i) {
//     if (ready[i].data.u64 == kWakeKey) { events.DrainWake(); continue; }
//     int id = WorkerOfKey(ready[i].data.u64); ...
//   }
//
// Thread safety: Wake() is safe from any thread and never blocks (S21).
// Add/Modify/Remove are epoll_ctl() calls, safe from any thread (the pool
// makes them under io_mu_); Wait() and DrainWake() belong to the manager
// thread. Owns both descriptors (closed by the destructor).
#ifndef PROCPOOL_EXECUTOR_INTERNAL_EVENT_SET_H_
#define PROCPOOL_EXECUTOR_INTERNAL_EVENT_SET_H_

#include <sys/epoll.h>

#include <cstdint>

#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace procpool {
namespace internal {

// What a registered descriptor is, for the worker in its key.
enum class EventKind : uint64_t {
  kChannel = 0,    // the worker's channel (Channel::PollFd, EPOLLONESHOT)
  kPid = 1,        // its pidfd: readable once it exited
  kHeartbeat = 2,  // its crash-report pipe (heartbeats and crash stacks)
};

// The wake eventfd's key; no worker key equals it.
inline constexpr uint64_t kWakeKey = ~uint64_t{0};

// The key of worker `id`'s descriptor of `kind`.
inline uint64_t EventKey(int id, EventKind kind) {
  return (static_cast<uint64_t>(id) << 2) | static_cast<uint64_t>(kind);
}
// The worker and kind a (non-wake) key names.
inline int WorkerOfKey(uint64_t key) { return static_cast<int>(key >> 2); }
inline EventKind KindOfKey(uint64_t key) {
  return static_cast<EventKind>(key & 3);
}

class EventSet {
 public:
  // Creates the epoll instance and the wake eventfd. Throws procpool::Error
  // if the system refuses (the descriptor limit: the message says which and
  // what to do), so that a pool's constructor fails instead of the process.
  EventSet();
  EventSet(const EventSet&) = delete;
  EventSet& operator=(const EventSet&) = delete;

  // Registers `fd` with `events` (EPOLLIN, EPOLLONESHOT...) under `key`.
  // CHECK-fails on error, as the pool always did.
  void Add(int fd, uint64_t key, uint32_t events);
  // Changes a registered fd's events (re-arms an EPOLLONESHOT one).
  void Modify(int fd, uint64_t key, uint32_t events);
  // Unregisters `fd`; errors (e.g. an fd never added) are ignored.
  void Remove(int fd);

  // Rouses a Wait() in progress or the next one. Never blocks: an eventfd
  // write only fails (EAGAIN) when it is already set.
  void Wake();
  // Clears the wake eventfd (after Wait() returned kWakeKey).
  void DrainWake();

  // epoll_wait() for at most `timeout` (InfiniteDuration: no limit), finer
  // than a millisecond where the kernel has epoll_pwait2 (Linux 5.11),
  // otherwise rounded up to whole milliseconds. Returns the number of
  // events, or -1 with errno set (EINTR included).
  int Wait(struct epoll_event* events, int max_events, absl::Duration timeout);

 private:
  UniqueFd wake_fd_;
  UniqueFd epoll_fd_;
};

}  // namespace internal
}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_INTERNAL_EVENT_SET_H_
