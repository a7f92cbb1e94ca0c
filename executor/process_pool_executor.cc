#include "executor/process_pool_executor.h"

#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/auth/key_file.h"
#include "core/cluster.h"
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

ABSL_FLAG(std::vector<std::string>, procpool_remote_workers, {},
          "Remote worker slots HOST:PORT,... (daemons started with "
          "procpool_worker --listen) when Options::remote_workers is empty.");
ABSL_FLAG(std::string, procpool_auth_key_file, "",
          "The shared key file for remote workers when "
          "Options::auth_key_file is empty.");

namespace procpool {
namespace {

// Remote workers (issue 5): validates the options and fills the config.
// A cluster's slots (core/cluster.h) stand in where Options and the flags name
// no remote workers, unless Options::transport asks for a local transport.
// max_workers then takes the first that many (they are interleaved across
// the ranks).
const internal::ClusterWorkers* UseClusterWorkers(
    const Options& options, std::vector<std::string>& slots,
    std::vector<std::string>& labels, std::string& key) {
  const internal::ClusterWorkers* cluster = internal::GetClusterWorkers();
  if (cluster == nullptr || cluster->addresses.empty()) return nullptr;
  if (!options.transport.empty() && options.transport != "capnp") {
    return nullptr;
  }
  size_t n = cluster->addresses.size();
  if (options.max_workers.has_value()) {
    if (*options.max_workers > static_cast<int>(n)) {
      throw std::invalid_argument(absl::StrCat(
          "max_workers (", *options.max_workers, ") is more than the ", n,
          " worker slot(s) ", cluster->launcher,
          " started for this job: launch more ranks, raise "
          "--procpool_cluster_slots_per_rank, or leave max_workers unset"));
    }
    if (*options.max_workers > 0) n = static_cast<size_t>(*options.max_workers);
  }
  slots.assign(cluster->addresses.begin(), cluster->addresses.begin() + n);
  labels.assign(cluster->labels.begin(),
                cluster->labels.begin() +
                    std::min(n, cluster->labels.size()));
  key = cluster->key;
  return cluster;
}

void ConfigureRemote(const Options& options, internal::PoolConfig& config) {
  std::vector<std::string> slots = options.remote_workers;
  if (slots.empty()) slots = absl::GetFlag(FLAGS_procpool_remote_workers);
  std::vector<std::string> labels;
  std::string cluster_key;
  const internal::ClusterWorkers* cluster =
      slots.empty() ? UseClusterWorkers(options, slots, labels, cluster_key)
                    : nullptr;
  if (slots.empty()) return;
  for (const std::string& slot : slots) {
    const size_t colon = slot.rfind(':');
    int port = -1;
    if (colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(slot.substr(colon + 1), &port) || port <= 0 ||
        port > 65535) {
      throw std::invalid_argument(absl::StrCat(
          "remote worker \"", slot,
          "\" is not HOST:PORT with a port in 1-65535 (Options::remote_workers "
          "or --procpool_remote_workers)"));
    }
  }
  if (!options.transport.empty() && options.transport != "capnp") {
    throw std::invalid_argument(absl::StrCat(
        "remote workers need the capnp transport, not \"", options.transport,
        "\": leave Options::transport empty or set it to \"capnp\""));
  }
  if (!cluster && options.max_workers.has_value() &&
      *options.max_workers != static_cast<int>(slots.size())) {
    throw std::invalid_argument(absl::StrCat(
        "max_workers (", *options.max_workers, ") differs from the ",
        slots.size(), " remote worker slot(s); leave it unset"));
  }
  std::string key_file = options.auth_key_file.empty()
                             ? absl::GetFlag(FLAGS_procpool_auth_key_file)
                             : options.auth_key_file;
  if (key_file.empty() && !cluster) {
    throw std::invalid_argument(
        "remote workers need a shared key: set Options::auth_key_file or "
        "--procpool_auth_key_file to the file the daemons read with "
        "--auth_key_file");
  }
  // A cluster's daemons hold the key its bootstrap broadcast.
  absl::StatusOr<std::string> key =
      cluster ? absl::StatusOr<std::string>(std::move(cluster_key))
              : auth::ReadKeyFile(key_file);
  if (!key.ok()) throw std::invalid_argument(std::string(key.status().message()));
  absl::StatusOr<Transport*> t = GetTransport("capnp");
  if (!t.ok()) throw std::invalid_argument(std::string(t.status().message()));
  if (options.remote_heartbeat_timeout <= absl::ZeroDuration() ||
      options.remote_connect_timeout <= absl::ZeroDuration()) {
    throw std::invalid_argument(
        "remote_heartbeat_timeout and remote_connect_timeout must be positive");
  }
  config.transport = *t;
  config.max_workers = static_cast<int>(slots.size());
  config.remote_workers = std::move(slots);
  config.remote_worker_labels = std::move(labels);
  config.remote.key = *std::move(key);
  config.remote.use_tls = cluster ? cluster->use_tls : options.remote_tls;
  config.remote.tls_ca_file =
      cluster ? cluster->tls_ca_file : options.remote_tls_ca_file;
  if (cluster != nullptr && cluster->use_tls) {
    config.remote_tls_server_names.assign(
        cluster->tls_server_names.begin(),
        cluster->tls_server_names.begin() +
            std::min(config.remote_workers.size(),
                     cluster->tls_server_names.size()));
  }
  config.remote.heartbeat_timeout = options.remote_heartbeat_timeout;
  config.remote.connect_timeout = options.remote_connect_timeout;
}

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
  positive(options.worker_start_timeout, "worker_start_timeout");
  if (options.max_memory_bytes_per_worker < 0 ||
      options.max_rss_growth_bytes < 0) {
    throw std::invalid_argument(
        "max_memory_bytes_per_worker and max_rss_growth_bytes must be >= 0");
  }
  config.on_worker_death = options.on_worker_death;
  config.max_retries = options.max_retries;
  config.idle_timeout = options.idle_timeout;
  config.heartbeat_timeout = options.heartbeat_timeout;
  config.start_timeout = options.worker_start_timeout;
  config.max_memory_bytes_per_worker = options.max_memory_bytes_per_worker;
  config.max_rss_growth_bytes = options.max_rss_growth_bytes;
  // A leak guard wants resident memory to mean live memory (options.h).
  config.keep_freed_memory = options.workers_keep_freed_memory &&
                             options.max_rss_growth_bytes == 0;
  ConfigureRemote(options, config);
  if (options.worker_binary.empty()) {
    config.worker_binary = SelfExecutable();
  } else {
    config.worker_binary = options.worker_binary;
  }
  return config;
}

}  // namespace

ProcessPoolExecutor::ProcessPoolExecutor(Options options)
    : pool_(std::make_unique<internal::Pool>(MakeConfig(options))),
      arrays_way_(pool_->ArraysByReference() ? ArrayTransfer::Way::kByReference
                                             : ArrayTransfer::Way::kByValue) {}

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
