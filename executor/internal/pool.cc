#include "executor/internal/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/posix_error.h"
#include "executor/exception_registry.h"
#include "executor/task.h"
#include "glog/logging.h"

namespace procpool {
namespace internal {
namespace {

constexpr uint64_t kWakeKey = ~uint64_t{0};
constexpr uint64_t kChannelKind = 0;
constexpr uint64_t kPidKind = 1;
constexpr uint64_t kHeartbeatKind = 2;
constexpr absl::Duration kReapTimeout = absl::Seconds(5);

constexpr char kAbruptMessage[] =
    "A process in the process pool was terminated abruptly while the future "
    "was running or pending";

std::atomic<bool> process_exiting{false};

void InstallAtExitOnce() {
  static bool installed = [] {
    std::atexit([] { process_exiting.store(true); });
    return true;
  }();
  (void)installed;
}

uint64_t Key(int id, uint64_t kind) {
  return (static_cast<uint64_t>(id) << 2) | kind;
}

}  // namespace

Pool::Pool(PoolConfig config)
    : config_(std::move(config)),
      launcher_(MakeLauncher(config_.start_method)) {
  InstallAtExitOnce();
  interrupt_target_ = std::make_shared<InterruptTarget>();
  interrupt_target_->pool = this;
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  PCHECK(wake_fd_ >= 0) << "eventfd";
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  PCHECK(epoll_fd_ >= 0) << "epoll_create1";
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeKey;
  PCHECK(epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) == 0);
}

Pool::~Pool() {
  Shutdown(/*wait=*/true, /*cancel_futures=*/false);
  {
    absl::MutexLock lock(&interrupt_target_->mu);
    interrupt_target_->pool = nullptr;
  }
  close(epoll_fd_);
  close(wake_fd_);
}

void Pool::Submit(WorkItem item) {
  if (config_.on_worker_death == WorkerDeathPolicy::kReplaceWorker) {
    item.retries_left = config_.max_retries;
  }
  item.state->SetInterruptHook(
      [target = interrupt_target_](StateBase* state) {
        absl::MutexLock lock(&target->mu);
        if (target->pool == nullptr) return;
        {
          absl::MutexLock pool_lock(&target->pool->mu_);
          target->pool->interrupts_.push_back(state->weak_from_this());
        }
        uint64_t one = 1;
        ssize_t ignored = write(target->pool->wake_fd_, &one, sizeof(one));
        (void)ignored;
      });
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) {
      throw ShutdownError("cannot schedule new futures after shutdown");
    }
    if (broken_) throw BrokenProcessPool(*broken_);
    if (process_exiting.load()) {
      throw ShutdownError("cannot schedule new futures after process exit began");
    }
    pending_.push_back(std::move(item));
    if (!manager_started_) {
      manager_started_ = true;
      manager_ = std::thread([this] { ManagerLoop(); });
    }
  }
  // An eventfd write never blocks (S21); EAGAIN only means it is already set.
  uint64_t one = 1;
  ssize_t ignored = write(wake_fd_, &one, sizeof(one));
  (void)ignored;
}

void Pool::Shutdown(bool wait, bool cancel_futures) {
  std::deque<WorkItem> to_cancel;
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
    if (cancel_futures) to_cancel = pending_;
  }
  // Cancel outside mu_: cancellation runs done callbacks.
  for (WorkItem& item : to_cancel) item.state->Cancel();
  to_cancel.clear();
  uint64_t one = 1;
  ssize_t ignored = write(wake_fd_, &one, sizeof(one));
  (void)ignored;
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
    if (broken_ || !manager_started_) return;
    terminate_signal_ = sig;
  }
  uint64_t one = 1;
  ssize_t ignored = write(wake_fd_, &one, sizeof(one));
  (void)ignored;
}

std::vector<pid_t> Pool::WorkerPids() const {
  absl::MutexLock lock(&mu_);
  return live_pids_;
}

void Pool::UpdateLivePids() {
  workers_changed_ = false;
  std::vector<pid_t> pids;
  for (const auto& [id, w] : workers_) pids.push_back(w.process.pid);
  absl::MutexLock lock(&mu_);
  live_pids_ = std::move(pids);
}

