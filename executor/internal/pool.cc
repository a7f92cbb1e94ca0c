// Pool's coordinating code (see pool.h): Submit, handing out queued work
// (dispatch.h decides, this sends), completing futures once the locks are
// let go, the manager loop, Shutdown and BreakPool. The caller's side of the
// fast path (DriveIoWhileWaiting, PollWorkers) is in pool_polling.cc.
#include "executor/internal/pool.h"

#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <cstdlib>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/posix_error.h"
#include "common/spin.h"
#include "glog/logging.h"
#include "worker/parent/make_launcher.h"

namespace procpool {
namespace internal {
namespace {

// How often Submit tries io_mu_ (a pause apart, ~1 us in all) before it
// leaves the work to the manager.
constexpr int kSubmitLockTries = 32;

std::atomic<bool> process_exiting{false};

void InstallAtExitOnce() {
  static bool installed = [] {
    std::atexit([] { process_exiting.store(true); });
    // Debian builds Abseil with mutex deadlock detection on: every lock
    // then updates a global lock-order graph, ~10% of a no-op task's cost in
    // the parent (perf: GraphCycles::GetId). The pool's lock order is
    // fixed (pool.h) and checked by TSan instead. A program that wants the
    // detection back sets it again after creating its first pool.
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    return true;
  }();
  (void)installed;
}

}  // namespace

// What a future sees of its pool. Outlives the pool: Detach() cuts it off
// once no caller is inside it.
class Pool::DriverImpl final : public Driver {
 public:
  explicit DriverImpl(Pool* pool) : pool_(pool) {}

  void Interrupt(StateBase* state) override {
    Pool* pool = Enter();
    if (pool == nullptr) return;
    pool->Interrupt(state);
    Leave();
  }

  void DriveIoWhileWaiting(const std::function<bool()>& done,
                           absl::Duration timeout) override {
    Pool* pool = Enter();
    if (pool == nullptr) return;
    pool->DriveIoWhileWaiting(done, timeout);
    Leave();
  }

  // Called by ~Pool: returns once no thread is inside the pool through this
  // driver, and none will enter again.
  void Detach() {
    absl::MutexLock lock(&mu_);
    pool_ = nullptr;
    mu_.Await(absl::Condition(
        +[](int* active) { return *active == 0; }, &active_));
  }

 private:
  Pool* Enter() {
    absl::MutexLock lock(&mu_);
    if (pool_ != nullptr) ++active_;
    return pool_;
  }
  void Leave() {
    absl::MutexLock lock(&mu_);
    --active_;
  }

