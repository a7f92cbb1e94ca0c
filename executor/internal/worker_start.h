// Starting a worker, without the pool: launching a local worker process
// (its channel, its crash-report pipe, the launcher) and choosing the slot a
// remote worker fills. The pool then records the worker (WorkerTable::Add),
// registers its descriptors and sends it its Config (pool_workers.cc).
//
// Example:
//   LaunchedWorker launched;
//   StartFailure failure;
//   if (!LaunchLocalWorker(transport, launcher, binary, &launched, &failure)) {
//     BreakPool(failure.message, failure.crash);  // S12
//   }
//
// Thread safety: no state of its own; the pool calls these under io_mu_.
// Ownership: a LaunchedWorker owns its pidfd and crash_fd (UniqueFd); the
// pool moves them into its Worker and closes them once the worker is reaped.
#ifndef PROCPOOL_EXECUTOR_INTERNAL_WORKER_START_H_
#define PROCPOOL_EXECUTOR_INTERNAL_WORKER_START_H_

#include <memory>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "core/errors.h"
#include "executor/internal/worker_table.h"
#include "transport/transport.h"
#include "worker/parent/launcher.h"

namespace procpool {
namespace internal {

// A local worker process just started.
struct LaunchedWorker {
  WorkerProcess process;
  std::unique_ptr<Channel> channel;  // the parent's end
  UniqueFd crash_fd;  // read end of its crash-report pipe (non-blocking)
};

// Why a worker could not be started: BrokenProcessPool's message and crash.
struct StartFailure {
  std::string message;
  WorkerCrash crash;
  // A resource ran out (descriptors, memory, processes: a
  // kResourceExhausted status), so that a later try may work.
  bool resource_exhausted = false;
};

// Creates a channel pair on `transport` and a crash-report pipe, and starts
// `binary` (or re-enters this executable, as the launcher does) on their
// child ends, which are closed here either way. Returns false, with
// *failure filled, if any step fails (nothing is left open then).
bool LaunchLocalWorker(Transport& transport, Launcher& launcher,
                       const std::string& binary, LaunchedWorker* out,
                       StartFailure* failure);

// The first of `slots` remote worker slots (PoolConfig::remote_workers'
// indices) that no worker in `table` fills and `lost` (shorter is fine) does
// not mark; -1 if there is none.
int FreeRemoteSlot(const WorkerTable& table, const std::vector<bool>& lost,
                   int slots);

}  // namespace internal
}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_INTERNAL_WORKER_START_H_
