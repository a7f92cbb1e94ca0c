// The engine behind ProcessPoolExecutor (internal): work queue, manager thread
// and worker processes. Non-template; the public templates encode arguments
// and decode results, and hand this class encoded work.
//
// Data flow (after CPython's concurrent/futures/process.py):
//
//  caller threads          |  manager thread              |  worker processes
//                          |                              |
//  Submit(fn, args)        |                              |
//   encode args  --------> pending_ (under mu_)           |
//   events_.Wake() ------> events_.Wait() (epoll)         |
//                          |  HandOutQueued(): pending_   |
//                          |   -> worker.assigned (<= 2) --Channel--> RunWorker:
//                          |                              |   decode, run task,
//  Future::Get() <-------- Complete(state) <---Channel------  encode result
//   (state's mutex)        |  pidfd readable: reap, and   |
//                          |   break the pool if unexpected
//
// The fast path (a caller drives the I/O itself). Waking the manager thread
// costs a context switch each way, while a shared-memory hand-off to a
// spinning worker costs far less (tools/BENCHMARKS.md, "The design that made
// small calls fast"). So the workers' side of the pool is not owned by the
// manager thread but guarded by io_mu_, and any thread may take it:
//   * Submit() tries io_mu_ (never waits for it: S21) and, if it gets it,
//     hands the work to an idle worker itself; the manager is woken only for
//     what a caller cannot do (start a worker, a new timer, shutdown).
//   * A thread about to block on a future (Get, Wait) first drives the I/O
//     for a while (DriveIoWhileWaiting(), Channel::Poll with stay: the
//     worker then signals nobody): it polls the workers' channels, takes
//     results, completes futures and hands out queued work; if the future is
//     still not done it re-arms the channels and sleeps like before.
// The manager thread still does everything else (starting and reaping
// workers, timers, heartbeats, crash reports) and all the I/O when no caller
// is around.
//
// Map's small elements travel packed (one buffer and a vector of ends,
// serialization/packed.h) from Source::Next through HandOut, the worker and
// HandleResult to State::CompleteChunk; an element of kBigElementBytes or
// more turns its chunk into a string per element again, so that it still
// travels without being copied into a frame. The measurements are in
// tools/BENCHMARKS.md ("Map's small elements").
//
// The parts (each in its own header, tested without processes):
//  * EventSet (event_set.h): the epoll set, the wake eventfd, event keys.
//  * WorkerTable (worker_table.h): one record per worker, its WorkerState
//    and its work in flight; CanTakeWork, CrashOf.
//  * Dispatch (dispatch.h): PickHandOuts, ShouldStartWorker, AtFullStrength,
//    RecordHandOut: which pending work goes where, when to start a worker.
//  * CompletionQueue (completion_queue.h): futures completed after the locks
//    are let go.
//  * PoolState (pool_state.h): shut down or broken, and why.
//  * LaunchLocalWorker, FreeRemoteSlot (worker_start.h): starting a worker
//    without the pool; ReadCrashPipe (crash_pipe.h): heartbeats and crash
//    reports.
// Pool's own code is split by concern: pool.cc (Submit, hand-out, the
// manager loop, Shutdown, BreakPool), pool_polling.cc (the caller's
// polling: DriveIoWhileWaiting, PollWorkers), pool_frames.cc
// (what workers send), pool_workers.cc (starting, configuring, retiring,
// killing, reaping and replacing workers, interrupts), pool_deadlines.cc
// (task timeouts, the manager's next timer), pool_health.cc (heartbeats,
// idle workers, memory), pool_stats.cc (statistics, live pids).
//
// Ownership:
//  * mu_ guards what callers and the manager share: pending_, the manager
//    thread handle, live_pids_, interrupts and statistics requests. state_
//    (shut down, broken) is written under it and read without locks.
//  * io_mu_ guards the workers and their channels (everything under "I/O
//    state"). The manager holds it while it handles events; a caller holds it
//    for one hand-out or one polling round. Lock order: io_mu_, then mu_.
//  * A future's state is shared: callers hold it through Future<T>; the pool
//    holds it while the work is pending or in flight and drops it as soon as
//    the work completes (S4).
//  * The pool never completes a future while holding mu_ or io_mu_: done
//    callbacks may call back into the pool. Completions are queued under
//    io_mu_ (completions_) and run by the thread that queued them once it has
//    released io_mu_ (UnlockAndComplete). So done callbacks run on whichever
//    thread completed the future: the manager, or a caller that was driving
//    the I/O.
#ifndef PROCPOOL_EXECUTOR_INTERNAL_POOL_H_
#define PROCPOOL_EXECUTOR_INTERNAL_POOL_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/errors.h"
#include "executor/internal/completion_queue.h"
#include "executor/internal/dispatch.h"
#include "executor/internal/event_set.h"
#include "executor/internal/future_state.h"
#include "executor/internal/pool_state.h"
#include "executor/internal/work_item.h"
#include "executor/internal/worker_table.h"
#include "executor/options.h"
#include "serialization/wire.h"
#include "transport/transport.h"
#include "worker/parent/launcher.h"

