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

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
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
    "           [--max_unauthenticated=64] [--refusal_log_interval=10s]\n"
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

// What a child tells the daemon over the report socket, one datagram each:
// "A\tPID\tPEER" (authenticated) or "R\tPID\tPEER\tWHY" (refused).
constexpr char kReportAuthenticated = 'A';
constexpr char kReportRefused = 'R';

// Sends one report without blocking; false if it could not be sent.
bool Report(int report_fd, char kind, const std::string& peer,
            absl::string_view why) {
  if (report_fd < 0) return false;
  std::string datagram =
      absl::StrCat(std::string(1, kind), "\t", getpid(), "\t", peer);
  if (kind == kReportRefused) absl::StrAppend(&datagram, "\t", why);
  datagram.resize(std::min<size_t>(datagram.size(), 4096));
  return send(report_fd, datagram.data(), datagram.size(),
              MSG_DONTWAIT | MSG_NOSIGNAL) ==
         static_cast<ssize_t>(datagram.size());
}

// In the forked child: authenticate the peer on `fd` (which
// AcceptRemoteParent takes over), then serve it. `report_fd` (closed here)
// tells the daemon how authentication ended.
[[noreturn]] void ServeConnection(int fd, int report_fd,
                                  const std::string& peer,
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
    // The daemon logs it, rate-limited per cause; if it cannot be told,
    // the refusal is logged here rather than lost.
    if (!Report(report_fd, kReportRefused, peer, channel.status().message())) {
      LOG(WARNING) << options.log_name << ": refused the connection from "
                   << peer << ": " << channel.status().message();
    }
    _exit(1);
  }
  Report(report_fd, kReportAuthenticated, peer, "");
  if (report_fd >= 0) close(report_fd);
  LOG(INFO) << "procpool worker daemon: worker " << getpid() << " serves "
            << peer;
  const int code = RunWorker(*std::move(channel));
  fflush(stdout);
  fflush(stderr);
  _exit(code);
}

// The cause of a refusal, from its message: the key of the rate limit.
std::string RefusalCause(absl::string_view why) {
  if (absl::StrContains(why, "did not start procpool's authentication")) {
    return "not a procpool peer";
  }
  if (absl::StrContains(why, "did not authenticate within")) {
    return "no authentication within --auth_timeout";
  }
  if (absl::StrContains(why, "closed the connection during authentication")) {
    return "hung up during authentication";
  }
  if (absl::StrContains(why, "TLS with")) return "TLS failed";
  if (absl::StrContains(why, "key") || absl::StrContains(why, "proof")) {
    return "wrong key";
  }
  if (absl::StrContains(why, "our own challenge")) return "reflection";
  return "other";
}

// Logs refusals (and accept/fork failures) once per cause per interval: the
// first in full, the rest as one count when the interval ends.
class RefusalLog {
 public:
  RefusalLog(std::string name, absl::Duration interval)
      : name_(std::move(name)), interval_(interval) {}

  // The connection from `peer` was refused for `why` (cause RefusalCause).
  void Refused(const std::string& peer, absl::string_view why) {
    Note(RefusalCause(why),
         absl::StrCat("refused the connection from ", peer, ": ", why));
  }

  // `line` (logged in full if it is the first of `cause` in this interval).
  void Note(const std::string& cause, const std::string& line) {
    const absl::Time now = absl::Now();
    Flush(now);
    auto it = windows_.find(cause);
    if (it != windows_.end()) {
      ++it->second.more;
      return;
    }
    windows_[cause] = Window{now, 0};
    LOG(WARNING) << name_ << ": " << line;
  }

  // Logs the count of each interval that has ended, and forgets it.
  void Flush(absl::Time now) {
    for (auto it = windows_.begin(); it != windows_.end();) {
      if (now - it->second.start < interval_) {
        ++it;
        continue;
      }
      if (it->second.more > 0) {
        LOG(WARNING) << name_ << ": " << it->second.more << " more refused for "
                     << it->first << " in the last "
                     << absl::FormatDuration(interval_);
      }
      it = windows_.erase(it);
    }
  }

  // When Flush() next has something to log; InfiniteFuture() if never.
  absl::Time NextFlush() const {
    absl::Time next = absl::InfiniteFuture();
    for (const auto& [cause, window] : windows_) {
      if (window.more > 0) next = std::min(next, window.start + interval_);
    }
    return next;
  }

