// The worker table: one record per worker the pool started (or connected
// to, for a remote one), from its start until it is reaped.
//
// A record's WorkerState says where the worker is in its life as the pool
// sees it; the transitions are the table's methods, which also keep the
// count of workers still starting (starting()). The rest of a record is
// either a fact orthogonal to that state, documented on the member (the
// signal sent to it, why it was killed, its I/O registration), or its work
// in flight (`assigned`).
//
//   kStarting --Greet()--> kReady --SendingShutdown()--> kShuttingDown
//       |                                                    ^
//       +--SendingShutdown()--> kShuttingDownBeforeHello --Greet()
//
// Killing is orthogonal (a worker may be signalled in any state, and may
// still be told to shut down after it was signalled): killed() is
// `signal_sent != 0`. Its channel closing is too (ChannelClosed(): no more
// frames; a starting worker then no longer counts as starting). Exited:
// the record is erased (Erase()) once its end is handled.
//
// Example:
//   WorkerTable table;
//   Worker& w = table.Add();        // kStarting, starting() == 1
//   w.channel = std::move(channel);
//   table.Greet(w);                 // its Hello: kReady, starting() == 0
//   if (CanTakeWork(w, max_tasks_per_child)) { ... }
//   table.SendingShutdown(w);       // kShuttingDown
//   table.Erase(w.id);              // reaped
//
// Thread safety: none of its own; the pool guards its table with io_mu_.
// Records stay at their address until erased (std::map).
#ifndef PROCPOOL_EXECUTOR_INTERNAL_WORKER_TABLE_H_
#define PROCPOOL_EXECUTOR_INTERNAL_WORKER_TABLE_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/unique_fd.h"
#include "core/errors.h"
#include "executor/internal/work_item.h"
#include "serialization/wire.h"
#include "shared_array/peer_arrays.h"
#include "transport/transport.h"
#include "worker/parent/launcher.h"

namespace procpool {
namespace internal {

// How long a shared-memory channel a caller left disarmed (Channel::Poll
// with stay) stays so once nobody polls: a result that arrives meanwhile
// waits at most this long for the manager. A caller that goes to sleep on a
// future re-arms at once; this only covers callers that polled and went on
// (Submit, a Get that was answered). Sockets need no such timer: the callers
// re-arm them (Pool::pollers_). Not tried for shared memory: its worker may
// answer before the submitting caller's first look, and a channel re-armed
// at its hand-out would then wake the manager.
//
// While callers keep polling (a loop of Submit(...).Get()), the manager woke
// every kRearmAfter only to find the channel polled again; on 2 CPUs each
// such wake-up preempted the caller or the spinning worker, and the round
// trip in flight took 30-130 us instead of 3-5 (the p99; tools/
// BENCHMARKS.md, "The tail"). So each wasted wake-up doubles the worker's
// interval, up to kRearmAfterMax, and a re-arm resets it: a result nobody
// polls for after such a stretch waits at most kRearmAfterMax.
inline constexpr absl::Duration kRearmAfter = absl::Microseconds(200);
inline constexpr absl::Duration kRearmAfterMax = absl::Microseconds(3200);

// A Call sent as parts (Channel::SendParts): its big arguments are not copied
// into a frame; the transport holds it until written, the pool to run the
// work again elsewhere.
struct SentCall {
  wire::Call call;
  std::string storage;  // the frame's other bytes
};

// One work item in flight on a worker.
struct Assigned {
  uint64_t work_id;
  // args kept so the work can be run again elsewhere (in `sent` instead when
  // it was sent as parts: TakeBackArgs)
  WorkItem item;
  absl::Time deadline = absl::InfiniteFuture();  // per-task timeout
  std::shared_ptr<SentCall> sent;
};

// The arguments of `a`'s work where the pool may take them (a.item.args, or
// the SentCall's once the transport has let go of it); null while the
// transport still holds them.
inline std::vector<std::string>* ReleasedArgs(Assigned& a) {
  if (a.sent == nullptr) return &a.item.args;
  return a.sent.use_count() == 1 ? &a.sent->call.args : nullptr;
}
// Moves the arguments of `a`'s work back into a.item.args (copies them while
// the transport still holds them).
void TakeBackArgs(Assigned& a);

// Where a worker is in its life (see the file comment).
enum class WorkerState : uint8_t {
  kStarting,                  // started; its Hello has not come
  kReady,                     // Hello verified: may take work
  kShuttingDownBeforeHello,   // told to shut down before its Hello came
  kShuttingDown,              // told to shut down (Shutdown sent)
};

struct Worker {
  int id = 0;
  WorkerState state = WorkerState::kStarting;

  // Hello received and verified (ready in the sense of the handshake; it
  // may have been told to shut down since).
  bool greeted() const {
    return state == WorkerState::kReady ||
           state == WorkerState::kShuttingDown;
  }
  // Shutdown sent: it exits on its own and takes no more work.
  bool shutdown_sent() const {
    return state == WorkerState::kShuttingDown ||
           state == WorkerState::kShuttingDownBeforeHello;
  }
  // The pool sent it a signal (a remote one: closed its connection).
  bool killed() const { return signal_sent != 0; }

