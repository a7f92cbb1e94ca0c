// Dispatch: which pending work goes to which worker, and when to start one.
// Functions over the worker table and the pending queue; the pool calls them
// and does the I/O (sending the frames, starting the processes).
//
// The policy (HandOutQueued in pool.cc):
//   1. idle workers that can take work get one pending item each
//      (PickHandOuts with max_in_flight 0);
//   2. workers are started for what no idle or starting worker will take,
//      up to max_workers (ShouldStartWorker: S6);
//   3. only once the pool is at full strength (AtFullStrength), each busy
//      worker gets one queued item beyond the running one, so that it never
//      waits for a round trip between tasks; never more (S16).
//
// Example:
//   std::vector<HandOutPick> picks;
//   size_t left = PickHandOuts(table, pending, 0, max_tasks, &picks);
//   for (HandOutPick& p : picks) {
//     OutgoingCall out;
//     RecordHandOut(*p.worker, std::move(p.item), next_id++, &out);
//     ... send out.frame (or out.parts, out.sent) on p.worker->channel
//   }
//
// Thread safety: none of its own; the pool calls these under io_mu_ (and
// PickHandOuts under mu_ too, which guards `pending`).
#ifndef PROCPOOL_EXECUTOR_INTERNAL_DISPATCH_H_
#define PROCPOOL_EXECUTOR_INTERNAL_DISPATCH_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "executor/internal/work_item.h"
#include "executor/internal/worker_table.h"

namespace procpool {
namespace internal {

// One hand-out decided: `worker` takes `item`.
struct HandOutPick {
  Worker* worker;
  WorkItem item;
};

// Hands one pending item to each worker that can take work (CanTakeWork)
// and has at most `max_in_flight` items in flight, in worker order, taking
// items from the front of `pending`: a new item becomes RUNNING (one that
// was cancelled meanwhile is dropped), a requeued one is dropped if it was
// interrupted meanwhile. Then drops cancelled items at the front, so that
// they do not make the pool start workers. Appends to `*picks`; returns how
// many items are still pending.
size_t PickHandOuts(WorkerTable& table, std::deque<WorkItem>& pending,
                    size_t max_in_flight, int max_tasks_per_child,
                    std::vector<HandOutPick>* picks);

// Whether `still_pending` items call for starting a worker (S6): the pool is
// below max_workers and more items wait than idle and starting workers will
// take.
bool ShouldStartWorker(const WorkerTable& table, size_t still_pending,
                       int max_workers, int max_tasks_per_child);

// No worker is starting and there are max_workers of them: busy workers may
// then take one item beyond the running one (S16).
inline bool AtFullStrength(const WorkerTable& table, int max_workers) {
  return table.starting() == 0 &&
         static_cast<int>(table.size()) >= max_workers;
}

// A Call ready to send: `frame`, or (big arguments, wire::HasExternalBlobs)
// `parts` whose bytes `sent` keeps (Channel::SendParts).
struct OutgoingCall {
  Worker* worker = nullptr;
  std::string frame;
  std::vector<absl::string_view> parts;
  std::shared_ptr<SentCall> sent;
  // The memfds of the call's shared arrays (WorkItem::arrays, which the
  // worker's record keeps open), to go beside the frame.
  std::vector<int> fds;
};

// Records that `w` takes `item` as work `work_id` (w.assigned, its deadline
// if it runs at once, w.tasks_assigned) and encodes its Call into `*out`.
// The arguments stay with the record (to run the work again elsewhere).
// Reads the clock only if the item runs at once with a timeout.
void RecordHandOut(Worker& w, WorkItem item, uint64_t work_id,
                   OutgoingCall* out);

}  // namespace internal
}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_INTERNAL_DISPATCH_H_
