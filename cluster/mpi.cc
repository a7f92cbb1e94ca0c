// The MPI bootstrap of a cluster job; the steps and decisions are in mpi.h.
#include "cluster/mpi.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cluster/control.h"
#include "cluster/launch_line.h"
#include "cluster/mpirun_watch.h"
#include "cluster/rank_record.h"
#include "common/unique_fd.h"
#include "core/cluster.h"
#include "glog/logging.h"
#include "worker/daemon/daemon.h"
#include "worker/init.h"

// Read from argv by the bootstrap (before absl::ParseCommandLine); defined so
// that ParseCommandLine accepts it.
ABSL_FLAG(int, procpool_cluster_slots_per_rank, 1,
          "With --procpool_cluster=mpi: worker slots each rank other than 0 "
          "serves; 0: the CPUs the rank is bound to.");

ABSL_FLAG(std::string, procpool_cluster_tls_cert_file, "",
          "With --procpool_cluster=mpi: the PEM certificate each worker rank "
          "serves TLS with (it must name that rank's host).");
ABSL_FLAG(std::string, procpool_cluster_tls_key_file, "",
          "With --procpool_cluster=mpi: the PEM key of that certificate.");
ABSL_FLAG(std::string, procpool_cluster_tls_ca_file, "",
          "With --procpool_cluster=mpi and TLS: the PEM certificate(s) rank 0 "
          "trusts (empty: the system's store).");

namespace procpool {
namespace {

constexpr size_t kKeySize = 32;

// Exits every rank with status 2; rank 0 (or a rank that cannot know its
// number) says why. The other ranks wait a second first: the first rank to
// exit non-zero makes mpirun (without --enable-recovery) kill the rest, and
// rank 0 must have written its message by then.
[[noreturn]] void Refuse(int rank, const std::string& why) {
  if (rank <= 0) {
    fprintf(stderr, "procpool: %s\n", why.c_str());
  } else {
    sleep(1);
  }
  fflush(stdout);
  fflush(stderr);
  _exit(2);
}

// This rank's number as the launcher set it (before MPI_Init); 0 if unknown.
int EnvRank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"}) {
    const char* v = getenv(name);
    if (v != nullptr && *v != '\0') return atoi(v);
  }
  return 0;
}

// How long mpirun has, after rank 0 exits, to end by itself.
constexpr absl::Duration kMpirunGrace = absl::Seconds(5);

// At rank 0's exit under mpirun. mpirun --enable-recovery's status is 0
// whatever the ranks' (measured with Open MPI 4.1.4): rank 0 says its own
// where a script sees it. And mpirun never ends after losing a host: a
// watcher ends it (cluster/mpirun_watch.h).
void AtExitUnderMpirun(int status, void*) {
  if (status != 0) {
    fprintf(stderr,
            "procpool: rank 0 exited with status %d (mpirun --enable-recovery "
            "returns 0 whatever the ranks' statuses)\n",
            status);
  }
  fflush(nullptr);
  const pid_t parent = getppid();
  if (cluster::IsMpirun(parent)) {
    cluster::EndMpirunIfItLingers(parent, kMpirunGrace);
  }
}

// Rank 0's `text` on every rank.
void Broadcast(std::string& text, int rank) {
  int size = static_cast<int>(text.size());
  MPI_Bcast(&size, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (rank != 0) text.resize(static_cast<size_t>(size));
  if (size > 0) MPI_Bcast(text.data(), size, MPI_CHAR, 0, MPI_COMM_WORLD);
}

// Every rank's `line`, at rank 0 (empty elsewhere).
std::vector<std::string> Gather(const std::string& line, int rank, int size) {
  int length = static_cast<int>(line.size());
  std::vector<int> lengths(rank == 0 ? size : 0);
  MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0,
             MPI_COMM_WORLD);
  std::vector<int> offsets(lengths.size());
  int total = 0;
  for (size_t i = 0; i < lengths.size(); ++i) {
    offsets[i] = total;
    total += lengths[i];
  }
  std::string all(static_cast<size_t>(total), '\0');
  MPI_Gatherv(line.data(), length, MPI_CHAR, all.data(), lengths.data(),
              offsets.data(), MPI_CHAR, 0, MPI_COMM_WORLD);
  std::vector<std::string> lines;
  for (size_t i = 0; i < lengths.size(); ++i) {
    lines.push_back(all.substr(offsets[i], lengths[i]));
  }
  return lines;
}

