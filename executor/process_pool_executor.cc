#include "executor/process_pool_executor.h"

#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "executor/internal/pool.h"
#include "transport/transport.h"

ABSL_FLAG(std::string, procpool_transport, "shm",
          "Transport between the parent and its workers when "
          "Options::transport is empty (see procpool::KnownTransports()).");
ABSL_FLAG(std::string, procpool_start_method, "forkserver",
          "How workers start when Options::start_method is unset: fork, "
          "forkserver or spawn.");
ABSL_FLAG(int, procpool_max_workers, 0,
          "Workers per pool when Options::max_workers is unset; 0: the CPUs "
          "usable by this process.");

namespace procpool {
namespace {

int UsableCpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

StartMethod ParseStartMethod(const std::string& name) {
  if (name == "fork") return StartMethod::kFork;
  if (name == "forkserver") return StartMethod::kForkServer;
  if (name == "spawn") return StartMethod::kSpawn;
  throw std::invalid_argument(absl::StrCat(
      "unknown start method \"", name,
      "\" (--procpool_start_method); known: fork, forkserver, spawn"));
}

internal::PoolConfig MakeConfig(const Options& options) {
  internal::PoolConfig config;
  if (options.max_workers.has_value()) {
    if (*options.max_workers <= 0) {
      throw std::invalid_argument(absl::StrCat(
          "max_workers must be greater than 0 (got ", *options.max_workers,
          ")"));
    }
    config.max_workers = *options.max_workers;
  } else {
    int flag = absl::GetFlag(FLAGS_procpool_max_workers);
    if (flag < 0) {
      throw std::invalid_argument(absl::StrCat(
          "--procpool_max_workers must be >= 0 (got ", flag, ")"));
    }
    config.max_workers = flag > 0 ? flag : UsableCpus();
  }
  std::string transport = options.transport.empty()
                              ? absl::GetFlag(FLAGS_procpool_transport)
                              : options.transport;
  absl::StatusOr<Transport*> t = GetTransport(transport);
  if (!t.ok()) throw std::invalid_argument(std::string(t.status().message()));
  config.transport = *t;
  config.start_method =
      options.start_method.has_value()
          ? *options.start_method
          : ParseStartMethod(absl::GetFlag(FLAGS_procpool_start_method));
  if (config.start_method == StartMethod::kFork &&
      config.transport->name() == "capnp") {
    // Seen to deadlock: the parent runs a KJ event-loop thread per channel,
    // and a fork() taken while one of them holds a lock hangs the child.
    throw std::invalid_argument(
        "the capnp transport cannot be used with the kFork start method (it "
        "runs event-loop threads that a fork() would copy mid-flight); use "
        "kForkServer or kSpawn");
  }
  if (options.max_tasks_per_child.has_value()) {
    if (*options.max_tasks_per_child <= 0) {
      throw std::invalid_argument(absl::StrCat(
          "max_tasks_per_child must be >= 1 (got ",
          *options.max_tasks_per_child, ")"));
    }
    if (config.start_method == StartMethod::kFork) {
      throw std::invalid_argument(
          "max_tasks_per_child is incompatible with the kFork start method: "
          "choose kSpawn or kForkServer");
    }
    config.max_tasks_per_child = *options.max_tasks_per_child;
  }
  if (options.initializer.has_value()) {
    if (options.initializer->task.empty() ||
        internal::FindTaskByName(options.initializer->task) == nullptr) {
      throw std::invalid_argument(absl::StrCat(
          "the initializer is not a registered task: ",
          internal::NotRegisteredMessage()));
    }
    config.initializer =
        wire::CallSpec{options.initializer->task, options.initializer->args};
  }
  if (options.max_retries < 0) {
    throw std::invalid_argument(absl::StrCat(
        "max_retries must be >= 0 (got ", options.max_retries, ")"));
  }
  if (options.max_retries > 0 &&
      options.on_worker_death != WorkerDeathPolicy::kReplaceWorker) {
    throw std::invalid_argument(
        "max_retries needs on_worker_death = WorkerDeathPolicy::kReplaceWorker");
  }
  auto positive = [](absl::Duration d, const char* name) {
    if (d <= absl::ZeroDuration()) {
      throw std::invalid_argument(
          absl::StrCat(name, " must be positive (or infinite to disable)"));
    }
  };
  positive(options.idle_timeout, "idle_timeout");
  positive(options.heartbeat_timeout, "heartbeat_timeout");
  if (options.max_memory_bytes_per_worker < 0 ||
      options.max_rss_growth_bytes < 0) {
    throw std::invalid_argument(
        "max_memory_bytes_per_worker and max_rss_growth_bytes must be >= 0");
  }
  config.on_worker_death = options.on_worker_death;
  config.max_retries = options.max_retries;
  config.idle_timeout = options.idle_timeout;
  config.heartbeat_timeout = options.heartbeat_timeout;
  config.max_memory_bytes_per_worker = options.max_memory_bytes_per_worker;
  config.max_rss_growth_bytes = options.max_rss_growth_bytes;
  if (options.worker_binary.empty()) {
    config.worker_binary = SelfExecutable();
  } else {
    config.worker_binary = options.worker_binary;
  }
  return config;
}

}  // namespace

ProcessPoolExecutor::ProcessPoolExecutor(Options options)
    : pool_(std::make_unique<internal::Pool>(MakeConfig(options))) {}

ProcessPoolExecutor::~ProcessPoolExecutor() = default;

const internal::TaskInfo& ProcessPoolExecutor::FindTaskOrThrow(const void* fn) {
  const internal::TaskInfo* task = internal::FindTaskByFunction(fn);
  if (task == nullptr) throw Error(internal::NotRegisteredMessage());
  return *task;
}

void ProcessPoolExecutor::SubmitItem(internal::WorkItem item) {
  pool_->Submit(std::move(item));
}

void ProcessPoolExecutor::Shutdown(bool wait, bool cancel_futures) {
  pool_->Shutdown(wait, cancel_futures);
}

void ProcessPoolExecutor::TerminateWorkers() { pool_->SignalWorkers(SIGTERM); }

void ProcessPoolExecutor::KillWorkers() { pool_->SignalWorkers(SIGKILL); }

std::vector<pid_t> ProcessPoolExecutor::WorkerPids() const {
  return pool_->WorkerPids();
}

std::vector<WorkerStats> ProcessPoolExecutor::Stats() const {
  return pool_->Stats();
}

}  // namespace procpool