namespace procpool {
namespace internal {

struct PoolConfig {
  int max_workers = 1;
  Transport* transport = nullptr;
  StartMethod start_method = StartMethod::kForkServer;
  std::string worker_binary;  // resolved path
  std::optional<wire::CallSpec> initializer;
  int max_tasks_per_child = 0;  // 0: unlimited
  WorkerDeathPolicy on_worker_death = WorkerDeathPolicy::kBreakPool;
  int max_retries = 0;
  absl::Duration idle_timeout = absl::InfiniteDuration();
  absl::Duration heartbeat_timeout = absl::InfiniteDuration();
  absl::Duration start_timeout = absl::InfiniteDuration();  // local workers
  int64_t max_memory_bytes_per_worker = 0;
  int64_t max_rss_growth_bytes = 0;
  bool keep_freed_memory = false;
  // Remote worker slots ("HOST:PORT" each); non-empty: the pool's workers
  // are exactly these (max_workers == their count), reached with
  // transport->ConnectRemote(remote), remote.address set per slot.
  std::vector<std::string> remote_workers;
  // Empty, or per slot what crash reports and logs call it (a cluster's
  // "ADDRESS (rank R on HOST)"); the address alone where empty.
  std::vector<std::string> remote_worker_labels;
  // Empty, or per slot the name its daemon's TLS certificate must carry (a
  // cluster's slots are IP:PORT; their certificates name the host).
  std::vector<std::string> remote_tls_server_names;
  RemoteWorkerSpec remote;
};

// How long a worker may linger after its channel closed, it was told to shut
// down, or it was sent a signal, before it is killed (again) with SIGKILL.
inline constexpr absl::Duration kExitGrace = absl::Seconds(5);

// kRearmAfter and kRearmAfterMax: worker_table.h.

// Resident memory of `pid` in bytes (0 if unknown).
int64_t ResidentBytes(pid_t pid);

class Pool {
 public:
  // Starts nothing: the manager thread and workers start on the first Submit.
  explicit Pool(PoolConfig config);
  // Shutdown(/*wait=*/true).
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Queues `item`. Throws ShutdownError after Shutdown() or once the process
  // is exiting, BrokenProcessPool if the pool is broken. Never blocks on the
  // manager (S21).
  void Submit(WorkItem item);

  // Stops taking work. cancel_futures cancels what is still pending. With
  // wait, returns once all non-cancelled work is done and every worker is
  // reaped. Idempotent; safe from a done callback (it then does not wait).
  void Shutdown(bool wait, bool cancel_futures);

  // Shutdown(false, true), then sends `sig` to every live worker (their
  // in-flight futures fail with BrokenProcessPool). A no-op on a pool with no
  // workers or an already broken pool.
  void SignalWorkers(int sig);

  // Pids of the live workers (for tests and statistics).
  std::vector<pid_t> WorkerPids() const;

  // Whether shared arrays can go by reference to every worker of this pool:
  // local workers over a transport whose channels carry descriptors.
  bool ArraysByReference() const {
    return config_.remote_workers.empty() && config_.transport != nullptr &&
           config_.transport->CarriesDescriptors();
  }

  // A snapshot taken by the manager thread (empty before the first Submit).
  std::vector<WorkerStats> Stats();

