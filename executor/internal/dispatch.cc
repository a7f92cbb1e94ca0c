#include "executor/internal/dispatch.h"

#include <utility>

#include "absl/time/clock.h"
#include "serialization/wire.h"

namespace procpool {
namespace internal {

size_t PickHandOuts(WorkerTable& table, std::deque<WorkItem>& pending,
                    size_t max_in_flight, int max_tasks_per_child,
                    std::vector<HandOutPick>* picks) {
  for (auto& [id, w] : table) {
    if (pending.empty()) break;
    if (!CanTakeWork(w, max_tasks_per_child) ||
        w.assigned.size() > max_in_flight) {
      continue;
    }
    while (!pending.empty()) {
      WorkItem item = std::move(pending.front());
      pending.pop_front();
      if (item.requeued) {
        if (item.state->done()) continue;  // interrupted meanwhile
      } else if (!item.state->SetRunningOrNotifyCancel()) {
        continue;  // cancelled
      }
      picks->push_back(HandOutPick{&w, std::move(item)});
      break;
    }
  }
  // Skip over cancelled items so they do not make us start workers.
  while (!pending.empty() && !pending.front().requeued &&
         pending.front().state->cancelled()) {
    pending.pop_front();
  }
  return pending.size();
}

bool ShouldStartWorker(const WorkerTable& table, size_t still_pending,
                       int max_workers, int max_tasks_per_child) {
  if (static_cast<int>(table.size()) >= max_workers) return false;
  size_t idle = 0;
  for (const auto& [id, w] : table) {
    if (CanTakeWork(w, max_tasks_per_child) && w.assigned.empty()) ++idle;
  }
  return still_pending > idle + table.starting();
}

void RecordHandOut(Worker& w, WorkItem item, uint64_t work_id,
                   OutgoingCall* out) {
  out->worker = &w;
  wire::Call call;
  call.work_id = work_id;
  call.task = item.task;
  call.args = std::move(item.args);
  call.packed_args = std::move(item.packed_args);
  if (!item.arrays.empty() || w.arrays.entries() > 0) {
    // Shared arrays: a memfd goes to a worker once (PeerArrays).
    PeerArrays::Plan plan;
    w.arrays.PlanFrame(item.arrays, &plan);
    call.descriptors = static_cast<uint32_t>(plan.fds.size());
    call.held_arrays = std::move(plan.held);
    call.forget_arrays.reserve(plan.forget.size());
    for (const BufferId& id : plan.forget) {
      call.forget_arrays.push_back(wire::ArrayId{id.pid, id.serial, id.nonce});
    }
    out->fds = std::move(plan.fds);
  }
  if (wire::HasExternalBlobs(call)) {
    // Sent from the arguments themselves (a 64 MiB argument is not copied
    // into a frame); the transport and the pool share them.
    out->sent = std::make_shared<SentCall>();
    out->sent->call = std::move(call);
    out->parts = wire::EncodeMessageParts(out->sent->call, &out->sent->storage);
  } else {
    out->frame = wire::EncodeMessage(call);
    // Kept for a rerun elsewhere.
    item.args = std::move(call.args);
    item.packed_args = std::move(call.packed_args);
  }
  ++w.tasks_assigned;
  Assigned a{work_id, std::move(item)};
  a.sent = out->sent;
  if (w.assigned.empty()) {
    a.deadline = a.item.timeout == absl::InfiniteDuration()
                     ? absl::InfiniteFuture()
                     : absl::Now() + a.item.timeout;
    w.idle_since = absl::InfiniteFuture();
  }
  w.assigned.push_back(std::move(a));
}

}  // namespace internal
}  // namespace procpool
