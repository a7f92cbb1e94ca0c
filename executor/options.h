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

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/time/time.h"
#include "core/start_method.h"
#include "core/task.h"

// --procpool_transport: the transport when Options::transport is empty.
ABSL_DECLARE_FLAG(std::string, procpool_transport);
// --procpool_start_method: fork | forkserver | spawn.
ABSL_DECLARE_FLAG(std::string, procpool_start_method);
// --procpool_max_workers: the worker count when Options::max_workers is
// unset; 0 means the CPUs usable by this process.
ABSL_DECLARE_FLAG(int, procpool_max_workers);
// --procpool_remote_workers: HOST:PORT,... when Options::remote_workers is
// empty.
ABSL_DECLARE_FLAG(std::vector<std::string>, procpool_remote_workers);
// --procpool_auth_key_file: when Options::auth_key_file is empty.
ABSL_DECLARE_FLAG(std::string, procpool_auth_key_file);

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

// What a worker's unexpected death does to the pool.
enum class WorkerDeathPolicy {
  // CPython's: the pool breaks; every pending and running future fails with
  // BrokenProcessPool and later Submit throws it.
  kBreakPool,
  // Only the futures the dead worker held fail, with WorkerDiedError (which
  // carries the crash report), unless Options::max_retries allows running
  // them again; a fresh worker takes its place on demand and the pool goes on.
  kReplaceWorker,
};

struct Options {
  // Unset: --procpool_max_workers, else the CPUs usable by this process.
  // <= 0: std::invalid_argument.
  std::optional<int> max_workers;
  // "shm" (the default), "unix" or "capnp" (KnownTransports() lists what is
  // linked); empty: --procpool_transport.
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

  // Beyond CPython (each off by default, so CPython's semantics hold).

  // See WorkerDeathPolicy.
  WorkerDeathPolicy on_worker_death = WorkerDeathPolicy::kBreakPool;
  // With kReplaceWorker: a task that was on a worker that died is run again
  // up to this many times before its future fails with WorkerDiedError.
  // Tasks must then be safe to run more than once. < 0: invalid_argument.
  int max_retries = 0;
  // A worker idle for this long exits; workers come back on demand.
  absl::Duration idle_timeout = absl::InfiniteDuration();
  // A worker that sends no heartbeat for this long (stopped with SIGSTOP, or
  // stuck outside a task) is treated as dead: killed, and then handled as
  // on_worker_death says. Workers beat every heartbeat_timeout / 4.
  absl::Duration heartbeat_timeout = absl::InfiniteDuration();
  // A local worker that has not said hello this long after it was started
  // (stuck in a static initializer, or a fork child that inherited a lock
  // held at fork time) is killed, and the pool treats it as a worker that
  // died starting: it breaks, or with kReplaceWorker starts another. The
  // initializer runs after the hello and is not bounded by this. Infinite:
  // wait for ever (CPython's behaviour). <= 0: std::invalid_argument.
  // (Remote workers: remote_connect_timeout.)
  absl::Duration worker_start_timeout = absl::Seconds(60);
  // Caps each worker's address space (RLIMIT_AS): an allocation past it
  // fails, and the task fails with MemoryLimitError. 0: no cap.
  int64_t max_memory_bytes_per_worker = 0;
  // Recycles a worker whose resident memory grew by more than this since it
  // started (checked after each task; loky's leak guard). 0: never.
  int64_t max_rss_growth_bytes = 0;
  // Workers keep the memory their heap frees (glibc never mmaps there, and
  // freed blocks stay, up to 256 MiB) and give it all back once they have
  // waited a second for work: a big message then costs no fresh pages (the
  // kernel zeroing them was a third of a 64 MiB echo). While busy, a worker's
  // resident size is its high-water mark. Off where max_rss_growth_bytes is
  // set (that guard reads resident memory as live memory). With kFork the
  // worker allocates from the forking thread's arena, where blocks over
  // 64 MiB are still mmapped.
  bool workers_keep_freed_memory = true;

  // Workers on other hosts (Cap'n Proto over TCP), each "HOST:PORT" of a
  // daemon started there with `procpool_worker --listen=HOST:PORT
  // --auth_key_file=FILE` (the same tasks linked in; README "Remote
  // workers"). One worker slot per entry; repeat an address for several
  // workers on one host. Non-empty: the pool's workers are exactly these
  // (no local ones; max_workers must be unset or equal to the count) and
  // the transport is "capnp". Empty: --procpool_remote_workers
  // (comma-separated); both empty on rank 0 of a cluster job
  // (--procpool_cluster=mpi, //cluster:mpi): the cluster's worker slots, with
  // the job's key, unless `transport` names a local transport ("shm",
  // "unix"); max_workers may then take fewer slots than there are.
  std::vector<std::string> remote_workers;
  // The shared key for remote workers: a file readable only by its owner,
  // the same on every host. Empty: --procpool_auth_key_file.
  std::string auth_key_file;
  // TLS (kj-tls) under the authentication; remote_tls_ca_file is the PEM
  // certificate(s) to trust (empty: the system's store).
  bool remote_tls = false;
  std::string remote_tls_ca_file;
  // A remote worker that sends nothing for this long (its host is down or
  // unreachable) is dead: its futures fail as for a local worker's death.
  absl::Duration remote_heartbeat_timeout = absl::Seconds(2);
  // Bounds connecting to and authenticating with a daemon.
  absl::Duration remote_connect_timeout = absl::Seconds(10);
};

// A snapshot of one worker (ProcessPoolExecutor::Stats()).
struct WorkerStats {
  int pid = -1;
  int64_t tasks_run = 0;            // calls completed by this worker
  std::string current_task;         // "" when idle
  int64_t rss_bytes = 0;            // resident memory now (0 if unknown)
  int64_t restarts = 0;             // workers replaced or recycled by the pool
};

// Per-task options (ProcessPoolExecutor::SubmitWith).
struct TaskOptions {
  // A task that runs longer than this has its worker killed (and replaced);
  // its future fails with TimeoutError and the pool stays usable.
  absl::Duration timeout = absl::InfiniteDuration();
};

struct MapOptions {
  int chunksize = 1;                                   // >= 1
  absl::Duration timeout = absl::InfiniteDuration();  // from the Map() call
  // 0: submit every chunk at once; N > 0: at most N chunks in flight, the
  // input read lazily; < 0: std::invalid_argument.
  int buffersize = 0;
  // Per-chunk timeout, as TaskOptions::timeout for each chunk.
  absl::Duration chunk_timeout = absl::InfiniteDuration();
  // Called on the iterating thread with the number of elements consumed so
  // far, each time the iteration moves past an element.
  std::function<void(size_t done)> on_progress;
};

}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_OPTIONS_H_
