// One unit of work as the pool queues it (internal).
#ifndef PROCPOOL_EXECUTOR_INTERNAL_WORK_ITEM_H_
#define PROCPOOL_EXECUTOR_INTERNAL_WORK_ITEM_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "executor/internal/future_state.h"

namespace procpool {
namespace internal {

// A task and one encoded argument tuple per element (one for Submit, a chunk
// for Map), and the state its outcome completes.
struct WorkItem {
  std::string task;
  std::vector<std::string> args;
  std::shared_ptr<StateBase> state;
  // Per-task timeout (TaskOptions / MapOptions::chunk_timeout).
  absl::Duration timeout = absl::InfiniteDuration();
  // Runs left after a worker death (Options::max_retries).
  int retries_left = 0;
  // Already RUNNING: handed out before, put back after its worker died.
  bool requeued = false;
};

}  // namespace internal
}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_INTERNAL_WORK_ITEM_H_