 private:
  struct Window {
    absl::Time start;
    int more = 0;  // refusals after the first, not logged yet
  };
  const std::string name_;
  const absl::Duration interval_;
  std::map<std::string, Window> windows_;
};

// The children of ServeParents: all of them, and those still
// authenticating in the order they were accepted.
struct Pending {
  pid_t pid;
  absl::Time since;  // accepted
  std::string peer;
};
struct Children {
  std::set<pid_t> all;
  std::deque<Pending> authenticating;
  std::set<pid_t> evicted;  // killed at the bound: their end is not news

  void Authenticated(pid_t pid) {
    authenticating.erase(
        std::remove_if(authenticating.begin(), authenticating.end(),
                       [pid](const Pending& c) { return c.pid == pid; }),
        authenticating.end());
  }
};

// Reaps every child that has exited.
void ReapChildren(Children* children) {
  for (;;) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    children->all.erase(pid);
    children->Authenticated(pid);
    if (children->evicted.erase(pid) > 0) continue;
    if (WIFSIGNALED(status)) {
      LOG(INFO) << "procpool worker daemon: worker " << pid
                << " was killed by signal " << WTERMSIG(status);
    } else {
      VLOG(1) << "procpool worker daemon: worker " << pid << " exited with "
              << WEXITSTATUS(status);
    }
  }
}

