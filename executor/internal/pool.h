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
//   wake_fd_ (eventfd) --> epoll_wait                     |
//                          |  Dispatch(): pending_ ->     |
//                          |   worker.assigned (<= 2)  --Channel--> RunWorker:
//                          |                              |   decode, run task,
//  Future::Get() <-------- Complete(state) <---Channel------  encode result
//   (state's mutex)        |  pidfd readable: reap, and   |
//                          |   break the pool if unexpected
//
// Ownership:
//  * mu_ guards what callers and the manager share: pending_, the shutdown and
//    broken flags, the manager thread handle, live_pids_.
//  * Everything in "Manager thread only" is touched by the manager thread
//    alone (after it starts; before that, by nobody).
//  * A future's state is shared: callers hold it through Future<T>; the pool
//    holds it while the work is pending or in flight and drops it as soon as
//    the work completes (S4).
//  * The pool never completes a future while holding mu_: done callbacks may
//    call back into the pool.
#ifndef PROCPOOL_EXECUTOR_INTERNAL_POOL_H_
#define PROCPOOL_EXECUTOR_INTERNAL_POOL_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "executor/errors.h"
#include "executor/internal/future_state.h"
#include "executor/internal/work_item.h"
#include "executor/options.h"
#include "serialization/wire.h"
#include "transport/transport.h"
#include "worker/launcher.h"

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
  int64_t max_memory_bytes_per_worker = 0;
  int64_t max_rss_growth_bytes = 0;
};

// How long a worker may linger after its channel closed, it was told to shut
// down, or it was sent a signal, before it is killed (again) with SIGKILL.
inline constexpr absl::Duration kExitGrace = absl::Seconds(5);

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

  // A snapshot taken by the manager thread (empty before the first Submit).
  std::vector<WorkerStats> Stats();

 private:
  struct Assigned {
    uint64_t work_id;
    WorkItem item;  // args kept so the work can be run again elsewhere
    absl::Time deadline = absl::InfiniteFuture();  // per-task timeout
  };
  // Lets a future's Interrupt() reach the pool while it exists.
  struct InterruptTarget {
    absl::Mutex mu;
    Pool* pool ABSL_GUARDED_BY(mu);
  };
  struct Worker {
    int id = 0;
    WorkerProcess process;
    std::unique_ptr<Channel> channel;  // null once closed
    uint32_t registered_events = 0;    // events the channel fd is armed with
    bool ready = false;                // Hello received and verified
    bool shutdown_sent = false;
    bool killed = false;               // we sent it a signal
    int signal_sent = 0;               // the last one
    int64_t tasks_assigned = 0;
    std::deque<Assigned> assigned;     // in flight, in the order sent
    absl::Time kill_deadline = absl::InfiniteFuture();
    int crash_fd = -1;  // read end of the worker's crash-report pipe
    std::string crash_report;  // what arrived on it (heartbeats removed)
    absl::Time last_heartbeat = absl::InfiniteFuture();
    absl::Time idle_since = absl::InfiniteFuture();
    // Why we killed it, when on purpose (the exit is then not a death).
    uint64_t timed_out_work_id = 0;
    std::vector<uint64_t> interrupted;  // work ids to end cancelled
    bool hung = false;
    int64_t tasks_run = 0;
    int64_t base_rss = -1;
  };

  void ManagerLoop();
  // Beyond CPython (pool_lifecycle.cc): deadlines, idle workers, heartbeats,
  // interrupts, memory, statistics.
  void CheckDeadlines();
  void ProcessInterrupts();
  void ReadHeartbeats(Worker& w);
  void AfterResult(Worker& w);
  void Retire(Worker& w, const char* why);
  void FillStatsIfRequested();
  // Decides the fate of each future a dead worker held. Returns false if the
  // pool must break instead.
  bool SettleDeadWorker(Worker& w, const WorkerCrash& crash);
  void Requeue(std::vector<WorkItem> items);
  // Moves pending work to ready workers and starts workers as needed.
  void Dispatch();
  // Hands one pending item to each worker that can take work and has at
  // most `max_in_flight` items; returns how many items are still pending.
  size_t HandOut(size_t max_in_flight);
  void StartWorker();
  void PumpWorker(Worker& w);
  // Returns false if the pool broke while handling the frame.
  bool HandleFrame(Worker& w, const std::string& frame);
  void HandleHello(Worker& w, const wire::Hello& hello);
  void HandleResult(Worker& w, wire::Result& result);
  void OnChannelError(Worker& w, const absl::Status& status);
  void OnWorkerExit(int id);
  void UpdateEvents(Worker& w);
  void CloseChannel(Worker& w);
  void KillWorker(Worker& w, int sig);
  // Fails every in-flight and pending future with its own BrokenProcessPool
  // and kills the workers. Idempotent.
  void BreakPool(const std::string& message, WorkerCrash crash);
  // Sends Shutdown to idle workers once the pool is shutting down and drained.
  void RetireIdleWorkers();
  bool ShouldExit();
  int EpollTimeoutMs() const;
  void UpdateLivePids();
  bool CanTakeWork(const Worker& w) const;

  // Constant after construction.
  const PoolConfig config_;
  const std::unique_ptr<Launcher> launcher_;
  int wake_fd_ = -1;   // eventfd: Submit/Shutdown -> manager
  int epoll_fd_ = -1;

  // Shared state.
  mutable absl::Mutex mu_;
  std::deque<WorkItem> pending_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  int terminate_signal_ ABSL_GUARDED_BY(mu_) = 0;  // from SignalWorkers
  std::optional<std::string> broken_ ABSL_GUARDED_BY(mu_);
  std::thread manager_ ABSL_GUARDED_BY(mu_);
  bool manager_started_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<pid_t> live_pids_ ABSL_GUARDED_BY(mu_);
  std::vector<std::weak_ptr<StateBase>> interrupts_ ABSL_GUARDED_BY(mu_);
  int64_t stats_requested_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t stats_served_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<WorkerStats> stats_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<InterruptTarget> interrupt_target_;
  absl::Mutex join_mu_;  // serializes joining the manager thread

  // Manager thread only.
  std::map<int, Worker> workers_;
  int next_worker_id_ = 1;
  uint64_t next_work_id_ = 1;
  int starting_ = 0;          // workers started but not yet ready
  bool signalled_ = false;    // terminate_signal_ already sent
  bool broken_local_ = false;  // mirror of broken_ for the manager
  bool workers_changed_ = false;  // live_pids_ needs refreshing
  int64_t restarts_ = 0;          // workers replaced or recycled
};

}  // namespace internal
}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_INTERNAL_POOL_H_
