// Deadlines: per-task timeouts (the worker running an overrunning task is
// killed and the future fails with TimeoutError), the order in which the
// manager checks a worker's timers, the earliest timer it must wake for, and
// the re-arming of channels that callers left disarmed.
#include <signal.h>

#include <algorithm>
#include <string>
#include <vector>

#include "executor/internal/pool.h"
#include "glog/logging.h"

namespace procpool {
namespace internal {

void Pool::CheckDeadlines() {
  const absl::Time now = absl::Now();
  for (auto& [id, w] : workers_) {
    if (w.killed()) continue;
    if (KillIfOverran(w, now)) continue;
    if (KillIfHung(w, now)) continue;  // pool_health.cc
    if (KillIfNeverStarted(w, now)) continue;
    RetireIfIdle(w, now);              // pool_health.cc
  }
}

bool Pool::KillIfOverran(Worker& w, absl::Time now) {
  if (w.assigned.empty() || w.assigned.front().deadline > now) return false;
  w.timed_out_work_id = w.assigned.front().work_id;
  VLOG(1) << "procpool: task " << w.assigned.front().item.task << " (work id "
          << w.timed_out_work_id << ") overran its timeout; killing worker pid "
          << w.process.pid;
  KillWorker(w, SIGKILL);
  return true;
}

bool Pool::WantsRearm(Worker& w, absl::Time now) {
  // A socket is re-armed by the callers (the last to stop polling, or the
  // hand-out when none polls): no timer.
  if (CallersRearm(w)) return false;
  if (!w.disarmed) {
    // Nobody polled it for a whole interval since the manager re-armed it:
    // the callers' stretch is over, the next one starts short.
    if (now >= w.rearm_due) {
      w.rearm_due = absl::InfiniteFuture();
      w.rearm_after = kRearmAfter;
    }
    return false;
  }
  if (now < w.last_poll + w.rearm_after) {
    // Woken for it, but a caller polled meanwhile: look again later, and
    // less often (worker_table.h, kRearmAfter).
    if (now >= w.rearm_due) {
      w.rearm_after = std::min(2 * w.rearm_after, kRearmAfterMax);
    }
    w.rearm_due = w.last_poll + w.rearm_after;
    return false;
  }
  w.disarmed = false;
  // Keep looking for one more interval: a caller that polls again meanwhile
  // then finds the manager's wake-up already due, and need not wake it.
  w.rearm_due = now + w.rearm_after;
  return w.channel != nullptr;
}

void Pool::RearmWaitingSockets() {
  std::vector<std::string> frames;
  bool polled = false;
  for (auto& [id, w] : workers_) {
    if (state_.broken()) return;
    if (!CallersRearm(w) || !w.disarmed ||
        (w.assigned.empty() && w.greeted())) {
      continue;
    }
    polled = true;
    if (!PollWorker(w, /*stay=*/false, absl::InfinitePast(), frames)) return;
  }
  // Most often nothing was left waiting (a Get took the only result): then
  // no hand-out either, which would take mu_ on every Get.
  if (polled && !state_.broken()) HandOutQueued();
}

absl::Time Pool::NextDeadline() const {
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [id, w] : workers_) {
    if (!CallersRearm(w)) {
      next = std::min(next, w.disarmed ? w.last_poll + w.rearm_after
                                       : w.rearm_due);
    }
    next = std::min(next, w.kill_deadline);
    if (!w.greeted() && !w.killed()) next = std::min(next, w.start_deadline);
    if (!w.assigned.empty() && !w.killed()) {
      next = std::min(next, w.assigned.front().deadline);
    }
    if (config_.idle_timeout != absl::InfiniteDuration() &&
        !w.shutdown_sent()) {
      next = std::min(next, w.idle_since + config_.idle_timeout);
    }
    if (config_.heartbeat_timeout != absl::InfiniteDuration() && !w.killed()) {
      next = std::min(next, w.last_heartbeat + config_.heartbeat_timeout);
    }
  }
  return next;
}

}  // namespace internal
}  // namespace procpool