// Reads every report the children sent (see Report()).
void ReadReports(int report_fd, Children* children, RefusalLog* log) {
  char buffer[4097];
  for (;;) {
    const ssize_t n = recv(report_fd, buffer, sizeof(buffer) - 1, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    const std::vector<absl::string_view> fields =
        absl::StrSplit(absl::string_view(buffer, static_cast<size_t>(n)),
                       absl::MaxSplits('\t', 3));
    int pid = 0;
    if (fields.size() < 3 || fields[0].size() != 1 ||
        !absl::SimpleAtoi(fields[1], &pid)) {
      continue;  // not from our children
    }
    children->Authenticated(pid);
    if (fields[0][0] == kReportRefused && fields.size() == 4) {
      log->Refused(std::string(fields[2]), fields[3]);
    }
  }
}

// SIGTERM to every child, up to 2 s for them to go, then SIGKILL.
void StopChildren(Children* children) {
  for (pid_t pid : children->all) kill(pid, SIGTERM);
  for (int i = 0; i < 200 && !children->all.empty(); ++i) {
    ReapChildren(children);
    if (!children->all.empty()) usleep(10000);
  }
  for (pid_t pid : children->all) kill(pid, SIGKILL);
  for (pid_t pid : children->all) waitpid(pid, nullptr, 0);
  children->all.clear();
  children->authenticating.clear();
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
    } else if (name == "refusal_log_interval") {
      absl::StatusOr<absl::Duration> d = ParseDurationFlag(name, value);
      if (!d.ok()) return d.status();
      options.refusal_log_interval = *d;
    } else if (name == "max_unauthenticated") {
      if (!absl::SimpleAtoi(value, &options.max_unauthenticated) ||
          options.max_unauthenticated < 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--max_unauthenticated=", value, ": expected a number >= 1"));
      }
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
  // The children's reports (Report()): [0] read here, [1] theirs.
  int report_pair[2];
  if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
                 report_pair) != 0) {
    fprintf(stderr, "%s: socketpair: %s\n", name, strerror(errno));
    sigprocmask(SIG_SETMASK, &previous, nullptr);
    return 1;
  }
  UniqueFd report_read(report_pair[0]);
  UniqueFd report_write(report_pair[1]);
  if (options.announce) {
    printf("listening on %s\n", bound.c_str());
    fflush(stdout);
  }
  LOG(INFO) << name << " " << getpid() << ": listening on " << bound
            << (options.use_tls ? " (TLS)" : "") << ", at most "
            << options.max_unauthenticated << " connections authenticating";

  Children children;
  RefusalLog refusals(options.log_name, options.refusal_log_interval);
  const size_t max_unauthenticated =
      static_cast<size_t>(std::max(1, options.max_unauthenticated));
  const pid_t daemon_pid = getpid();
  // After EMFILE and the like, accept() waits a little instead of spinning.
  absl::Time accept_paused_until = absl::InfinitePast();
  int exit_code = 0;
  const bool watching = watch != nullptr && watch->fd >= 0;
  for (;;) {
    const absl::Time now = absl::Now();
    refusals.Flush(now);
    const bool accepting = now >= accept_paused_until;
    absl::Time wake = refusals.NextFlush();
    if (!accepting) wake = std::min(wake, accept_paused_until);
    int timeout_ms = -1;
    if (wake != absl::InfiniteFuture()) {
      timeout_ms = static_cast<int>(
          std::max<int64_t>(0, absl::ToInt64Milliseconds(absl::Ceil(
                                   wake - now, absl::Milliseconds(1)))));
    }
    struct pollfd fds[4] = {{accepting ? listen_fd.get() : -1, POLLIN, 0},
                            {signal_fd.get(), POLLIN, 0},
                            {report_read.get(), POLLIN, 0},
                            {watching ? watch->fd : -1, POLLIN, 0}};
    if (poll(fds, watching ? 4 : 3, timeout_ms) < 0) {
      if (errno == EINTR) continue;
      PLOG(ERROR) << name << ": poll";
      break;
    }
    if (fds[2].revents & POLLIN) {
      ReadReports(report_read.get(), &children, &refusals);
    }
    if (fds[1].revents & POLLIN) {
      struct signalfd_siginfo info;
      bool stop = false;
      while (read(signal_fd.get(), &info, sizeof(info)) == sizeof(info)) {
        if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) stop = true;
      }
      ReapChildren(&children);
      if (stop) {
        LOG(INFO) << name << ": stopping (" << children.all.size()
                  << " workers)";
        break;
      }
    }
    if (watching && fds[3].revents != 0) {
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
        const int error = errno;
        if (error == EMFILE || error == ENFILE || error == ENOBUFS ||
            error == ENOMEM) {
          accept_paused_until = absl::Now() + absl::Milliseconds(100);
        }
        if (error != EINTR && error != EAGAIN && error != ECONNABORTED) {
          refusals.Note(absl::StrCat("accept: ", strerror(error)),
                        absl::StrCat("accept: ", strerror(error),
                                     " (a connection waits in the backlog)"));
        }
        continue;
      }
      const std::string peer = FormatAddress(peer_addr);
      // Make room: children that finished authenticating leave the count
      // first; then, at the bound, the oldest one still at it goes.
      ReadReports(report_read.get(), &children, &refusals);
      while (children.authenticating.size() >= max_unauthenticated) {
        const Pending oldest = children.authenticating.front();
        children.authenticating.pop_front();
        if (kill(oldest.pid, SIGKILL) == 0) children.evicted.insert(oldest.pid);
        refusals.Note("evicted at --max_unauthenticated",
                      absl::StrCat("refused the connection from ", oldest.peer,
                                   ": still not authenticated after ",
                                   absl::FormatDuration(
                                       absl::Trunc(absl::Now() - oldest.since,
                                                   absl::Milliseconds(1))),
                                   " when a newer connection needed its place "
                                   "(--max_unauthenticated=",
                                   max_unauthenticated, ")"));
      }
      const pid_t pid = fork();
      if (pid == 0) {
        listen_fd.reset();
        signal_fd.reset();
        report_read.reset();
        if (watching) close(watch->fd);
        sigprocmask(SIG_SETMASK, &previous, nullptr);
        ServeConnection(connection.release(), report_write.release(), peer,
                        options, daemon_pid);
      }
      connection.reset();  // the child has its own
      if (pid < 0) {
        const int error = errno;
        refusals.Note(absl::StrCat("fork: ", strerror(error)),
                      absl::StrCat("refused the connection from ", peer,
                                   ": fork: ", strerror(error)));
        continue;
      }
      children.all.insert(pid);
      children.authenticating.push_back(Pending{pid, absl::Now(), peer});
      VLOG(1) << name << ": connection from " << peer << ", worker " << pid;
    }
  }
  listen_fd.reset();
  StopChildren(&children);
  ReadReports(report_read.get(), &children, &refusals);
  refusals.Flush(absl::InfiniteFuture());
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