 private:
  class DriverImpl;

  // --- pool.cc: hand-out, the manager loop, breaking ---

  void ManagerLoop();
  void Interrupt(StateBase* state);
  void WakeManager();

  // --- pool_polling.cc: the caller's side of the fast path ---

  // A thread about to block until done() drives the pool's I/O on its own
  // thread for a while (Driver::DriveIoWhileWaiting; see the file comment).
  void DriveIoWhileWaiting(const std::function<bool()>& done,
                           absl::Duration timeout);
  // Which channels PollWorkers() looks at. A channel whose Poll() makes a
  // system call (a socket's recv(), ~0.5 us) is looked at only where a frame
  // is due; one that makes none (shared memory) always.
  enum class Look {
    kAll,       // every channel
    kExpected,  // sockets with work in flight or a hello to come
    kResults,   // sockets with work in flight (Submit: frees workers);
                // Submit polls no more, so `stay` leaves sockets armed
                // (CallersRearm) and applies to shared memory only
  };
  // Polls the workers' channels (`look` says which) once and handles what
  // arrived; then hands out queued work. With `stay`, the channels may be
  // left disarmed (Worker::disarmed). Returns true if some channel was
  // polled. `now`, if given, is the time (saves reading the clock again).
  bool PollWorkers(bool stay, Look look = Look::kAll,
                   absl::Time now = absl::InfinitePast())
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Polls w's channel once (PollWorkers, the manager's re-arm) and handles
  // what arrived; false if the pool broke.
  bool PollWorker(Worker& w, bool stay, absl::Time now,
                  std::vector<std::string>& frames)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);

  // --- pool.cc again: handing out ---