  absl::Mutex mu_;
  Pool* pool_ ABSL_GUARDED_BY(mu_);
  int active_ ABSL_GUARDED_BY(mu_) = 0;
};

// How long a waiter polls the workers itself before it sleeps
// (DriveIoWhileWaiting): what the transport says a round trip takes
// (Transport::WaiterPollBudget). A long task costs its waiter this much CPU
// once.
Pool::Pool(PoolConfig config)
    : config_(std::move(config)),
      launcher_(MakeLauncher(config_.start_method)),
      waiter_poll_budget_(config_.transport != nullptr
                              ? config_.transport->WaiterPollBudget()
                              : absl::Microseconds(50)) {
  InstallAtExitOnce();
  driver_ = std::make_shared<DriverImpl>(this);
}

Pool::~Pool() {
  Shutdown(/*wait=*/true, /*cancel_futures=*/false);
  driver_->Detach();
}

void Pool::WakeManager() {
  events_.Wake();  // never blocks (S21)
}

void Pool::Submit(WorkItem item) {
  if (config_.on_worker_death == WorkerDeathPolicy::kReplaceWorker) {
    item.retries_left = config_.max_retries;
  }
  item.state->SetDriver(driver_);
  bool started_manager = false;
  {
    absl::MutexLock lock(&mu_);
    if (state_.shut_down()) {
      throw ShutdownError("cannot schedule new futures after shutdown");
    }
    if (state_.broken()) throw BrokenProcessPool(state_.broken_reason());
    if (process_exiting.load()) {
      throw ShutdownError("cannot schedule new futures after process exit began");
    }
    if (!manager_started_) {
      // Before the item is queued: a thread that cannot be made (the
      // process limit) fails this Submit and leaves the pool as it was.
      try {
        manager_ = std::thread([this] { ManagerLoop(); });
      } catch (const std::system_error& e) {
        // EAGAIN: the thread limit, or no memory for the thread's stack.
        throw Error(absl::StrCat(
            "The pool's manager thread could not be started: ",
            ProcessStartError("std::thread", e.code().value()).message(),
            "; or no memory for its stack: ", ExhaustionAdvice(ENOMEM)));
      }
      manager_started_ = true;
      started_manager = true;
    }
    pending_.push_back(std::move(item));
  }
  // The fast path: hand the work to an idle worker on this thread. Never
  // waits for io_mu_ (S21): whoever holds it hands out pending work before
  // it lets go, and the manager is woken in case it is about to sleep.
  if (started_manager) {
    WakeManager();
    return;
  }
  // io_mu_ is held only for short stretches (one polling round, one batch
  // of events), so a few tries usually get it; waking the manager instead
  // costs a system call here and a context switch there.
  for (int attempt = 0; attempt < kSubmitLockTries; ++attempt) {
    if (io_mu_.TryLock()) {
      const absl::Time seen = manager_deadline_;
      // Take what came back (frees workers for this item) where that costs
      // no system call, then hand out.
      if (!state_.broken()) PollWorkers(/*stay=*/true, Look::kResults);
      ReleaseIo(seen);
      return;
    }
    CpuRelax();
  }
  WakeManager();
}

void Pool::HandOutQueued(bool may_start) {
  // 1. Idle ready workers take pending work.
  const size_t left = HandOut(/*max_in_flight=*/0);
  if (state_.broken()) return;
  // 2. Start workers for what no idle or starting worker will take (S6).
  if (!may_start) {
    if (ShouldStartWorker(left)) wake_manager_ = true;
  } else {
    while (!state_.broken() && ShouldStartWorker(left)) StartWorker();
  }
  // 3. Only when the pool is at full strength: one queued item per busy
  //    worker, so that it never waits for a round trip between tasks. A
  //    future is handed out early at most once beyond the running one (S16).
  if (!state_.broken() && AtFullStrength(workers_, MaxWorkersNow())) {
    HandOut(/*max_in_flight=*/1);
  }
}

size_t Pool::HandOut(size_t max_in_flight) {
  std::vector<HandOutPick> picks;
  size_t still_pending = 0;
  {
    absl::MutexLock lock(&mu_);
    still_pending = PickHandOuts(workers_, pending_, max_in_flight,
                                 config_.max_tasks_per_child, &picks);
  }
  // Record every hand-out before sending anything, so that a send failure
  // (which may break the pool) finds all of them in some worker's list.
  std::vector<OutgoingCall> calls;
  for (HandOutPick& pick : picks) {
    calls.emplace_back();
    RecordHandOut(*pick.worker, std::move(pick.item), next_work_id_++,
                  &calls.back());
  }
  for (OutgoingCall& out : calls) {
    Worker* w = out.worker;
    if (state_.broken()) return 0;
    if (w->channel == nullptr) continue;  // failed earlier; its exit follows
    absl::Status sent;
    if (!out.fds.empty()) {
      // Shared arrays: their memfds go beside the frame.
      std::shared_ptr<const void> owner = std::move(out.sent);
      if (owner == nullptr) {
        auto frame = std::make_shared<std::string>(std::move(out.frame));
        out.parts = {*frame};
        owner = std::move(frame);
      }
      sent = w->channel->SendPartsWithDescriptors(std::move(out.parts),
                                                  std::move(owner), out.fds);
    } else {
      sent = out.sent != nullptr
                 ? w->channel->SendParts(std::move(out.parts),
                                         std::move(out.sent))
                 : w->channel->Send(std::move(out.frame));
    }
    if (!sent.ok()) {
      OnChannelError(*w, sent);
      continue;
    }
    if (w->disarmed && CallersRearm(*w) &&
        pollers_.load(std::memory_order_acquire) == 0) {
      // A socket a caller left disarmed, now with work and nobody polling:
      // the manager must see its result (pollers_ says why not by a timer).
      // Its registration is all (at once: the sooner after the send, the
      // less likely the result beats the submitter's own look).
      w->disarmed = false;
    }
    UpdateEvents(*w);
  }
  return still_pending;
}

void Pool::ReleaseIo(absl::Time manager_deadline_seen) {
  bool wake = wake_manager_ || state_.winding_down();
  wake_manager_ = false;
  if (!wake) {
    // A timer set here (a task's timeout, an idle worker's) that is due
    // before the manager would wake.
    wake = NextDeadline() < manager_deadline_seen;
  }
  UnlockAndComplete();
  if (wake) WakeManager();
}

void Pool::UnlockAndComplete() {
  // Closed channels go after the completions (closed_channels_).
  std::vector<std::unique_ptr<Channel>> closed;
  closed.swap(closed_channels_);
  if (completions_.empty()) {
    io_mu_.Unlock();
    return;
  }
  std::vector<Completion> done;
  completions_.TakeAll(&done);
  completing_.fetch_add(1, std::memory_order_relaxed);
  io_mu_.Unlock();
  for (Completion& c : done) Finish(c);
  done.clear();  // drop the states before Shutdown(wait) can return (S4)
  closed.clear();  // and the channels
  if (completing_.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
      state_.winding_down()) {
    WakeManager();
  }
}

void Pool::Finish(Completion& c) {
  absl::Status completed = RunCompletion(c);
  if (completed.ok()) return;
  const WorkerCrash crash = UndecodableResultCrash(c, completed);
  const std::string message =
      "The result of a task could not be decoded; the pool is not usable "
      "anymore";
  io_mu_.Lock();
  // Break first, so that whoever sees this future fail also sees a broken
  // pool.
  BreakPool(message, crash);
  completions_.Error(c.state,
                     std::make_exception_ptr(BrokenProcessPool(message, crash)));
  UnlockAndComplete();
  WakeManager();
}

void Pool::Interrupt(StateBase* state) {
  {
    absl::MutexLock lock(&mu_);
    interrupts_.push_back(state->weak_from_this());
  }
  WakeManager();
}

void Pool::Shutdown(bool wait, bool cancel_futures) {
  std::deque<WorkItem> to_cancel;
  {
    absl::MutexLock lock(&mu_);
    state_.ShutDown();
    if (cancel_futures) to_cancel = pending_;
  }
  // Cancel outside mu_: cancellation runs done callbacks.
  for (WorkItem& item : to_cancel) item.state->Cancel();
  to_cancel.clear();
  WakeManager();
  if (!wait) return;
  absl::MutexLock join_lock(&join_mu_);
  std::thread manager;
  {
    absl::MutexLock lock(&mu_);
    if (!manager_.joinable()) return;
    if (manager_.get_id() == std::this_thread::get_id()) return;
    manager = std::move(manager_);
  }
  manager.join();
}

void Pool::SignalWorkers(int sig) {
  Shutdown(/*wait=*/false, /*cancel_futures=*/true);
  {
    absl::MutexLock lock(&mu_);
    if (state_.broken() || !manager_started_) return;
    terminate_signal_ = sig;
  }
  WakeManager();
}

void Pool::ManagerLoop() {
  constexpr int kMaxEvents = 64;
  struct epoll_event events[kMaxEvents];
  absl::Duration timeout = absl::InfiniteDuration();
  while (true) {
    int n = events_.Wait(events, kMaxEvents, timeout);
    if (n < 0) {
      PCHECK(errno == EINTR) << "epoll_wait";
      n = 0;
    }
    io_mu_.Lock();
    for (int i = 0; i < n; ++i) {
      uint64_t key = events[i].data.u64;
      if (key == kWakeKey) {
        events_.DrainWake();
        continue;
      }
      const int id = WorkerOfKey(key);
      auto it = workers_.find(id);
      if (it == workers_.end()) continue;
      switch (KindOfKey(key)) {
        case EventKind::kChannel:
          it->second.epoll_armed = false;  // EPOLLONESHOT
          PumpWorker(it->second);
          break;
        case EventKind::kPid:
          OnWorkerExit(id);
          break;
        case EventKind::kHeartbeat:
          ReadHeartbeats(it->second);
          break;
      }
    }
    // Signals requested by TerminateWorkers()/KillWorkers().
    int sig;
    {
      absl::MutexLock lock(&mu_);
      sig = terminate_signal_;
    }
    if (sig != 0 && !signalled_) {
      signalled_ = true;
      for (auto& [id, w] : workers_) KillWorker(w, sig);
    }
    // Remote workers whose channel closed (they have no pidfd).
    std::vector<int> gone;
    for (const auto& [id, w] : workers_) {
      if (!w.remote.empty() && w.channel == nullptr) gone.push_back(id);
    }
    for (int id : gone) OnRemoteWorkerGone(id);
    // Workers that overstayed their grace period.
    absl::Time now = absl::Now();
    for (auto& [id, w] : workers_) {
      if (w.kill_deadline <= now && w.signal_sent != SIGKILL) {
        KillWorker(w, SIGKILL);
      }
    }
    if (!state_.broken()) {
      ProcessInterrupts();
      CheckDeadlines();
    }
    // Channels callers left disarmed and stopped polling.
    std::vector<std::string> frames;
    for (auto& [id, w] : workers_) {
      if (!WantsRearm(w, now)) continue;
      if (!PollWorker(w, /*stay=*/false, absl::InfinitePast(), frames)) break;
      // A result waited for it: callers went away with work in flight.
      if (!frames.empty()) w.rearm_after = kRearmAfter;
    }
    if (!state_.broken()) HandOutQueued(/*may_start=*/true);
    if (!state_.broken()) RetireIdleWorkers();
    FillStatsIfRequested();
    if (workers_.TakeChanged()) UpdateLivePids();
    // Something this round did needs another (e.g. a remote worker whose
    // channel failed during HandOutQueued(): the scan for gone workers ran
    // before it): go round again at once rather than sleep on it.
    const bool again = wake_manager_;
    wake_manager_ = false;
    const bool exit = !again && ShouldExit();
    manager_deadline_ = NextDeadline();
    timeout = again ? absl::ZeroDuration()
              : manager_deadline_ == absl::InfiniteFuture()
                  ? absl::InfiniteDuration()
                  : std::max(absl::ZeroDuration(),
                             manager_deadline_ - absl::Now());
    UnlockAndComplete();
    if (exit) break;
  }
  VLOG(1) << "procpool: manager thread exits";
}

void Pool::BreakPool(const std::string& message, WorkerCrash crash) {
  if (state_.broken()) return;
  const BrokenProcessPool prototype(message, crash);
  std::deque<WorkItem> pending;
  bool requested;
  {
    absl::MutexLock lock(&mu_);
    state_.Break(prototype.summary());
    pending.swap(pending_);
    requested = terminate_signal_ != 0;
  }
  // Each future gets its own exception object (S13).
  auto fail = [&](const std::shared_ptr<StateBase>& state)
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_) {
    completions_.Error(
        state, std::make_exception_ptr(BrokenProcessPool(message, crash)));
  };
  for (auto& [id, w] : workers_) {
    for (Assigned& a : w.assigned) fail(a.item.state);
    w.assigned.clear();
    CloseChannel(w);
    if (w.signal_sent != SIGKILL) KillWorker(w, SIGKILL);
  }
  for (WorkItem& item : pending) fail(item.state);
  // With the worker's stack, once the futures have failed.
  if (!requested) completions_.LogError(std::make_exception_ptr(prototype));
}

void Pool::RetireIdleWorkers() {
  {
    absl::MutexLock lock(&mu_);
    if (!state_.shut_down() || !pending_.empty()) return;
  }
  for (auto& [id, w] : workers_) {
    if (w.assigned.empty()) Retire(w, "shutdown");
  }
}

bool Pool::ShouldExit() {
  if (!workers_.empty()) return false;
  if (completing_.load(std::memory_order_acquire) != 0) return false;
  absl::MutexLock lock(&mu_);
  return state_.broken() || (state_.shut_down() && pending_.empty());
}

}  // namespace internal
}  // namespace procpool
