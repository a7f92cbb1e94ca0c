// The worker daemon; the decisions are in daemon.h.
#include "worker/daemon/daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/auth/key_file.h"
#include "common/unique_fd.h"
#include "glog/logging.h"
#include "transport/capnp/remote.h"
#include "transport/transport.h"
#include "worker/child/worker_loop.h"

namespace procpool {
namespace {

constexpr char kUsage[] =
    "usage: %s --listen=HOST:PORT --auth_key_file=FILE\n"
    "           [--tls_cert_file=PEM --tls_key_file=PEM]\n"
    "           [--auth_timeout=10s] [--heartbeat_timeout=10s]\n"
    "Serves this binary's procpool tasks to authenticated parents on other\n"
    "hosts (procpool::ConnectRemoteWorker), one forked worker per connection.\n";

// "HOST:PORT" of a socket address, IPv6 in brackets.
std::string FormatAddress(const sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    return absl::StrCat(host, ":", ntohs(in->sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    return absl::StrCat("[", host, "]:", ntohs(in6->sin6_port));
  }
  return "an unknown address";
}

}  // namespace

absl::StatusOr<UniqueFd> ListenForParents(const std::string& address,
                                          std::string* bound) {
  absl::StatusOr<HostPort> where = ParseHostPort(address);
  if (!where.ok()) return where.status();
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  struct addrinfo* found = nullptr;
  const std::string port = std::to_string(where->port);
  const int rc = getaddrinfo(where->host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot resolve --listen=", address, ": ", gai_strerror(rc)));
  }
  std::string last_error = "no address";
  UniqueFd fd;
  for (struct addrinfo* a = found; a != nullptr && !fd.valid();
       a = a->ai_next) {
    fd.reset(
        socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd.valid()) continue;
    const int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0 ||
        listen(fd.get(), 128) != 0) {
      last_error = strerror(errno);
      fd.reset();
    }
  }
  freeaddrinfo(found);
  if (!fd.valid()) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, ": ", last_error));
  }
  sockaddr_storage addr = {};
  socklen_t len = sizeof(addr);
  getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  *bound = FormatAddress(addr);
  return fd;
}

namespace {

// In the forked child: authenticate the peer on `fd` (which
// AcceptRemoteParent takes over), then serve it.
[[noreturn]] void ServeConnection(int fd, const std::string& peer,
                                  const DaemonOptions& options,
                                  pid_t daemon_pid) {
  BecomeWorkerProcess(daemon_pid);
  RemoteParentOptions remote;
  remote.key = options.key;
  remote.peer_address = peer;
  remote.auth_timeout = options.auth_timeout;
  remote.heartbeat_interval = options.heartbeat_interval;
  remote.heartbeat_timeout = options.heartbeat_timeout;
  remote.use_tls = options.use_tls;
  remote.tls_cert_file = options.tls_cert_file;
  remote.tls_key_file = options.tls_key_file;
  remote.on_connection_lost = [peer](const absl::Status& status) {
    LOG(INFO) << "procpool worker daemon: worker " << getpid()
              << " lost its parent " << peer << ": " << status.message()
              << "; exiting";
    _exit(0);
  };
  absl::StatusOr<std::unique_ptr<Channel>> channel =
      AcceptRemoteParent(fd, remote);
  if (!channel.ok()) {
    LOG(WARNING) << "procpool worker daemon: refused the connection from "
                 << peer << ": " << channel.status().message();
    _exit(1);
  }
  LOG(INFO) << "procpool worker daemon: worker " << getpid() << " serves "
            << peer;
  const int code = RunWorker(*std::move(channel));
  fflush(stdout);
  fflush(stderr);
  _exit(code);
}

// Reaps every child that has exited.
void ReapChildren(std::set<pid_t>* children) {
  for (;;) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    children->erase(pid);
    if (WIFSIGNALED(status)) {
      LOG(INFO) << "procpool worker daemon: worker " << pid
                << " was killed by signal " << WTERMSIG(status);
    } else {
      VLOG(1) << "procpool worker daemon: worker " << pid << " exited with "
              << WEXITSTATUS(status);
    }
  }
}

// SIGTERM to every child, up to 2 s for them to go, then SIGKILL.
void StopChildren(std::set<pid_t>* children) {
  for (pid_t pid : *children) kill(pid, SIGTERM);
  for (int i = 0; i < 200 && !children->empty(); ++i) {
    ReapChildren(children);
    if (!children->empty()) usleep(10000);
  }
  for (pid_t pid : *children) kill(pid, SIGKILL);
  for (pid_t pid : *children) waitpid(pid, nullptr, 0);
  children->clear();
}

absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view name,
                                                 absl::string_view value) {
  absl::Duration d;
  if (!absl::ParseDuration(value, &d) || d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, "=", value, ": expected a duration such as 10s or 500ms"));
  }
  return d;
}

}  // namespace

bool IsDaemonCommandLine(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (absl::StartsWith(argv[i], "--listen")) return true;
  }
  return false;
}