int Pool::EpollTimeoutMs() const {
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [id, w] : workers_) {
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
  if (next == absl::InfiniteFuture()) return -1;
  absl::Duration left = next - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
}

void Pool::ManagerLoop() {
  constexpr int kMaxEvents = 64;
  struct epoll_event events[kMaxEvents];
  while (true) {
    int n = epoll_wait(epoll_fd_, events, kMaxEvents, EpollTimeoutMs());
    if (n < 0) {
      PCHECK(errno == EINTR) << "epoll_wait";
      n = 0;
    }
    for (int i = 0; i < n; ++i) {
      uint64_t key = events[i].data.u64;
      if (key == kWakeKey) {
        uint64_t value;
        ssize_t ignored = read(wake_fd_, &value, sizeof(value));
        (void)ignored;
        continue;
      }
      int id = static_cast<int>(key >> 2);
      auto it = workers_.find(id);
      if (it == workers_.end()) continue;
      switch (key & 3) {
        case kChannelKind:
          PumpWorker(it->second);
          break;
        case kPidKind:
          OnWorkerExit(id);
          break;
        case kHeartbeatKind:
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
    // Workers that overstayed their grace period.
    absl::Time now = absl::Now();
    for (auto& [id, w] : workers_) {
      if (w.kill_deadline <= now && w.signal_sent != SIGKILL) {
        KillWorker(w, SIGKILL);
      }
    }
    if (!broken_local_) {
      ProcessInterrupts();
      CheckDeadlines();
    }
    if (!broken_local_) Dispatch();
    if (!broken_local_) RetireIdleWorkers();
    FillStatsIfRequested();
    if (workers_changed_) UpdateLivePids();
    if (ShouldExit()) break;
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

void Pool::Dispatch() {
  // 1. Idle ready workers take pending work.
  size_t still_pending = HandOut(/*max_in_flight=*/0);
  if (broken_local_) return;
  // 2. Start workers for what no idle or starting worker will take (S6).
  size_t idle = 0;
  for (const auto& [id, w] : workers_) {
    if (CanTakeWork(w) && w.assigned.empty()) ++idle;
  }
  while (!broken_local_ && still_pending > idle + starting_ &&
         static_cast<int>(workers_.size()) < config_.max_workers) {
    StartWorker();
  }
  // 3. Only when the pool is at full strength: one queued item per busy
  //    worker, so that it never waits for a round trip between tasks. A
  //    future is handed out early at most once beyond the running one (S16).
  if (!broken_local_ && starting_ == 0 &&
      static_cast<int>(workers_.size()) >= config_.max_workers) {
    HandOut(/*max_in_flight=*/1);
  }
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
  std::vector<std::pair<Worker*, std::string>> frames;
  for (Send& s : sends) {
    Worker& w = *s.worker;
    wire::Call call;
    call.work_id = next_work_id_++;
    call.task = s.item.task;
    call.args = std::move(s.item.args);
    std::string frame = wire::EncodeMessage(call);
    s.item.args = std::move(call.args);  // kept for a rerun elsewhere
    ++w.tasks_assigned;
    Assigned a{call.work_id, std::move(s.item)};
    if (w.assigned.empty()) {
      a.deadline = a.item.timeout == absl::InfiniteDuration()
                       ? absl::InfiniteFuture()
                       : absl::Now() + a.item.timeout;
      w.idle_since = absl::InfiniteFuture();
    }
    w.assigned.push_back(std::move(a));
    frames.emplace_back(&w, std::move(frame));
  }
  for (auto& [w, frame] : frames) {
    if (broken_local_) return 0;
    if (w->channel == nullptr) continue;  // failed earlier; its exit follows
    absl::Status sent = w->channel->Send(std::move(frame));
    if (!sent.ok()) {
      OnChannelError(*w, sent);
      continue;
    }
    UpdateEvents(*w);
  }
  return still_pending;
}

void Pool::StartWorker() {
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

  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = Key(id, kPidKind);
  PCHECK(epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, w.process.pidfd, &ev) == 0);
  ev.events = EPOLLIN;
  ev.data.u64 = Key(id, kChannelKind);
  PCHECK(epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, w.channel->PollFd(), &ev) == 0);
  w.registered_events = EPOLLIN;

  wire::Config config;
  config.initializer = config_.initializer;
  config.max_tasks = config_.max_tasks_per_child;
  config.memory_limit_bytes = config_.max_memory_bytes_per_worker;
  if (config_.heartbeat_timeout != absl::InfiniteDuration()) {
    config.heartbeat_interval_ms = static_cast<uint32_t>(std::max<int64_t>(
        1, absl::ToInt64Milliseconds(config_.heartbeat_timeout / 4)));
    w.last_heartbeat = absl::Now();
    ev.events = EPOLLIN;
    ev.data.u64 = Key(id, kHeartbeatKind);
    PCHECK(epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, w.crash_fd, &ev) == 0);
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
  uint32_t events = w.channel->PollEvents();
  if (events == w.registered_events) return;
  struct epoll_event ev = {};
  ev.events = events;
  ev.data.u64 = Key(w.id, kChannelKind);
  PCHECK(epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, w.channel->PollFd(), &ev) == 0);
  w.registered_events = events;
}

void Pool::CloseChannel(Worker& w) {
  if (w.channel == nullptr) return;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, w.channel->PollFd(), nullptr);
  w.channel.reset();
  if (!w.ready) --starting_;
  w.ready = false;
}

