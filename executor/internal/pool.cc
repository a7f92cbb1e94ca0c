#include "executor/internal/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/posix_error.h"
#include "common/spin.h"
#include "core/exception_registry.h"
#include "core/task.h"
#include "glog/logging.h"
#include "worker/parent/make_launcher.h"

namespace procpool {
namespace internal {
namespace {

constexpr absl::Duration kReapTimeout = absl::Seconds(5);
// How long channels a caller left disarmed (Channel::Poll with stay) stay so
// once nobody polls: results that arrive meanwhile wait at most this long
// for the manager. A caller that goes to sleep on a future re-arms at once;
// this only covers callers that polled and went on (Submit, a Get that was
// answered).
constexpr absl::Duration kRearmAfter = absl::Microseconds(200);
// How often Submit tries io_mu_ (a pause apart, ~1 us in all) before it
// leaves the work to the manager.
constexpr int kSubmitLockTries = 32;
// A gap this long between two clock readings of a spinning thread means it
// was preempted.
constexpr absl::Duration kPreempted = absl::Microseconds(20);

constexpr char kAbruptMessage[] =
    "A process in the process pool was terminated abruptly while the future "
    "was running or pending";

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

static_assert(kBigElementBytes == wire::kExternalBlobBytes);

void AddElement(WorkItem* item, std::string encoded) {
  if (item->args.empty() && encoded.size() < kBigElementBytes) {
    item->packed_args.Append(encoded);
    return;
  }
  if (item->args.empty()) {
    item->args = item->packed_args.Unpack();
    item->packed_args.clear();
  }
  item->args.push_back(std::move(encoded));
}

void EndAppendedElement(WorkItem* item, size_t begin) {
  std::string& bytes = item->packed_args.bytes;
  std::string big = bytes.substr(begin);
  bytes.resize(begin);
  item->args = item->packed_args.Unpack();
  item->packed_args.clear();
  item->args.push_back(std::move(big));
}

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

// How long a waiter polls the workers itself before it sleeps (DriveIoWhileWaiting): what
// the transport says a round trip takes (Transport::WaiterPollBudget). A
// long task costs its waiter this much CPU once.
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
    pending_.push_back(std::move(item));
    if (!manager_started_) {
      manager_started_ = true;
      started_manager = true;
      manager_ = std::thread([this] { ManagerLoop(); });
    }
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
      if (!state_.broken()) PollWorkers(/*stay=*/true, /*cheap_only=*/true);
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
  if (!state_.broken() && starting_ == 0 &&
      static_cast<int>(workers_.size()) >= config_.max_workers) {
    HandOut(/*max_in_flight=*/1);
  }
}

WorkerCrash Pool::CrashOf(const Worker& w, bool with_task) const {
  WorkerCrash crash;
  crash.pid = w.process.pid > 0 ? w.process.pid : -1;
  crash.host = w.remote;
  if (with_task && !w.assigned.empty()) {
    crash.task_name = w.assigned.front().item.task;
    crash.work_id = static_cast<int64_t>(w.assigned.front().work_id);
  }
  return crash;
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

void Pool::DriveIoWhileWaiting(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Duration budget = std::min(timeout, waiter_poll_budget_);
  absl::Time now = absl::Now();
  const absl::Time deadline = now + budget;
  bool polled = false;
  while (!done()) {
    absl::Time polled_until = now;
    if (io_mu_.TryLock()) {
      const absl::Time seen = manager_deadline_;
      if (!state_.broken() && PollWorkers(/*stay=*/true, /*cheap_only=*/false,
                                        now)) {
        polled = true;
      }
      ReleaseIo(seen);
      if (done()) break;
      // A poll may take long on its own (a socket's recv(), a big frame):
      // that is not time lost to another thread.
      polled_until = absl::Now();
    }
    CpuRelax();
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
  if (polled && !done()) {
    // This thread goes to sleep: re-arm every channel now rather than in
    // kRearmAfter, so that the manager sees the result at once.
    io_mu_.Lock();
    const absl::Time seen = manager_deadline_;
    if (!state_.broken()) PollWorkers(/*stay=*/false);
    ReleaseIo(seen);
  }
}

bool Pool::PollWorkers(bool stay, bool cheap_only, absl::Time now) {
  bool polled = false;
  std::vector<std::string> frames;
  if (!stay) {
    now = absl::InfinitePast();
  } else if (now == absl::InfinitePast()) {
    now = absl::Now();
  }
  for (auto& [id, w] : workers_) {
    if (w.channel == nullptr) continue;
    // A socket costs a recv() per look: look only where a result is due.
    if (cheap_only && !w.channel->PollIsCheap() &&
        (w.assigned.empty() || !w.ready)) {
      continue;
    }
    polled = true;
    if (!PollWorker(w, stay, now, frames)) return polled;
  }
  if (!state_.broken()) HandOutQueued();
  return polled;
}

bool Pool::PollWorker(Worker& w, bool stay, absl::Time now,
                      std::vector<std::string>& frames) {
  w.disarmed = stay;
  w.last_poll = now;
  frames.clear();
  absl::Status status = w.channel->Poll(&frames, stay);
  return HandleFrames(w, frames, status);
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

std::vector<pid_t> Pool::WorkerPids() const {
  absl::MutexLock lock(&mu_);
  return live_pids_;
}

void Pool::UpdateLivePids() {
  workers_changed_ = false;
  std::vector<pid_t> pids;
  for (const auto& [id, w] : workers_) {
    if (w.remote.empty()) pids.push_back(w.process.pid);
  }
  absl::MutexLock lock(&mu_);
  live_pids_ = std::move(pids);
}

absl::Time Pool::NextDeadline() const {
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [id, w] : workers_) {
    if (w.disarmed) next = std::min(next, w.last_poll + kRearmAfter);
    next = std::min(next, w.kill_deadline);
    if (!w.assigned.empty() && !w.killed) {
      next = std::min(next, w.assigned.front().deadline);
    }
    if (config_.idle_timeout != absl::InfiniteDuration() && !w.shutdown_sent) {
      next = std::min(next, w.idle_since + config_.idle_timeout);
    }
    if (config_.heartbeat_timeout != absl::InfiniteDuration() && !w.killed) {
      next = std::min(next, w.last_heartbeat + config_.heartbeat_timeout);
    }
  }
  return next;
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
      if (!w.disarmed || now < w.last_poll + kRearmAfter) continue;
      w.disarmed = false;
      if (w.channel == nullptr) continue;
      if (!PollWorker(w, /*stay=*/false, absl::InfinitePast(), frames)) break;
    }
    if (!state_.broken()) HandOutQueued(/*may_start=*/true);
    if (!state_.broken()) RetireIdleWorkers();
    FillStatsIfRequested();
    if (workers_changed_) UpdateLivePids();
    // Something this round did needs another (e.g. a remote worker whose
    // channel failed during HandOutQueued(): the scan for gone workers ran before
    // it): go round again at once rather than sleep on it.
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

bool Pool::CanTakeWork(const Worker& w) const {
  if (!w.ready || w.shutdown_sent || w.killed || w.channel == nullptr) {
    return false;
  }
  return config_.max_tasks_per_child <= 0 ||
         w.tasks_assigned < config_.max_tasks_per_child;
}

bool Pool::ShouldStartWorker(size_t still_pending) const {
  if (static_cast<int>(workers_.size()) >= config_.max_workers) return false;
  size_t idle = 0;
  for (const auto& [id, w] : workers_) {
    if (CanTakeWork(w) && w.assigned.empty()) ++idle;
  }
  return still_pending > idle + starting_;
}

size_t Pool::HandOut(size_t max_in_flight) {
  struct Send {
    Worker* worker;
    WorkItem item;
  };
  std::vector<Send> sends;
  size_t still_pending = 0;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, w] : workers_) {
      if (pending_.empty()) break;
      if (!CanTakeWork(w) || w.assigned.size() > max_in_flight) continue;
      while (!pending_.empty()) {
        WorkItem item = std::move(pending_.front());
        pending_.pop_front();
        if (item.requeued) {
          if (item.state->done()) continue;  // interrupted meanwhile
        } else if (!item.state->SetRunningOrNotifyCancel()) {
          continue;  // cancelled
        }
        sends.push_back(Send{&w, std::move(item)});
        break;
      }
    }
    // Skip over cancelled items so they do not make us start workers.
    while (!pending_.empty() && !pending_.front().requeued &&
           pending_.front().state->cancelled()) {
      pending_.pop_front();
    }
    still_pending = pending_.size();
  }
  // Record every hand-out before sending anything, so that a send failure
  // (which may break the pool) finds all of them in some worker's list.
  struct Out {
    Worker* worker;
    std::string frame;
    std::vector<absl::string_view> parts;  // with `sent`: SendParts
    std::shared_ptr<SentCall> sent;
  };
  std::vector<Out> frames;
  for (Send& s : sends) {
    Worker& w = *s.worker;
    Out out{&w};
    wire::Call call;
    call.work_id = next_work_id_++;
    call.task = s.item.task;
    call.args = std::move(s.item.args);
    call.packed_args = std::move(s.item.packed_args);
    const uint64_t work_id = call.work_id;
    if (wire::HasExternalBlobs(call)) {
      // Sent from the arguments themselves (a 64 MiB argument is not copied
      // into a frame); the transport and the pool share them.
      out.sent = std::make_shared<SentCall>();
      out.sent->call = std::move(call);
      out.parts =
          wire::EncodeMessageParts(out.sent->call, &out.sent->storage);
    } else {
      out.frame = wire::EncodeMessage(call);
      // Kept for a rerun elsewhere.
      s.item.args = std::move(call.args);
      s.item.packed_args = std::move(call.packed_args);
    }
    ++w.tasks_assigned;
    Assigned a{work_id, std::move(s.item)};
    a.sent = out.sent;
    if (w.assigned.empty()) {
      a.deadline = a.item.timeout == absl::InfiniteDuration()
                       ? absl::InfiniteFuture()
                       : absl::Now() + a.item.timeout;
      w.idle_since = absl::InfiniteFuture();
    }
    w.assigned.push_back(std::move(a));
    frames.push_back(std::move(out));
  }
  for (Out& out : frames) {
    Worker* w = out.worker;
    if (state_.broken()) return 0;
    if (w->channel == nullptr) continue;  // failed earlier; its exit follows
    absl::Status sent =
        out.sent != nullptr
            ? w->channel->SendParts(std::move(out.parts), std::move(out.sent))
            : w->channel->Send(std::move(out.frame));
    if (!sent.ok()) {
      OnChannelError(*w, sent);
      continue;
    }
    UpdateEvents(*w);
  }
  return still_pending;
}

std::vector<std::string>* Pool::ReleasedArgs(Assigned& a) {
  if (a.sent == nullptr) return &a.item.args;
  return a.sent.use_count() == 1 ? &a.sent->call.args : nullptr;
}

void Pool::TakeBackArgs(Assigned& a) {
  if (a.sent == nullptr) return;
  if (std::vector<std::string>* args = ReleasedArgs(a)) {
    a.item.args = std::move(*args);
  } else {
    a.item.args = a.sent->call.args;  // the transport still sends them
  }
  a.sent.reset();
}

void Pool::StartRemoteWorker() {
  // The first slot with no live worker (an address may fill several).
  int slot = -1;
  for (int i = 0; i < static_cast<int>(config_.remote_workers.size()); ++i) {
    bool taken = false;
    for (const auto& [id, w] : workers_) taken = taken || w.remote_slot == i;
    if (!taken) {
      slot = i;
      break;
    }
  }
  CHECK_GE(slot, 0) << "no free remote worker slot, yet asked to start one";
  const std::string& address = config_.remote_workers[slot];
  RemoteWorkerSpec spec = config_.remote;
  spec.address = address;
  absl::StatusOr<std::unique_ptr<Channel>> channel =
      config_.transport->ConnectRemote(spec);
  if (!channel.ok()) {
    WorkerCrash crash;
    crash.host = address;
    crash.cause = std::string(channel.status().message());
    BreakPool("A remote worker could not be reached", crash);
    return;
  }
  const int id = next_worker_id_++;
  Worker& w = workers_[id];
  workers_changed_ = true;
  w.id = id;
  w.process.pid = 0;
  w.process.pidfd = -1;
  w.remote = address;
  w.remote_slot = slot;
  w.channel = std::move(*channel);
  ++starting_;
  VLOG(1) << "procpool: connecting to the remote worker at " << address;
  ConfigureWorker(w);
}

void Pool::StartWorker() {
  if (!config_.remote_workers.empty()) {
    StartRemoteWorker();
    return;
  }
  absl::StatusOr<ChannelPair> pair = config_.transport->CreatePair();
  if (!pair.ok()) {
    WorkerCrash crash;
    crash.cause = std::string(pair.status().message());
    BreakPool("A child process could not be started", crash);
    return;
  }
  // The pipe the worker's failure handler reports its stack into.
  int crash_pipe[2];
  if (pipe2(crash_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    for (int fd : pair->child.fds) close(fd);
    WorkerCrash crash;
    crash.cause = std::string(PosixError("pipe2", errno).message());
    BreakPool("A child process could not be started", crash);
    return;
  }
  LaunchRequest request{std::string(config_.transport->name()),
                        pair->child, config_.worker_binary, crash_pipe[1]};
  absl::StatusOr<WorkerProcess> process = launcher_->Start(request);
  for (int fd : pair->child.fds) close(fd);
  close(crash_pipe[1]);
  if (!process.ok()) {
    close(crash_pipe[0]);
    BreakPool(absl::StrCat("A child process ", process.status().message()),
              WorkerCrash{});
    return;
  }
  const int id = next_worker_id_++;
  Worker& w = workers_[id];
  workers_changed_ = true;
  w.id = id;
  w.process = *process;
  w.channel = std::move(pair->parent);
  w.crash_fd = crash_pipe[0];
  ++starting_;
  VLOG(1) << "procpool: started worker pid " << w.process.pid << " ("
          << StartMethodName(config_.start_method) << ", "
          << config_.transport->name() << ")";

  events_.Add(w.process.pidfd, EventKey(id, EventKind::kPid), EPOLLIN);
  ConfigureWorker(w);
}

void Pool::ConfigureWorker(Worker& w) {
  const int id = w.id;
  events_.Add(w.channel->PollFd(), EventKey(id, EventKind::kChannel),
              EPOLLIN | EPOLLONESHOT);
  w.registered_events = EPOLLIN;
  w.epoll_armed = true;

  wire::Config config;
  config.initializer = config_.initializer;
  config.max_tasks = config_.max_tasks_per_child;
  config.memory_limit_bytes = config_.max_memory_bytes_per_worker;
  config.keep_freed_memory = config_.keep_freed_memory;
  if (config_.heartbeat_timeout != absl::InfiniteDuration() &&
      w.crash_fd >= 0) {
    config.heartbeat_interval_ms = static_cast<uint32_t>(std::max<int64_t>(
        1, absl::ToInt64Milliseconds(config_.heartbeat_timeout / 4)));
    w.last_heartbeat = absl::Now();
    events_.Add(w.crash_fd, EventKey(id, EventKind::kHeartbeat), EPOLLIN);
  }
  w.idle_since = absl::Now();
  absl::Status sent = w.channel->Send(wire::EncodeMessage(config));
  if (!sent.ok()) {
    OnChannelError(w, sent);
    return;
  }
  UpdateEvents(w);
}

void Pool::UpdateEvents(Worker& w) {
  if (w.channel == nullptr) return;
  const uint32_t events = w.channel->PollEvents();
  // Queued output (EPOLLOUT) needs the manager even while callers poll.
  const bool want_armed = !w.disarmed || (events & EPOLLOUT) != 0;
  if (!want_armed) return;
  if (w.epoll_armed && events == w.registered_events) return;
  events_.Modify(w.channel->PollFd(), EventKey(w.id, EventKind::kChannel),
                 events | EPOLLONESHOT);
  w.registered_events = events;
  w.epoll_armed = true;
}

void Pool::CloseChannel(Worker& w) {
  if (w.channel == nullptr) return;
  events_.Remove(w.channel->PollFd());
  w.channel.reset();
  if (!w.ready) --starting_;
  w.ready = false;
}

void Pool::KillWorker(Worker& w, int sig) {
  if (!w.remote.empty()) {
    // Its daemon's child exits when its connection drops.
    w.killed = true;
    w.signal_sent = SIGKILL;
    if (w.lost_cause.empty()) {
      w.lost_cause = absl::StrCat("the pool closed its connection (",
                                  sig == SIGKILL ? "SIGKILL" : "SIGTERM",
                                  " for a local worker)");
    }
    CloseChannel(w);
    wake_manager_ = true;
    return;
  }
  if (kill(w.process.pid, sig) == 0) {
    w.killed = true;
    w.signal_sent = sig;
    w.kill_deadline = absl::Now() + kExitGrace;
  }
}

void Pool::OnWorkerExit(int id) {
  Worker& w = workers_.at(id);
  // Deliver whatever the worker wrote before it died.
  if (w.channel != nullptr) {
    std::vector<std::string> frames;
    absl::Status status = w.channel->Pump(&frames);
    for (std::string& frame : frames) {
      if (!HandleFrame(w, std::move(frame))) break;
    }
    CloseChannel(w);
  }
  absl::StatusOr<int> wait_status = launcher_->Reap(w.process, kReapTimeout);
  events_.Remove(w.process.pidfd);
  close(w.process.pidfd);
  WorkerCrash crash;
  if (wait_status.ok()) {
    crash = WorkerCrash::FromWaitStatus(w.process.pid, *wait_status);
  } else {
    crash.pid = w.process.pid;
    crash.cause = std::string(wait_status.status().message());
  }
  ReadHeartbeats(w);
  crash.stack = std::move(w.crash_report);
  events_.Remove(w.crash_fd);
  close(w.crash_fd);
  w.crash_fd = -1;
  crash.idle = w.assigned.empty();
  VLOG(1) << "procpool: worker pid " << w.process.pid << " exited: "
          << crash.Describe();
  AfterWorkerGone(id, std::move(crash));
}

void Pool::OnRemoteWorkerGone(int id) {
  Worker& w = workers_.at(id);
  WorkerCrash crash = CrashOf(w, /*with_task=*/false);
  crash.cause = w.lost_cause.empty() ? "its connection closed" : w.lost_cause;
  crash.idle = w.assigned.empty();
  // (CloseChannel() cleared w.ready; the pid comes with the Hello.)
  const bool never_ready = w.process.pid <= 0 && !w.killed;
  VLOG(1) << "procpool: remote worker at " << w.remote
          << " is gone: " << crash.Describe();
  if (never_ready && !w.shutdown_sent && !state_.broken()) {
    crash.idle = false;  // it never was a worker: "while idle" would mislead
    // As when a local worker cannot be started (S12): replacing it would
    // only fail again.
    BreakPool(absl::StrCat("A remote worker could not be started at ",
                           w.remote),
              crash);
    workers_.erase(id);
    workers_changed_ = true;
    return;
  }
  AfterWorkerGone(id, std::move(crash));
}

void Pool::AfterWorkerGone(int id, WorkerCrash crash) {
  Worker& w = workers_.at(id);
  const bool retired = config_.max_tasks_per_child > 0 &&
                       w.tasks_assigned >= config_.max_tasks_per_child;
  const bool clean_exit = w.remote.empty()
                              ? crash.exit_code.has_value() && *crash.exit_code == 0
                              : true;  // a closed connection is all we see
  const bool expected = w.assigned.empty() && !w.killed &&
                        (w.shutdown_sent || retired) && clean_exit;
  if (w.hung) {
    crash.cause = absl::StrCat("stopped responding: no heartbeat for ",
                               absl::FormatDuration(config_.heartbeat_timeout),
                               " (Options::heartbeat_timeout)");
  }
  if (!expected && !state_.broken() && SettleDeadWorker(w, crash)) {
    workers_.erase(id);
    workers_changed_ = true;
    return;
  }
  if (!expected && !state_.broken()) {
    const WorkerCrash who = CrashOf(w, /*with_task=*/true);
    crash.task_name = who.task_name;
    crash.work_id = who.work_id;
    int sig;
    {
      absl::MutexLock lock(&mu_);
      sig = terminate_signal_;
    }
    BreakPool(sig != 0 ? absl::StrCat("A worker was stopped by ",
                                      sig == SIGKILL ? "KillWorkers()"
                                                     : "TerminateWorkers()")
                       : kAbruptMessage,
              crash);
  }
  workers_.erase(id);
  workers_changed_ = true;
}

void Pool::BreakPool(const std::string& message, WorkerCrash crash) {
  if (state_.broken()) return;
  const BrokenProcessPool prototype(message, crash);
  std::deque<WorkItem> pending;
  bool requested;
  {
    absl::MutexLock lock(&mu_);
    state_.Break(prototype.what());
    pending.swap(pending_);
    requested = terminate_signal_ != 0;
  }
  LOG_IF(ERROR, !requested) << "procpool: " << prototype.what();
  // Each future gets its own exception object (S13).
  auto fail = [&](const std::shared_ptr<StateBase>& state)
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_) {
    completions_.Error(state, std::make_exception_ptr(BrokenProcessPool(message, crash)));
  };
  for (auto& [id, w] : workers_) {
    for (Assigned& a : w.assigned) fail(a.item.state);
    w.assigned.clear();
    CloseChannel(w);
    if (w.signal_sent != SIGKILL) KillWorker(w, SIGKILL);
  }
  for (WorkItem& item : pending) fail(item.state);
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