absl::StatusOr<DaemonOptions> ParseDaemonFlags(int argc, char** argv) {
  DaemonOptions options;
  std::string key_file;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    const size_t eq = arg.find('=');
    if (!absl::StartsWith(arg, "--") || eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument \"", arg, "\" (flags are --name=value)"));
    }
    const absl::string_view name = arg.substr(2, eq - 2);
    const absl::string_view value = arg.substr(eq + 1);
    if (name == "listen") {
      options.listen = std::string(value);
    } else if (name == "auth_key_file") {
      key_file = std::string(value);
    } else if (name == "tls_cert_file") {
      options.tls_cert_file = std::string(value);
    } else if (name == "tls_key_file") {
      options.tls_key_file = std::string(value);
    } else if (name == "auth_timeout" || name == "heartbeat_timeout") {
      absl::StatusOr<absl::Duration> d = ParseDurationFlag(name, value);
      if (!d.ok()) return d.status();
      (name == "auth_timeout" ? options.auth_timeout
                              : options.heartbeat_timeout) = *d;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name));
    }
  }
  if (options.listen.empty()) {
    return absl::InvalidArgumentError("--listen=HOST:PORT is required");
  }
  absl::StatusOr<HostPort> where = ParseHostPort(options.listen);
  if (!where.ok()) return where.status();
  if (key_file.empty()) {
    return absl::InvalidArgumentError(
        "--auth_key_file=FILE is required: the daemon serves only parents "
        "that prove they hold the same key");
  }
  absl::StatusOr<std::string> key = auth::ReadKeyFile(key_file);
  if (!key.ok()) return key.status();
  options.key = *std::move(key);
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert_file and --tls_key_file go together");
  }
  options.use_tls = !options.tls_cert_file.empty();
  return options;
}

int RunWorkerDaemon(const DaemonOptions& options) {
  std::string bound;
  absl::StatusOr<UniqueFd> listen_fd = ListenForParents(options.listen, &bound);
  if (!listen_fd.ok()) {
    fprintf(stderr, "%s: %s\n", options.log_name.c_str(),
            std::string(listen_fd.status().message()).c_str());
    return 1;
  }
  return ServeParents(*std::move(listen_fd), bound, options, nullptr);
}

int ServeParents(UniqueFd listen_fd, const std::string& bound,
                 const DaemonOptions& options, const DaemonWatch* watch) {
  const char* name = options.log_name.c_str();
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGCHLD);
  sigset_t previous;
  sigprocmask(SIG_BLOCK, &signals, &previous);
  UniqueFd signal_fd(signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd.valid()) {
    fprintf(stderr, "%s: signalfd: %s\n", name, strerror(errno));
    sigprocmask(SIG_SETMASK, &previous, nullptr);
    return 1;
  }
  if (options.announce) {
    printf("listening on %s\n", bound.c_str());
    fflush(stdout);
  }
  LOG(INFO) << name << " " << getpid() << ": listening on " << bound
            << (options.use_tls ? " (TLS)" : "");

  std::set<pid_t> children;
  const pid_t daemon_pid = getpid();
  int exit_code = 0;
  const int nfds = watch != nullptr && watch->fd >= 0 ? 3 : 2;
  for (;;) {
    struct pollfd fds[3] = {{listen_fd.get(), POLLIN, 0},
                            {signal_fd.get(), POLLIN, 0},
                            {nfds == 3 ? watch->fd : -1, POLLIN, 0}};
    if (poll(fds, nfds, -1) < 0) {
      if (errno == EINTR) continue;
      PLOG(ERROR) << name << ": poll";
      break;
    }
    if (fds[1].revents & POLLIN) {
      struct signalfd_siginfo info;
      bool stop = false;
      while (read(signal_fd.get(), &info, sizeof(info)) == sizeof(info)) {
        if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) stop = true;
      }
      ReapChildren(&children);
      if (stop) {
        LOG(INFO) << name << ": stopping (" << children.size() << " workers)";
        break;
      }
    }
    if (nfds == 3 && fds[2].revents != 0) {
      std::optional<int> code = watch->on_readable();
      if (code.has_value()) {
        exit_code = *code;
        break;
      }
    }
    if (fds[0].revents & POLLIN) {
      sockaddr_storage peer_addr = {};
      socklen_t len = sizeof(peer_addr);
      UniqueFd connection(accept4(listen_fd.get(),
                                  reinterpret_cast<sockaddr*>(&peer_addr), &len,
                                  SOCK_CLOEXEC));
      if (!connection.valid()) {
        if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
          PLOG(WARNING) << name << ": accept";
        }
        continue;
      }
      const std::string peer = FormatAddress(peer_addr);
      const pid_t pid = fork();
      if (pid == 0) {
        listen_fd.reset();
        signal_fd.reset();
        if (nfds == 3) close(watch->fd);
        sigprocmask(SIG_SETMASK, &previous, nullptr);
        ServeConnection(connection.release(), peer, options, daemon_pid);
      }
      connection.reset();  // the child has its own
      if (pid < 0) {
        PLOG(WARNING) << name << ": fork for " << peer;
        continue;
      }
      children.insert(pid);
      VLOG(1) << name << ": connection from " << peer << ", worker " << pid;
    }
  }
  listen_fd.reset();
  StopChildren(&children);
  signal_fd.reset();
  sigprocmask(SIG_SETMASK, &previous, nullptr);
  return exit_code;
}

int DaemonMain(int argc, char** argv) {
  FLAGS_logtostderr = true;
  if (!google::IsGoogleLoggingInitialized()) {
    google::InitGoogleLogging(argv[0]);
  }
  absl::StatusOr<DaemonOptions> options = ParseDaemonFlags(argc, argv);
  if (!options.ok()) {
    fprintf(stderr, "procpool worker daemon: %s\n",
            std::string(options.status().message()).c_str());
    fprintf(stderr, kUsage, argv[0]);
    return 2;
  }
  return RunWorkerDaemon(*options);
}

}  // namespace procpool
