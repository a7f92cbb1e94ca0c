// The parts of Pool that go beyond CPython (issue 6): per-task deadlines,
// interrupting running work, replacing dead workers instead of breaking the
// pool, idle timeouts, heartbeats, memory recycling and statistics. All of
// it runs on the manager thread, like the rest of the pool's worker handling
// (see pool.h for who owns what).
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "executor/internal/pool.h"
#include "glog/logging.h"

namespace procpool {
namespace internal {

int64_t ResidentBytes(pid_t pid) {
  std::ifstream statm(absl::StrCat("/proc/", pid, "/statm"));
  int64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

void Pool::CheckDeadlines() {
  const absl::Time now = absl::Now();
  for (auto& [id, w] : workers_) {
    if (w.killed) continue;
    if (!w.assigned.empty() && w.assigned.front().deadline <= now) {
      w.timed_out_work_id = w.assigned.front().work_id;
      VLOG(1) << "procpool: task " << w.assigned.front().item.task
              << " (work id " << w.timed_out_work_id
              << ") overran its timeout; killing worker pid " << w.process.pid;
      KillWorker(w, SIGKILL);
      continue;
    }
    if (config_.heartbeat_timeout != absl::InfiniteDuration() &&
        now - w.last_heartbeat > config_.heartbeat_timeout) {
      LOG(WARNING) << "procpool: worker pid " << w.process.pid
                   << " sent no heartbeat for "
                   << absl::FormatDuration(now - w.last_heartbeat)
                   << "; treating it as dead";
      w.hung = true;
      KillWorker(w, SIGKILL);
      continue;
    }
    if (config_.idle_timeout != absl::InfiniteDuration() && w.ready &&
        !w.shutdown_sent && w.assigned.empty() &&
        now - w.idle_since >= config_.idle_timeout) {
      Retire(w, "idle timeout");
    }
  }
}

void Pool::Retire(Worker& w, const char* why) {
  if (w.shutdown_sent || w.channel == nullptr) return;
  VLOG(1) << "procpool: retiring worker pid " << w.process.pid << " (" << why
          << ")";
  w.shutdown_sent = true;
  w.kill_deadline = absl::Now() + kExitGrace;
  absl::Status sent = w.channel->Send(wire::EncodeMessage(wire::Shutdown{}));
  if (!sent.ok()) {
    OnChannelError(w, sent);
    return;
  }
  UpdateEvents(w);
}

void Pool::AfterResult(Worker& w) {
  if (config_.max_rss_growth_bytes <= 0 || w.base_rss < 0 || w.shutdown_sent ||
      !w.remote.empty()) {
    return;
  }
  int64_t rss = ResidentBytes(w.process.pid);
  if (rss - w.base_rss > config_.max_rss_growth_bytes) {
    LOG(INFO) << "procpool: worker pid " << w.process.pid << " grew by "
              << (rss - w.base_rss) << " resident bytes; recycling it";
    ++restarts_;
    Retire(w, "resident memory grew past Options::max_rss_growth_bytes");
  }
}

void Pool::ReadHeartbeats(Worker& w) {
  if (w.crash_fd < 0) return;
  char buf[4096];
  bool beat = false;
  while (true) {
    ssize_t n = read(w.crash_fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] == '\0') {
        beat = true;
      } else {
        w.crash_report.push_back(buf[i]);
      }
    }
  }
  if (beat) w.last_heartbeat = absl::Now();
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
      completions_.Error(state, std::make_exception_ptr(TimeoutError(absl::StrCat(
          "task ", a.item.task, " (work id ", a.work_id,
          ") exceeded its timeout of ", absl::FormatDuration(a.item.timeout),
          "; its worker (pid ", w.process.pid,
          ") was killed and is replaced"))));
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

void Pool::FillStatsIfRequested() {
  {
    absl::MutexLock lock(&mu_);
    if (stats_requested_ == stats_served_) return;
  }
  std::vector<WorkerStats> stats;
  for (const auto& [id, w] : workers_) {
    WorkerStats s;
    s.pid = w.process.pid;
    s.tasks_run = w.tasks_run;
    if (!w.assigned.empty()) s.current_task = w.assigned.front().item.task;
    s.rss_bytes = w.remote.empty() ? ResidentBytes(w.process.pid) : 0;
    s.restarts = restarts_;
    stats.push_back(std::move(s));
  }
  absl::MutexLock lock(&mu_);
  stats_ = std::move(stats);
  stats_served_ = stats_requested_;
}

std::vector<WorkerStats> Pool::Stats() {
  int64_t ticket;
  {
    absl::MutexLock lock(&mu_);
    if (!manager_started_ || !manager_.joinable()) return {};
    ticket = ++stats_requested_;
  }
  WakeManager();
  absl::MutexLock lock(&mu_);
  auto served = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stats_served_ >= ticket;
  };
  mu_.AwaitWithTimeout(absl::Condition(&served), absl::Seconds(10));
  return stats_;
}

}  // namespace internal
}  // namespace procpool
