// Worker health: heartbeats (a worker that stops sending them is killed as
// hung), workers that never say hello (killed after the start timeout), idle
// workers (retired after Options::idle_timeout) and memory
// (a worker whose resident memory grew past Options::max_rss_growth_bytes is
// recycled).
#include <signal.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "executor/internal/crash_pipe.h"
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

bool Pool::KillIfHung(Worker& w, absl::Time now) {
  if (config_.heartbeat_timeout == absl::InfiniteDuration() ||
      now - w.last_heartbeat <= config_.heartbeat_timeout) {
    return false;
  }
  LOG(WARNING) << "procpool: worker pid " << w.process.pid
               << " sent no heartbeat for "
               << absl::FormatDuration(now - w.last_heartbeat)
               << "; treating it as dead";
  w.hung = true;
  KillWorker(w, SIGKILL);
  return true;
}

bool Pool::KillIfNeverStarted(Worker& w, absl::Time now) {
  if (w.greeted() || w.killed() || now < w.start_deadline) return false;
  LOG(WARNING) << "procpool: worker pid " << w.process.pid
               << " did not say hello within "
               << absl::FormatDuration(config_.start_timeout)
               << " of its start; killing it";
  w.never_started = true;
  KillWorker(w, SIGKILL);
  return true;
}

void Pool::RetireIfIdle(Worker& w, absl::Time now) {
  // (A ready worker whose channel closed is not retired: Retire() skips it.)
  if (config_.idle_timeout != absl::InfiniteDuration() &&
      w.state == WorkerState::kReady && w.assigned.empty() &&
      now - w.idle_since >= config_.idle_timeout) {
    Retire(w, "idle timeout");
  }
}

void Pool::ReadHeartbeats(Worker& w) {
  if (ReadCrashPipe(w.crash_fd.get(), &w.crash_report)) {
    w.last_heartbeat = absl::Now();
  }
}

void Pool::CheckMemory(Worker& w) {
  if (config_.max_rss_growth_bytes <= 0 || w.base_rss < 0 ||
      w.shutdown_sent() || !w.remote.empty()) {
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

}  // namespace internal
}  // namespace procpool
