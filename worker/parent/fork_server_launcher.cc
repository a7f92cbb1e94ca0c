#include "worker/parent/fork_server_launcher.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/posix_error.h"
#include "common/status_macros.h"
#include "common/sys.h"
#include "common/unique_fd.h"
#include "glog/logging.h"
#include "serialization/codec.h"
#include "worker/fork_server/protocol.h"

extern char** environ;

namespace procpool {
namespace {

// The wait status of `pid` if it is a zombie now (exited, not yet reaped by
// its parent), from field 52 of /proc/PID/stat (exit_code, as waitpid
// reports it; Linux 3.5 and later); nullopt otherwise (not a zombie, gone,
// or unreadable). A zombie's pid cannot be reused, so a 'Z' is the worker.
std::optional<int> ZombieExitStatus(pid_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  const ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  // "PID (COMM) STATE ...": COMM may hold spaces and parentheses.
  const char* p = strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ' || p[2] != 'Z') return std::nullopt;
  // Fields 3 (the state) to 52 (exit_code): the last of the line.
  const char* last = strrchr(p, ' ');
  if (last == nullptr) return std::nullopt;
  char* end = nullptr;
  const long status = strtol(last + 1, &end, 10);
  if (end == last + 1) return std::nullopt;
  int fields = 0;
  for (const char* q = p + 1; *q != '\0'; ++q) fields += *q == ' ';
  if (fields != 50) return std::nullopt;  // not the layout described above
  return static_cast<int>(status);
}

using fork_server::kError;
using fork_server::kExited;
using fork_server::ReceivePacket;
using fork_server::Reply;
using fork_server::Request;
using fork_server::SendPacket;

// The client side: one per worker binary, shared by every pool of the process.
class ForkServerClient {
 public:
  explicit ForkServerClient(std::string binary) : binary_(std::move(binary)) {}

  absl::StatusOr<WorkerProcess> Start(const LaunchRequest& request) {
    absl::MutexLock lock(&mu_);
    ForgetInheritedServerLocked();
    for (int attempt = 0; attempt < 2; ++attempt) {
      RETURN_IF_ERROR(EnsureServerLocked());
      std::vector<int> fds = request.endpoint.fds;
      if (request.crash_fd >= 0) fds.push_back(request.crash_fd);
      absl::Status sent = SendPacket(
          control_fd_.get(),
          EncodeValue(Request{request.transport, request.endpoint.spec,
                              request.crash_fd >= 0}),
          fds);
      if (!sent.ok()) {
        StopServerLocked();
        continue;
      }
      absl::StatusOr<Reply> reply = ReadUntilLocked(
          [](const Reply& r) { return std::get<0>(r) != kExited; },
          absl::Now() + absl::Seconds(30));
      if (!reply.ok()) {
        StopServerLocked();
        if (attempt == 0) continue;
        return internal::StartError(
            binary_,
            absl::StrCat("fork server failed: ", reply.status().message()));
      }
      if (std::get<0>(*reply) == kError) {
        // The server's fork failed: with its errno, the limit it hit and
        // what to do (EAGAIN: the process limit).
        const int fork_error = std::get<2>(*reply);
        if (fork_error != 0) {
          return internal::StartError(
              binary_, ProcessStartError("the fork server's fork", fork_error));
        }
        return internal::StartError(binary_, std::get<3>(*reply));
      }
      pid_t pid = std::get<1>(*reply);
      // Not our child: the fork server reaps it.
      return internal::WatchStartedProcess(binary_, pid, /*our_child=*/false);
    }
    return internal::StartError(binary_, "the fork server keeps dying");
  }

  absl::StatusOr<int> Reap(pid_t pid, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    ForgetInheritedServerLocked();
    auto it = exited_.find(pid);
    if (it == exited_.end()) {
      // The worker's pidfd said it exited: while the fork server has not
      // reaped it yet, its status is in /proc, and waiting for the server
      // (another process to be scheduled) would stand between the death and
      // the futures failing. The server's report of it comes later and is
      // dropped (read_early_).
      if (std::optional<int> status = ZombieExitStatus(pid)) {
        read_early_.insert(pid);
        return *status;
      }
      if (!control_fd_.valid()) {
        return absl::UnavailableError("the fork server is gone");
      }
      absl::StatusOr<Reply> r = ReadUntilLocked(
          [pid](const Reply& r) {
            return std::get<0>(r) == kExited && std::get<1>(r) == pid;
          },
          absl::Now() + timeout);
      if (!r.ok()) return r.status();
      it = exited_.find(pid);
    }
    int status = it->second;
    exited_.erase(it);
    return status;
  }

  pid_t server_pid() {
    absl::MutexLock lock(&mu_);
    ForgetInheritedServerLocked();
    return server_pid_;
  }

 private:
  // A process forked from the one that started the server (a user's fork())
  // must not share its control socket: it starts a server of its own.
  void ForgetInheritedServerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (owner_ == getpid()) return;
    control_fd_.reset();
    server_pid_ = -1;
    exited_.clear();
    owner_ = getpid();
  }

