// The caller's side of the fast path (see pool.h): a thread waiting for a
// result polls the workers' channels itself for a short budget
// (DriveIoWhileWaiting) instead of sleeping until the manager wakes it, and
// the polling of one channel (PollWorkers, PollWorker), which Submit and the
// manager use too.
#include <sys/epoll.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "common/spin.h"
#include "executor/internal/pool.h"

namespace procpool {
namespace internal {
namespace {

// A gap this long between two clock readings of a spinning thread means it
// was preempted.
constexpr absl::Duration kPreempted = absl::Microseconds(20);

}  // namespace

void Pool::DriveIoWhileWaiting(const std::function<bool()>& done,
                               absl::Duration timeout) {
  const absl::Duration budget = std::min(timeout, waiter_poll_budget_);
  pollers_.fetch_add(1, std::memory_order_acq_rel);
  absl::Time now = absl::Now();
  const absl::Time give_way_at =
      MayGiveWay() ? now + absl::Nanoseconds(kGiveWayAfterNs)
                   : absl::InfiniteFuture();
  const absl::Time deadline = now + budget;
  bool polled = false;
  while (!done()) {
    absl::Time polled_until = now;
    if (io_mu_.TryLock()) {
      const absl::Time seen = manager_deadline_;
      // Not the idle workers' sockets: a recv() each (~0.5 us) per round
      // for nothing; the manager watches them. (16 workers: ~8 us a round.)
      if (!state_.broken() &&
          PollWorkers(/*stay=*/true, Look::kExpected, now)) {
        polled = true;
      }
      ReleaseIo(seen);
      if (done()) break;
      // A poll may take long on its own (a socket's recv(), a big frame):
      // that is not time lost to another thread.
      polled_until = absl::Now();
    }
    // On one CPU, past kGiveWayAfterNs without a result, the worker is
    // queued behind this thread: give way (whether it took the call would
    // cost a system call per socket to ask).
    SpinPause(now >= give_way_at);
    // The clock costs ~25 ns; a polling round with nothing new, ~50 ns (shm)
    // or a system call (sockets).
    now = absl::Now();
    if (now >= deadline) break;
    // A gap means this thread lost its CPU, most likely to the worker it
    // waits for (the scheduler tends to put a waker and the thread it
    // woke on one CPU): spinning on would only keep taking turns with
    // it. Sleeping lets the scheduler place the two apart again.
    if (now - polled_until > kPreempted) break;
  }
  const bool last = pollers_.fetch_sub(1, std::memory_order_acq_rel) == 1;
  if (polled && !done()) {
    // This thread goes to sleep: re-arm every channel now rather than in
    // kRearmAfter, so that the manager sees the result at once.
    io_mu_.Lock();
    const absl::Time seen = manager_deadline_;
    if (!state_.broken()) PollWorkers(/*stay=*/false);
    ReleaseIo(seen);
  } else if (last) {
    // The last caller to leave re-arms the sockets that still expect a
    // frame (any caller may have disarmed them, not only this one): while
    // callers poll, the manager keeps no timer for sockets.
    io_mu_.Lock();
    const absl::Time seen = manager_deadline_;
    RearmWaitingSockets();
    ReleaseIo(seen);
  }
}

bool Pool::PollWorkers(bool stay, Look look, absl::Time now) {
  // Submit (kResults) is no poller: it leaves no socket disarmed
  // (CallersRearm).
  const bool stay_on_sockets = stay && look != Look::kResults;
  bool polled = false;
  std::vector<std::string> frames;
  if (!stay) {
    now = absl::InfinitePast();
  } else if (now == absl::InfinitePast()) {
    now = absl::Now();
  }
  for (auto& [id, w] : workers_) {
    if (w.channel == nullptr) continue;
    if (look != Look::kAll && !w.channel->PollIsCheap()) {
      const bool results_due = !w.assigned.empty() && w.greeted();
      const bool hello_due = !w.greeted();
      if (!results_due && !(look == Look::kExpected && hello_due)) continue;
    }
    polled = true;
    const bool stay_here = CallersRearm(w) ? stay_on_sockets : stay;
    if (!PollWorker(w, stay_here, stay_here ? now : absl::InfinitePast(),
                    frames)) {
      return polled;
    }
  }
  if (!state_.broken()) HandOutQueued();
  return polled;
}

bool Pool::PollWorker(Worker& w, bool stay, absl::Time now,
                      std::vector<std::string>& frames) {
  if (stay && w.epoll_armed && !w.channel->PollIsCheap() &&
      (w.registered_events & EPOLLOUT) == 0) {
    // A socket's registration is what wakes the manager for a result (a
    // shared-memory channel's Poll(stay) disarms its own wake-up instead):
    // a caller that polls takes that registration back, once per stretch
    // of polls. Left armed, the next result woke the manager, which
    // preempted the polling caller for ~20 us; on unix that made the worker
    // sleep before the next call, and calls stayed slow in a chain
    // (tools/BENCHMARKS.md, "The tail").
    events_.Modify(w.channel->PollFd(), EventKey(w.id, EventKind::kChannel),
                   EPOLLONESHOT);
    w.epoll_armed = false;
  }
  w.disarmed = stay;
  w.last_poll = now;
  frames.clear();
  absl::Status status = w.channel->Poll(&frames, stay);
  return HandleFrames(w, frames, status);
}

}  // namespace internal
}  // namespace procpool