std::string HostName() {
  char name[256] = "?";
  gethostname(name, sizeof(name) - 1);
  name[sizeof(name) - 1] = '\0';
  return name;
}

// A worker rank after MPI_Finalize: serves until rank 0 ends; never returns.
[[noreturn]] void ServeAsWorkerRank(int rank, UniqueFd control,
                                    UniqueFd listen_fd,
                                    const std::string& bound,
                                    const std::string& key,
                                    const MpiClusterOptions& cluster) {
  DaemonOptions options;
  options.listen = bound;
  options.key = key;
  options.use_tls = !cluster.tls_cert_file.empty();
  options.tls_cert_file = cluster.tls_cert_file;
  options.tls_key_file = cluster.tls_key_file;
  options.announce = false;
  options.log_name = absl::StrCat("procpool cluster rank ", rank);
  DaemonWatch watch;
  watch.fd = control.get();
  watch.on_readable = [&]() -> std::optional<int> {
    const cluster::ParentEnd end = cluster::ReadParentEnd(control.get());
    if (end.said_goodbye) {
      VLOG(1) << options.log_name << ": " << end.what << "; exiting";
      return 0;
    }
    LOG(WARNING) << options.log_name << ": lost rank 0: " << end.what
                 << "; stopping its workers and exiting with status 3";
    return 3;
  };
  const int code = ServeParents(std::move(listen_fd), bound, options, &watch);
  fflush(stdout);
  fflush(stderr);
  _exit(code);
}

void RunMpiBootstrap(int argc, char** argv, const MpiClusterOptions& options) {
  const cluster::LaunchLine line = cluster::CheckLaunchLine(&getenv);
  if (!line.problem.empty()) {
    Refuse(EnvRank(), line.problem);
  }
  if (!google::IsGoogleLoggingInitialized()) {
    google::InitGoogleLogging(argv[0]);
  }
  if (MPI_Init(nullptr, nullptr) != MPI_SUCCESS) {
    Refuse(0, "MPI_Init failed (see MPI's message above)");
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size == 1) {
    MPI_Finalize();
    VLOG(1) << "procpool: --procpool_cluster=mpi with one rank: local workers";
    return;
  }
  if (rank != 0) {
    FLAGS_logtostderr = true;
    FLAGS_minloglevel = google::GLOG_WARNING;
  }
  const absl::Time deadline = absl::Now() + options.bootstrap_timeout;

  // 1. Rank 0's key and control addresses; an error text instead of the
  //    addresses if it cannot listen.
  std::string key(kKeySize, '\0');
  std::optional<cluster::ControlListener> listener;
  std::string addresses;
  if (rank == 0) {
    if (getrandom(key.data(), key.size(), 0) != static_cast<ssize_t>(kKeySize)) {
      addresses = "error: getrandom failed";
    } else if (absl::StatusOr<cluster::ControlListener> l =
                   cluster::ListenForRanks();
               l.ok()) {
      listener = *std::move(l);
      addresses = absl::StrJoin(listener->addresses, ",");
    } else {
      addresses = absl::StrCat("error: ", l.status().message());
    }
  }
  Broadcast(key, rank);
  Broadcast(addresses, rank);

  // 2. Every other rank: control connection, daemon listener, report.
  UniqueFd control;
  UniqueFd daemon_fd;
  std::string bound;
  cluster::RankRecord record;
  record.rank = rank;
  if (rank != 0) {
    absl::StatusOr<int> slots =
        options.slots_per_rank > 0
            ? absl::StatusOr<int>(options.slots_per_rank)
            : cluster::SlotsPerRank("0");
    std::string local_ip;
    absl::StatusOr<UniqueFd> c =
        absl::StartsWith(addresses, "error")
            ? absl::StatusOr<UniqueFd>(absl::UnavailableError("rank 0 failed"))
            : cluster::ConnectToParent(absl::StrSplit(addresses, ','), key,
                                       rank, absl::Seconds(5), &local_ip);
    const bool tls = !options.tls_cert_file.empty();
    if (!c.ok()) {
      record.error = std::string(c.status().message());
    } else if (tls && (access(options.tls_cert_file.c_str(), R_OK) != 0 ||
                       access(options.tls_key_file.c_str(), R_OK) != 0)) {
      record.error = absl::StrCat("cannot read its TLS certificate ",
                                  options.tls_cert_file, " or key ",
                                  options.tls_key_file, " on ", HostName());
    } else if (absl::StatusOr<UniqueFd> d =
                   ListenForParents(absl::StrCat(local_ip, ":0"), &bound);
               !d.ok()) {
      record.error = absl::StrCat("its worker daemon cannot listen: ",
                                  d.status().message());
    } else {
      control = *std::move(c);
      daemon_fd = *std::move(d);
      record.address = bound;
      record.slots = *slots;
      record.host = HostName();
    }
  }
  const std::vector<std::string> lines =
      Gather(cluster::EncodeRankRecord(record), rank, size);

  // 3. Rank 0 checks the reports and the control connections.
  std::string verdict;
  std::vector<cluster::RankRecord> records;
  std::vector<UniqueFd> controls;
  if (rank == 0) {
    std::vector<std::string> problems;
    if (absl::StartsWith(addresses, "error")) problems.push_back(addresses);
    for (int r = 1; r < size; ++r) {
      absl::StatusOr<cluster::RankRecord> rec =
          cluster::DecodeRankRecord(r, lines[r]);
      if (!rec.ok()) {
        problems.push_back(std::string(rec.status().message()));
      } else if (!rec->error.empty()) {
        problems.push_back(absl::StrCat("rank ", r, ": ", rec->error));
      } else {
        records.push_back(*std::move(rec));
      }
    }
    if (problems.empty()) {
      absl::StatusOr<std::vector<UniqueFd>> accepted =
          cluster::AcceptRanks(listener->fd.get(), key, size, deadline);
      if (accepted.ok()) {
        controls = *std::move(accepted);
      } else {
        problems.push_back(std::string(accepted.status().message()));
      }
    }
    if (!problems.empty()) {
      verdict = absl::StrCat("the cluster bootstrap failed: ",
                             absl::StrJoin(problems, "; "));
    }
    listener.reset();
  }
  Broadcast(verdict, rank);
  MPI_Finalize();

  // 4. Serve, or go on as the parent.
  if (!verdict.empty()) Refuse(rank, verdict);
  if (rank != 0) {
    ServeAsWorkerRank(rank, std::move(control), std::move(daemon_fd), bound,
                      key, options);
  }
  internal::ClusterWorkers workers = cluster::MakeClusterWorkers(
      records, key, cluster::LauncherName(line.launcher));
  workers.use_tls = !options.tls_cert_file.empty();
  workers.tls_ca_file = options.tls_ca_file;
  VLOG(1) << "procpool: cluster of " << size << " ranks, "
          << workers.addresses.size() << " worker slots";
  internal::SetClusterWorkers(std::move(workers));
  cluster::HoldUntilExit(std::move(controls));
  if (line.launcher == cluster::Launcher::kMpirun) {
    on_exit(&AtExitUnderMpirun, nullptr);
  }
}