  absl::Status EnsureServerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (control_fd_.valid()) return absl::OkStatus();
    if (access(binary_.c_str(), X_OK) != 0) {
      return internal::StartError(binary_, strerror(errno));
    }
    int sv[2];
    if (GetSys().Socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
                            sv) != 0) {
      return internal::StartError(
          binary_, PosixError("the fork server's socketpair", errno));
    }
    UniqueFd ours(sv[0]);
    // The server finds its end as descriptor 3 (init.cc passes the number
    // to RunForkServer).
    UniqueFd theirs(sv[1]);
    std::string ppid = std::to_string(getpid());
    const std::vector<const char*> argv = {binary_.c_str(), kForkServerRoleFlag,
                                           ppid.c_str(), nullptr};
    ASSIGN_OR_RETURN(
        pid_t pid,
        internal::SpawnWithDescriptors(binary_, {theirs.get()}, argv));
    control_fd_ = std::move(ours);
    server_pid_ = pid;
    VLOG(1) << "procpool: fork server pid " << pid << " for " << binary_;
    return absl::OkStatus();
  }

  void StopServerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    control_fd_.reset();
    if (server_pid_ > 0) {
      kill(server_pid_, SIGKILL);
      waitpid(server_pid_, nullptr, 0);
    }
    server_pid_ = -1;
  }

  // Reads replies, recording exits, until `want` matches one (returned).
  template <typename Pred>
  absl::StatusOr<Reply> ReadUntilLocked(Pred want, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (true) {
      absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::DeadlineExceededError("no answer from the fork server");
      }
      struct pollfd p = {control_fd_.get(), POLLIN, 0};
      int n = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) continue;
      ASSIGN_OR_RETURN(std::string packet,
                       ReceivePacket(control_fd_.get(), nullptr));
      ASSIGN_OR_RETURN(Reply reply, DecodeValue<Reply>(packet));
      if (std::get<0>(reply) == kExited &&
          read_early_.erase(std::get<1>(reply)) == 0) {
        exited_[std::get<1>(reply)] = std::get<2>(reply);
      }
      if (want(reply)) return reply;
    }
  }

  const std::string binary_;
  absl::Mutex mu_;
  // Our end of the control socket; none while no server runs.
  UniqueFd control_fd_ ABSL_GUARDED_BY(mu_);
  pid_t server_pid_ ABSL_GUARDED_BY(mu_) = -1;
  pid_t owner_ ABSL_GUARDED_BY(mu_) = getpid();
  absl::flat_hash_map<pid_t, int> exited_ ABSL_GUARDED_BY(mu_);
  // Workers whose status Reap() read from /proc before the server reported
  // it: their report is dropped when it comes.
  absl::flat_hash_set<pid_t> read_early_ ABSL_GUARDED_BY(mu_);
};

struct Clients {
  absl::Mutex mu;
  std::map<std::string, ForkServerClient*> by_binary ABSL_GUARDED_BY(mu);
};

Clients& GetClients() {
  static Clients* clients = new Clients;
  return *clients;
}

ForkServerClient* ClientFor(const std::string& binary) {
  Clients& c = GetClients();
  absl::MutexLock lock(&c.mu);
  ForkServerClient*& client = c.by_binary[binary];
  if (client == nullptr) client = new ForkServerClient(binary);
  return client;
}

}  // namespace

std::unique_ptr<Launcher> MakeForkServerLauncher() {
  // The launcher does not know its binary until Start(); Reap() goes to the
  // client that started the pid.
  class Impl final : public Launcher {
   public:
    absl::StatusOr<WorkerProcess> Start(const LaunchRequest& request) override {
      ForkServerClient* client = ClientFor(request.binary);
      ASSIGN_OR_RETURN(WorkerProcess p, client->Start(request));
      absl::MutexLock lock(&mu_);
      owners_[p.pid] = client;
      return p;
    }
    absl::StatusOr<int> Reap(const WorkerProcess& process,
                             absl::Duration timeout) override {
      ForkServerClient* client;
      {
        absl::MutexLock lock(&mu_);
        auto it = owners_.find(process.pid);
        if (it == owners_.end()) {
          return absl::NotFoundError(absl::StrCat(
              "pid ", process.pid, " was not started by this launcher"));
        }
        client = it->second;
        owners_.erase(it);
      }
      return client->Reap(process.pid, timeout);
    }

   private:
    absl::Mutex mu_;
    absl::flat_hash_map<pid_t, ForkServerClient*> owners_ ABSL_GUARDED_BY(mu_);
  };
  return std::make_unique<Impl>();
}

pid_t ForkServerPid(const std::string& binary) {
  Clients& c = GetClients();
  absl::MutexLock lock(&c.mu);
  auto it = c.by_binary.find(binary);
  return it == c.by_binary.end() ? -1 : it->second->server_pid();
}

}  // namespace procpool
