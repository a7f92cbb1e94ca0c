// What the pool tells about its workers: statistics (Stats(), filled by the
// manager on request) and the live pids (WorkerPids()).
#include "executor/internal/pool.h"

namespace procpool {
namespace internal {

std::vector<pid_t> Pool::WorkerPids() const {
  absl::MutexLock lock(&mu_);
  return live_pids_;
}

void Pool::UpdateLivePids() {
  std::vector<pid_t> pids;
  for (const auto& [id, w] : workers_) {
    if (w.remote.empty()) pids.push_back(w.process.pid);
  }
  absl::MutexLock lock(&mu_);
  live_pids_ = std::move(pids);
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