  // A local worker's process. A remote worker has no pidfd and no crash
  // pipe; its pid (from its Hello) is a process on its host, never
  // signalled from here: "killing" it closes its channel, and its daemon's
  // child exits when its connection drops.
  WorkerProcess process;
  // "HOST:PORT", or its label (PoolConfig::remote_worker_labels); empty for
  // a local worker.
  std::string remote;
  int remote_slot = -1;    // its index in PoolConfig::remote_workers
  std::string lost_cause;  // why a remote worker's channel failed
  std::unique_ptr<Channel> channel;  // null once closed

  // I/O registration (orthogonal to the state: about the channel fd, not
  // the worker). The channel fd is registered EPOLLONESHOT: armed until its
  // event is delivered to the manager, then re-armed by UpdateEvents()
  // unless a caller is polling the channel (disarmed): a caller that polls
  // takes the results itself, so the manager need not be woken for them.
  uint32_t registered_events = 0;  // events the channel fd is armed with
  bool epoll_armed = false;
  // A caller polled with `stay` (Channel::Poll), last at last_poll: the
  // channel may be disarmed until the manager re-arms it, rearm_after after
  // the last poll. rearm_after starts at kRearmAfter and doubles (up to
  // kRearmAfterMax) each time the manager woke at rearm_due to find that a
  // caller had polled meanwhile; it is short again once a re-arm finds a
  // result waiting or nobody polls for a whole interval (kRearmAfter says
  // why). rearm_due: when the manager looks at it next (also for one
  // interval after a re-arm).
  bool disarmed = false;
  absl::Time last_poll;
  absl::Duration rearm_after = kRearmAfter;
  absl::Time rearm_due = absl::InfiniteFuture();

  int signal_sent = 0;  // the last signal sent to it; 0: none (killed())
  absl::Time kill_deadline = absl::InfiniteFuture();
  // Why the pool killed it, when on purpose (the exit is then not a death):
  uint64_t timed_out_work_id = 0;     // that task overran its timeout
  std::vector<uint64_t> interrupted;  // work ids to end cancelled
  bool hung = false;                  // it stopped sending heartbeats
  bool never_started = false;         // no hello by start_deadline
  // A local worker not yet greeted is killed at this time
  // (PoolConfig::start_timeout; infinite for remote workers; no longer
  // looked at once it said hello).
  absl::Time start_deadline = absl::InfiniteFuture();

  int64_t tasks_assigned = 0;
  std::deque<Assigned> assigned;  // in flight, in the order sent
  // The shared arrays its cache holds, as sent: their memfds go to it once.
  PeerArrays arrays;
  UniqueFd crash_fd;  // read end of the worker's crash-report pipe
  std::string crash_report;  // what arrived on it (heartbeats removed)
  absl::Time last_heartbeat = absl::InfiniteFuture();
  absl::Time idle_since = absl::InfiniteFuture();
  int64_t tasks_run = 0;
  int64_t base_rss = -1;
};

// Whether `w` may be handed work: greeted, not told to shut down, not
// killed, its channel open, and under max_tasks_per_child (0: unlimited).
inline bool CanTakeWork(const Worker& w, int max_tasks_per_child) {
  if (w.state != WorkerState::kReady || w.killed() || w.channel == nullptr) {
    return false;
  }
  return max_tasks_per_child <= 0 || w.tasks_assigned < max_tasks_per_child;
}

// Who `w` is, for a WorkerCrash: pid (-1 before a remote worker's Hello),
// host, and with `with_task` the task it was running, if any.
WorkerCrash CrashOf(const Worker& w, bool with_task);

class WorkerTable {
 public:
  using Map = std::map<int, Worker>;

  // A record for a new worker, with the next id, kStarting (counted in
  // starting() until its Hello or its channel's close).
  Worker& Add();
  // Removes worker `id`'s record (its end was handled).
  void Erase(int id) {
    workers_.erase(id);
    changed_ = true;
  }

  // Its Hello was verified: kStarting -> kReady, kShuttingDownBeforeHello ->
  // kShuttingDown. Either way it no longer counts as starting.
  void Greet(Worker& w);
  // It is being told to shut down: kStarting -> kShuttingDownBeforeHello,
  // kReady -> kShuttingDown (a starting one still counts as starting).
  void SendingShutdown(Worker& w);
  // Its channel was closed (w.channel reset): a worker not greeted no
  // longer counts as starting. Call once per worker.
  void ChannelClosed(const Worker& w) {
    if (!w.greeted()) --starting_;
  }

  // Workers started whose Hello has not come and whose channel is open.
  int starting() const { return starting_; }
  size_t size() const { return workers_.size(); }
  bool empty() const { return workers_.empty(); }
  Worker& at(int id) { return workers_.at(id); }
  Map::iterator find(int id) { return workers_.find(id); }
  Map::iterator begin() { return workers_.begin(); }
  Map::iterator end() { return workers_.end(); }
  Map::const_iterator begin() const { return workers_.begin(); }
  Map::const_iterator end() const { return workers_.end(); }

  // Whether a worker was added or erased since the last call (the pool's
  // list of live pids needs refreshing); clears it.
  bool TakeChanged() {
    const bool changed = changed_;
    changed_ = false;
    return changed;
  }

 private:
  Map workers_;
  int next_id_ = 1;
  int starting_ = 0;
  bool changed_ = false;
};

}  // namespace internal
}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_INTERNAL_WORKER_TABLE_H_