// --procpool_cluster=mpi, from procpool::Init.
void MpiBootstrapFromFlags(int argc, char** argv) {
  absl::StatusOr<int> slots = cluster::SlotsPerRank(internal::FindFlagValue(
      argc, argv, "procpool_cluster_slots_per_rank"));
  if (!slots.ok()) Refuse(EnvRank(), std::string(slots.status().message()));
  MpiClusterOptions options;
  options.slots_per_rank = *slots;
  auto flag = [&](const char* name) {
    const char* v = internal::FindFlagValue(argc, argv, name);
    return std::string(v == nullptr ? "" : v);
  };
  options.tls_cert_file = flag("procpool_cluster_tls_cert_file");
  options.tls_key_file = flag("procpool_cluster_tls_key_file");
  options.tls_ca_file = flag("procpool_cluster_tls_ca_file");
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    Refuse(EnvRank(),
           "--procpool_cluster_tls_cert_file and --procpool_cluster_tls_key_file "
           "go together");
  }
  RunMpiBootstrap(argc, argv, options);
}

const bool kRegistered =
    internal::RegisterClusterBootstrap("mpi", &MpiBootstrapFromFlags);

}  // namespace

void InitMpiCluster(int argc, char** argv, const MpiClusterOptions& options) {
  (void)kRegistered;
  procpool::Init(argc, argv);  // a local worker or fork server serves here
  if (internal::FindFlagValue(argc, argv, "procpool_cluster") != nullptr) {
    return;  // Init ran the bootstrap already
  }
  RunMpiBootstrap(argc, argv, options);
}

}  // namespace procpool