void Pool::KillWorker(Worker& w, int sig) {
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
    for (const std::string& frame : frames) {
      if (!HandleFrame(w, frame)) break;
    }
    CloseChannel(w);
  }
  absl::StatusOr<int> wait_status = launcher_->Reap(w.process, kReapTimeout);
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, w.process.pidfd, nullptr);
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
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, w.crash_fd, nullptr);
  close(w.crash_fd);
  w.crash_fd = -1;
  crash.idle = w.assigned.empty();
  VLOG(1) << "procpool: worker pid " << w.process.pid << " exited: "
          << crash.Describe();
  const bool retired = config_.max_tasks_per_child > 0 &&
                       w.tasks_assigned >= config_.max_tasks_per_child;
  const bool expected =
      w.assigned.empty() && !w.killed && (w.shutdown_sent || retired) &&
      crash.exit_code.has_value() && *crash.exit_code == 0;
  if (w.hung) {
    crash.cause = absl::StrCat("stopped responding: no heartbeat for ",
                               absl::FormatDuration(config_.heartbeat_timeout),
                               " (Options::heartbeat_timeout)");
  }
  if (!expected && !broken_local_ && SettleDeadWorker(w, crash)) {
    workers_.erase(id);
    workers_changed_ = true;
    return;
  }
  if (!expected && !broken_local_) {
    if (!w.assigned.empty()) {
      crash.task_name = w.assigned.front().item.task;
      crash.work_id = static_cast<int64_t>(w.assigned.front().work_id);
    }
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
  if (broken_local_) return;
  broken_local_ = true;
  const BrokenProcessPool prototype(message, crash);
  std::deque<WorkItem> pending;
  bool requested;
  {
    absl::MutexLock lock(&mu_);
    broken_ = prototype.what();
    pending.swap(pending_);
    requested = terminate_signal_ != 0;
  }
  LOG_IF(ERROR, !requested) << "procpool: " << prototype.what();
  // Each future gets its own exception object (S13).
  auto fail = [&](StateBase& state) {
    state.TrySetException(
        std::make_exception_ptr(BrokenProcessPool(message, crash)));
  };
  for (auto& [id, w] : workers_) {
    for (Assigned& a : w.assigned) fail(*a.item.state);
    w.assigned.clear();
    CloseChannel(w);
    if (w.signal_sent != SIGKILL) KillWorker(w, SIGKILL);
  }
  for (WorkItem& item : pending) fail(*item.state);
}

void Pool::RetireIdleWorkers() {
  {
    absl::MutexLock lock(&mu_);
    if (!shutdown_ || !pending_.empty()) return;
  }
  for (auto& [id, w] : workers_) {
    if (w.assigned.empty()) Retire(w, "shutdown");
  }
}

bool Pool::ShouldExit() {
  if (!workers_.empty()) return false;
  absl::MutexLock lock(&mu_);
  return broken_.has_value() || (shutdown_ && pending_.empty());
}

}  // namespace internal
}  // namespace procpool
