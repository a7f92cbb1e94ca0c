// The pool's workers from start to end: starting them (local processes and
// remote connections), configuring them, telling them to shut down, killing
// them (on timeouts, interrupts, SignalWorkers, a broken pool), and handling
// their end: reaping a local one, noticing a remote one is gone, and
// settling the futures a dead worker held (fail them, run them again, or
// break the pool). Runs under io_mu_ (see pool.h for who owns what).
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/start_method.h"
#include "executor/internal/pool.h"
#include "executor/internal/worker_start.h"
#include "glog/logging.h"

namespace procpool {
namespace internal {

namespace {

// How long Reap() may wait for an exited worker's status.
constexpr absl::Duration kReapTimeout = absl::Seconds(5);

// How long a pool short of a resource waits before it tries to start
// another worker (while the workers it has take the work).
constexpr absl::Duration kStartRetryDelay = absl::Seconds(1);

constexpr char kAbruptMessage[] =
    "A process in the process pool was terminated abruptly while the future "
    "was running or pending";

}  // namespace

void Pool::StartRemoteWorker() {
  const int slot = FreeRemoteSlot(workers_, lost_remote_slots_,
                                  static_cast<int>(config_.remote_workers.size()));
  CHECK_GE(slot, 0) << "no free remote worker slot, yet asked to start one";
  const std::string& address = config_.remote_workers[slot];
  const std::string& label =
      static_cast<size_t>(slot) < config_.remote_worker_labels.size()
          ? config_.remote_worker_labels[slot]
          : address;
  RemoteWorkerSpec spec = config_.remote;
  spec.address = address;
  if (static_cast<size_t>(slot) < config_.remote_tls_server_names.size()) {
    spec.tls_server_name = config_.remote_tls_server_names[slot];
  }
  absl::StatusOr<std::unique_ptr<Channel>> channel =
      config_.transport->ConnectRemote(spec);
  if (!channel.ok()) {
    WorkerCrash crash;
    crash.host = label;
    crash.cause = std::string(channel.status().message());
    if (LoseRemoteSlot(slot, crash)) return;
    BreakPool("A remote worker could not be reached", crash);
    return;
  }
  Worker& w = workers_.Add();
  w.process.pid = 0;  // and no pidfd
  w.remote = label;
  w.remote_slot = slot;
  w.channel = std::move(*channel);
  VLOG(1) << "procpool: connecting to the remote worker at " << label;
  ConfigureWorker(w);
}

bool Pool::LoseRemoteSlot(int slot, const WorkerCrash& crash) {
  if (config_.on_worker_death != WorkerDeathPolicy::kReplaceWorker ||
      MaxWorkersNow() <= 1) {
    return false;
  }
  LOG(WARNING) << "procpool: the remote worker slot " << crash.host
               << " cannot be reached (" << crash.cause
               << "); the pool goes on without it";
  lost_remote_slots_.resize(config_.remote_workers.size(), false);
  lost_remote_slots_[slot] = true;
  ++lost_remote_count_;
  return true;
}

void Pool::StartWorker() {
  if (!config_.remote_workers.empty()) {
    StartRemoteWorker();
    return;
  }
  LaunchedWorker launched;
  StartFailure failure;
  if (!LaunchLocalWorker(*config_.transport, *launcher_,
                         config_.worker_binary, &launched, &failure)) {
    if (failure.resource_exhausted && !workers_.empty()) {
      // Short of descriptors, memory or processes, with workers that take
      // the work: go on with them, and try again a while later (a pool
      // that breaks here would lose what is in flight for nothing).
      start_held_until_ = absl::Now() + kStartRetryDelay;
      LOG_IF(WARNING, !start_shortfall_logged_)
          << "procpool: " << failure.message
          << (failure.crash.cause.empty() ? "" : ": ") << failure.crash.cause
          << "; the pool goes on with " << workers_.size()
          << " worker(s) and tries again every "
          << absl::FormatDuration(kStartRetryDelay);
      start_shortfall_logged_ = true;
      return;
    }
    BreakPool(failure.message, failure.crash);
    return;
  }
  Worker& w = workers_.Add();
  w.process = std::move(launched.process);
  w.channel = std::move(launched.channel);
  w.crash_fd = std::move(launched.crash_fd);
  if (config_.start_timeout != absl::InfiniteDuration()) {
    w.start_deadline = absl::Now() + config_.start_timeout;
  }
  VLOG(1) << "procpool: started worker pid " << w.process.pid << " ("
          << StartMethodName(config_.start_method) << ", "
          << config_.transport->name() << ")";

  events_.Add(w.process.pidfd.get(), EventKey(w.id, EventKind::kPid), EPOLLIN);
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
      w.crash_fd.valid()) {
    config.heartbeat_interval_ms = static_cast<uint32_t>(std::max<int64_t>(
        1, absl::ToInt64Milliseconds(config_.heartbeat_timeout / 4)));
    w.last_heartbeat = absl::Now();
    events_.Add(w.crash_fd.get(), EventKey(id, EventKind::kHeartbeat), EPOLLIN);
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
  closed_channels_.push_back(std::move(w.channel));  // destroyed unlocked
  workers_.ChannelClosed(w);
}

void Pool::KillWorker(Worker& w, int sig) {
  if (!w.remote.empty()) {
    // Its daemon's child exits when its connection drops.
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
    w.signal_sent = sig;
    w.kill_deadline = absl::Now() + kExitGrace;
  }
}

void Pool::Retire(Worker& w, const char* why) {
  if (w.shutdown_sent() || w.channel == nullptr) return;
  VLOG(1) << "procpool: retiring worker pid " << w.process.pid << " (" << why
          << ")";
  if (!w.remote.empty() && w.state == WorkerState::kStarting) {
    // Still connecting (perhaps to a host that is gone, until
    // remote_connect_timeout): nothing runs there yet, so drop it now rather
    // than wait kExitGrace for a Shutdown it may never read. A daemon's child
    // exits when its connection drops.
    workers_.SendingShutdown(w);
    CloseChannel(w);
    wake_manager_ = true;
    return;
  }
  workers_.SendingShutdown(w);
  w.kill_deadline = absl::Now() + kExitGrace;
  absl::Status sent = w.channel->Send(wire::EncodeMessage(wire::Shutdown{}));
  if (!sent.ok()) {
    OnChannelError(w, sent);
    return;
  }
  UpdateEvents(w);
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
  events_.Remove(w.process.pidfd.get());
  w.process.pidfd.reset();
  WorkerCrash crash;
  if (wait_status.ok()) {
    crash = WorkerCrash::FromWaitStatus(w.process.pid, *wait_status);
  } else {
    crash.pid = w.process.pid;
    crash.cause = std::string(wait_status.status().message());
  }
  ReadHeartbeats(w);
  crash.stack = WorkerStack(std::move(w.crash_report));
  w.crash_report.clear();
  events_.Remove(w.crash_fd.get());
  w.crash_fd.reset();
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
  // (The pid comes with the Hello.)
  const bool never_ready = w.process.pid <= 0 && !w.killed();
  VLOG(1) << "procpool: remote worker at " << w.remote
          << " is gone: " << crash.Describe();
  if (never_ready && !w.shutdown_sent() && !state_.broken() &&
      w.assigned.empty() && LoseRemoteSlot(w.remote_slot, crash)) {
    workers_.Erase(id);
    return;
  }
  if (never_ready && !w.shutdown_sent() && !state_.broken()) {
    crash.idle = false;  // it never was a worker: "while idle" would mislead
    // As when a local worker cannot be started (S12): replacing it would
    // only fail again.
    BreakPool(absl::StrCat("A remote worker could not be started at ",
                           w.remote),
              crash);
    workers_.Erase(id);
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
  const bool expected = w.assigned.empty() && !w.killed() &&
                        (w.shutdown_sent() || retired) && clean_exit;
  if (w.hung) {
    crash.cause = absl::StrCat("stopped responding: no heartbeat for ",
                               absl::FormatDuration(config_.heartbeat_timeout),
                               " (Options::heartbeat_timeout)");
  }
  if (w.never_started) {
    crash.cause = absl::StrCat(
        "never started: no hello within ",
        absl::FormatDuration(config_.start_timeout),
        " of its launch (Options::worker_start_timeout): a static "
        "initializer that blocks, or a fork child that inherited a lock held "
        "at fork time; raise the timeout if starting takes longer");
    crash.idle = false;  // it never was a worker: "while idle" would mislead
  }
  if (!expected && !state_.broken() && SettleDeadWorker(w, crash)) {
    workers_.Erase(id);
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
  workers_.Erase(id);
}

bool Pool::SettleDeadWorker(Worker& w, const WorkerCrash& crash) {
  {
    absl::MutexLock lock(&mu_);
    if (terminate_signal_ != 0) return false;  // TerminateWorkers()/KillWorkers()
  }
  const bool on_purpose = w.timed_out_work_id != 0 || !w.interrupted.empty();
  const bool replace =
      config_.on_worker_death == WorkerDeathPolicy::kReplaceWorker;
  if (!on_purpose && !replace) return false;
  std::vector<WorkItem> again;
  for (Assigned& a : w.assigned) {
    const std::shared_ptr<StateBase>& state = a.item.state;
    if (a.work_id == w.timed_out_work_id) {
      completions_.Error(
          state, std::make_exception_ptr(TimeoutError(absl::StrCat(
                     "task ", a.item.task, " (work id ", a.work_id,
                     ") exceeded its timeout of ",
                     absl::FormatDuration(a.item.timeout), "; its worker (pid ",
                     w.process.pid, ") was killed and is replaced"))));
    } else if (std::find(w.interrupted.begin(), w.interrupted.end(),
                         a.work_id) != w.interrupted.end()) {
      completions_.Cancel(state);
    } else if (on_purpose) {
      TakeBackArgs(a);
      again.push_back(std::move(a.item));  // not its fault: run it elsewhere
    } else if (a.item.retries_left > 0) {
      --a.item.retries_left;
      TakeBackArgs(a);
      again.push_back(std::move(a.item));
    } else {
      WorkerCrash mine = crash;
      mine.task_name = a.item.task;
      mine.work_id = static_cast<int64_t>(a.work_id);
      mine.idle = false;
      completions_.Error(state, std::make_exception_ptr(WorkerDiedError(
          "The worker running this task died; the pool replaced it", mine)));
    }
  }
  w.assigned.clear();
  ++restarts_;
  if (!on_purpose) {
    LOG(WARNING) << "procpool: replacing a dead worker (" << crash.Describe()
                 << "); " << again.size() << " task(s) will run again";
  }
  Requeue(std::move(again));
  return true;
}

void Pool::Requeue(std::vector<WorkItem> items) {
  absl::MutexLock lock(&mu_);
  for (auto it = items.rbegin(); it != items.rend(); ++it) {
    it->requeued = true;
    pending_.push_front(std::move(*it));
  }
}

void Pool::ProcessInterrupts() {
  std::vector<std::weak_ptr<StateBase>> requests;
  {
    absl::MutexLock lock(&mu_);
    if (interrupts_.empty()) return;
    requests.swap(interrupts_);
  }
  for (const auto& weak : requests) {
    std::shared_ptr<StateBase> state = weak.lock();
    if (state == nullptr) continue;
    bool found = false;
    for (auto& [id, w] : workers_) {
      for (const Assigned& a : w.assigned) {
        if (a.item.state != state) continue;
        found = true;
        w.interrupted.push_back(a.work_id);
        VLOG(1) << "procpool: interrupting " << a.item.task << " (work id "
                << a.work_id << "); killing worker pid " << w.process.pid;
        if (w.signal_sent != SIGKILL) KillWorker(w, SIGKILL);
      }
    }
    if (found) continue;
    // Put back after a worker death and not handed out again yet.
    bool dropped = false;
    {
      absl::MutexLock lock(&mu_);
      for (auto it = pending_.begin(); it != pending_.end(); ++it) {
        if (it->state == state) {
          pending_.erase(it);
          dropped = true;
          break;
        }
      }
    }
    if (dropped) completions_.Cancel(std::move(state));
  }
}

}  // namespace internal
}  // namespace procpool