  // Hands pending work to workers that can take it (S16: one queued item
  // beyond the running one, once the pool is at full strength) and starts
  // workers for the rest (S6); without `may_start` (a caller's thread) it
  // only notes in wake_manager_ that the manager should start some.
  void HandOutQueued(bool may_start = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Hands one pending item to each worker that can take work and has at
  // most `max_in_flight` items (PickHandOuts), and sends them; returns how
  // many items are still pending.
  size_t HandOut(size_t max_in_flight) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // dispatch.h's ShouldStartWorker with this pool's configuration.
  bool ShouldStartWorker(size_t still_pending) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_) {
    if (start_held_until_ != absl::InfinitePast() && !workers_.empty() &&
        absl::Now() < start_held_until_) {
      return false;
    }
    return internal::ShouldStartWorker(workers_, still_pending,
                                       MaxWorkersNow(),
                                       config_.max_tasks_per_child);
  }
  // config_.max_workers less the remote slots lost for good.
  int MaxWorkersNow() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_) {
    return config_.max_workers - lost_remote_count_;
  }
  // For a caller thread: releases io_mu_, wakes the manager if what the
  // caller did needs it, and runs the completions it queued.
  void ReleaseIo(absl::Time manager_deadline_seen) ABSL_UNLOCK_FUNCTION(io_mu_);
  // Releases io_mu_, then completes what was queued under it.
  void UnlockAndComplete() ABSL_UNLOCK_FUNCTION(io_mu_);
  // Runs `c` (RunCompletion); breaks the pool if its result does not decode.
  void Finish(Completion& c);
  // Fails every in-flight and pending future with its own BrokenProcessPool
  // and kills the workers. Idempotent.
  void BreakPool(const std::string& message, WorkerCrash crash)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Sends Shutdown to idle workers once the pool is shutting down and drained.
  void RetireIdleWorkers() ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  bool ShouldExit() ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);

  // --- pool_frames.cc: what workers send ---

  void PumpWorker(Worker& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Hands `frames` (from w's channel; moved from) on, then the channel's
  // `status`.
  // Returns false if w must not be used anymore (the pool broke).
  bool HandleFrames(Worker& w, std::vector<std::string>& frames,
                    const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Returns false if the pool broke while handling the frame. Takes the
  // frame's buffer (a large result keeps it: no copy).
  bool HandleFrame(Worker& w, std::string frame)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  void HandleHello(Worker& w, const wire::Hello& hello)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  void HandleResult(Worker& w, wire::Result& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  void OnChannelError(Worker& w, const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);

  // --- pool_workers.cc: starting, configuring, retiring, killing, reaping ---

  void StartWorker() ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  void StartRemoteWorker() ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Under kReplaceWorker, while another slot is left: records remote `slot`
  // as lost for good (its daemon or host is gone; `crash` says how) and
  // returns true. Else false: the caller breaks the pool.
  bool LoseRemoteSlot(int slot, const WorkerCrash& crash)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Registers a new worker's channel, then sends it its Config.
  void ConfigureWorker(Worker& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Re-arms w's channel fd with the events it needs now (unless a caller
  // polls it: Worker::disarmed).
  void UpdateEvents(Worker& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  void CloseChannel(Worker& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Tells `w` to shut down (Shutdown); its exit is then expected.
  void Retire(Worker& w, const char* why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  void KillWorker(Worker& w, int sig) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Kills the workers running interrupted futures; cancels interrupted
  // futures put back in pending_.
  void ProcessInterrupts() ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // A local worker's pidfd became readable: delivers what it sent, reaps it.
  void OnWorkerExit(int id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // A remote worker whose channel is closed is gone: settles its futures.
  void OnRemoteWorkerGone(int id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // What follows a worker's end (local or remote), once `crash` says how.
  void AfterWorkerGone(int id, WorkerCrash crash)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Decides the fate of each future a dead worker held. Returns false if the
  // pool must break instead.
  bool SettleDeadWorker(Worker& w, const WorkerCrash& crash)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Puts work back at the front of pending_ (to run again elsewhere).
  void Requeue(std::vector<WorkItem> items);

  // --- pool_deadlines.cc ---

  // Per worker not killed: kills it if its running task overran its timeout,
  // else if it missed its heartbeats; else retires it if idle too long.
  void CheckDeadlines() ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Kills `w` if its running task's timeout passed at `now`; true if so.
  bool KillIfOverran(Worker& w, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // The earliest timer the manager must wake for.
  absl::Time NextDeadline() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Whether w's channel is a socket whose wake-up is its registration alone
  // (Channel::StayIsStateless): the callers re-arm it (pollers_), the
  // manager keeps no re-arm timer for it. Otherwise (shared memory, capnp's
  // local channels) the manager's timer does (WantsRearm).
  static bool CallersRearm(const Worker& w) {
    return w.channel != nullptr && w.channel->StayIsStateless();
  }
  // The last caller to stop polling: re-arms every socket channel left
  // disarmed that still expects a frame (work in flight, or a hello), then,
  // if it re-armed any, hands out what their frames freed.
  void RearmWaitingSockets() ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // The manager at `now`: whether to re-arm w's channel (a caller left a
  // shared-memory channel disarmed and stopped polling), disarmed cleared if
  // so; keeps w's re-arm interval (worker_table.h, kRearmAfter). Never for
  // a socket: callers re-arm those (pollers_).
  bool WantsRearm(Worker& w, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);

  // --- pool_health.cc: heartbeats, idle workers, memory ---

  // Reads w's crash pipe: heartbeats (NUL bytes) and crash reports.
  void ReadHeartbeats(Worker& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Kills `w` (as hung) if it sent no heartbeat for heartbeat_timeout; true
  // if so.
  bool KillIfHung(Worker& w, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Kills `w` (as never started) if it is a local worker that has not said
  // hello by its start_deadline; true if so.
  bool KillIfNeverStarted(Worker& w, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // Retires `w` if it has been idle for idle_timeout.
  void RetireIfIdle(Worker& w, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  // After a result: recycles `w` if its resident memory grew past
  // max_rss_growth_bytes.
  void CheckMemory(Worker& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);

  // --- pool_stats.cc ---

  void FillStatsIfRequested() ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  void UpdateLivePids() ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);

  // Constant after construction.
  const PoolConfig config_;
  const std::unique_ptr<Launcher> launcher_;
  // How long DriveIoWhileWaiting() polls at most.
  const absl::Duration waiter_poll_budget_;
  // The manager's epoll set and its wake eventfd (Submit/Shutdown ->
  // manager).
  EventSet events_;
  std::shared_ptr<DriverImpl> driver_;  // installed in every future

  // Shared state.
  mutable absl::Mutex mu_ ABSL_ACQUIRED_AFTER(io_mu_);
  std::deque<WorkItem> pending_ ABSL_GUARDED_BY(mu_);
  int terminate_signal_ ABSL_GUARDED_BY(mu_) = 0;  // from SignalWorkers
  std::thread manager_ ABSL_GUARDED_BY(mu_);
  bool manager_started_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<pid_t> live_pids_ ABSL_GUARDED_BY(mu_);
  std::vector<std::weak_ptr<StateBase>> interrupts_ ABSL_GUARDED_BY(mu_);
  int64_t stats_requested_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t stats_served_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<WorkerStats> stats_ ABSL_GUARDED_BY(mu_);
  absl::Mutex join_mu_;  // serializes joining the manager thread
  // Shut down or broken, and why it broke: lock-free reads. Written
  // (ShutDown, Break) under mu_; Break also under io_mu_, so that whoever
  // holds either lock sees it change together with what that lock guards.
  // A caller that drove the I/O wakes the manager once it is winding down
  // (it may have to retire workers or exit).
  PoolState state_;
  // Threads running completions they queued under io_mu_ (the manager must
  // not exit, ending Shutdown(wait), before they are done).
  std::atomic<int> completing_{0};
  // Callers inside DriveIoWhileWaiting(). A socket channel (CallersRearm)
  // is left disarmed only while some poll: the last one out re-arms those
  // that expect a frame (RearmWaitingSockets), a hand-out while none polls
  // re-arms its channel, and Submit's look leaves sockets armed. So the
  // manager needs no re-arm timer for sockets: its periodic look every
  // kRearmAfterMax woke it during every stretch of polls, and each such
  // wake-up (a timer and a switch, both VM exits on the 2-core VM) made one
  // round trip slow (tools/BENCHMARKS.md, "The tail").
  std::atomic<int> pollers_{0};

  // I/O state.
  mutable absl::Mutex io_mu_;
  WorkerTable workers_ ABSL_GUARDED_BY(io_mu_);
  // Remote slots found unreachable under kReplaceWorker (their daemon or
  // host is gone): never tried again, and the pool's strength shrinks by one
  // each (MaxWorkersNow). Empty until the first is lost.
  std::vector<bool> lost_remote_slots_ ABSL_GUARDED_BY(io_mu_);
  int lost_remote_count_ ABSL_GUARDED_BY(io_mu_) = 0;
  // A worker could not be started for want of a resource (descriptors,
  // memory, processes) while others ran: no new start is tried before this
  // time while any worker is in the table (the ones there take the work);
  // an empty table tries at once, and breaks the pool if that fails too.
  absl::Time start_held_until_ ABSL_GUARDED_BY(io_mu_) = absl::InfinitePast();
  // The warning for such a start was logged (once per pool).
  bool start_shortfall_logged_ ABSL_GUARDED_BY(io_mu_) = false;
  CompletionQueue completions_ ABSL_GUARDED_BY(io_mu_);
  // Channels closed under io_mu_ (CloseChannel), destroyed once it is let go
  // and the completions have run (UnlockAndComplete): a channel's destructor
  // may join a thread (the capnp transport's event loop), which must not
  // stand between a worker's death and its futures failing.
  std::vector<std::unique_ptr<Channel>> closed_channels_
      ABSL_GUARDED_BY(io_mu_);
  uint64_t next_work_id_ ABSL_GUARDED_BY(io_mu_) = 1;
  // terminate_signal_ already sent.
  bool signalled_ ABSL_GUARDED_BY(io_mu_) = false;
  // Workers replaced or recycled.
  int64_t restarts_ ABSL_GUARDED_BY(io_mu_) = 0;
  // A caller did something only the manager can follow up (start workers).
  bool wake_manager_ ABSL_GUARDED_BY(io_mu_) = false;
  // The timer the manager sleeps until (it is woken if one comes earlier).
  absl::Time manager_deadline_ ABSL_GUARDED_BY(io_mu_) = absl::InfiniteFuture();
};

}  // namespace internal
}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_INTERNAL_POOL_H_
