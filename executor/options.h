// Options of a ProcessPoolExecutor, and the flags that supply their defaults.
//
// Example:
//   procpool::Options options;
//   options.max_workers = 4;
//   options.transport = "unix";
//   options.initializer = procpool::MakeCall(LoadModel, "/models/small");
//   procpool::ProcessPoolExecutor pool(options);
#ifndef PROCPOOL_EXECUTOR_OPTIONS_H_
#define PROCPOOL_EXECUTOR_OPTIONS_H_

#include <optional>
#include <string>
#include <utility>

#include "absl/flags/declare.h"
#include "absl/time/time.h"
#include "executor/task.h"
#include "worker/launcher.h"

// --procpool_transport: the transport when Options::transport is empty.
ABSL_DECLARE_FLAG(std::string, procpool_transport);
// --procpool_start_method: fork | forkserver | spawn.
ABSL_DECLARE_FLAG(std::string, procpool_start_method);
// --procpool_max_workers: the worker count when Options::max_workers is
// unset; 0 means the CPUs usable by this process.
ABSL_DECLARE_FLAG(int, procpool_max_workers);

namespace procpool {

// A registered function bound to encoded arguments (see MakeCall).
struct Call {
  std::string task;  // the registered name; empty if fn was not registered
  std::string args;  // the encoded argument tuple
};

// Binds `fn` to `args`, encoded now. Whether fn is registered is checked where
// the Call is used (ProcessPoolExecutor's constructor throws
// std::invalid_argument for an unregistered initializer).
template <typename R, typename... P, typename... A>
Call MakeCall(R (*fn)(P...), A&&... args) {
  const internal::TaskInfo* task =
      internal::FindTaskByFunction(reinterpret_cast<const void*>(fn));
  return Call{task ? task->name : std::string(),
              internal::EncodeArgs(fn, std::forward<A>(args)...)};
}

struct Options {
  // Unset: --procpool_max_workers, else the CPUs usable by this process.
  // <= 0: std::invalid_argument.
  std::optional<int> max_workers;
  // "unix" (and, as they land, "shm", "capnp"); empty: --procpool_transport.
  std::string transport;
  // Unset: --procpool_start_method (default kForkServer).
  std::optional<StartMethod> start_method;
  // Empty: this executable (its main must call procpool::Init).
  std::string worker_binary;
  // Runs once in each worker before its first task; if it throws or the
  // worker dies in it, the pool breaks.
  std::optional<Call> initializer;
  // A worker exits after this many tasks and a fresh one replaces it.
  // <= 0, or set together with kFork: std::invalid_argument.
  std::optional<int> max_tasks_per_child;
};

struct MapOptions {
  int chunksize = 1;                                   // >= 1
  absl::Duration timeout = absl::InfiniteDuration();  // from the Map() call
  // 0: submit every chunk at once; N > 0: at most N chunks in flight, the
  // input read lazily; < 0: std::invalid_argument.
  int buffersize = 0;
};

}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_OPTIONS_H_
