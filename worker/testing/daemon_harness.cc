#include "worker/testing/daemon_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/unique_fd.h"

namespace procpool {
namespace daemon_testing {
namespace {

std::string TempDir() {
  const char* dir = getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::string WriteKeyFile(const std::string& name, const std::string& key) {
  const std::string path = absl::StrCat(TempDir(), "/", name);
  unlink(path.c_str());
  const UniqueFd fd(
      open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.valid()) (void)!write(fd.get(), key.data(), key.size());
  return path;
}

std::string MarkerPath(const std::string& name) {
  static int next = 0;
  const std::string path =
      absl::StrCat(TempDir(), "/", name, ".", getpid(), ".", next++);
  unlink(path.c_str());
  return path;
}

bool AwaitFile(const std::string& path, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (access(path.c_str(), F_OK) != 0) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

std::string WorkerBinary() { return "worker/daemon_test_worker"; }

std::string Daemon::Log() const { return ReadFile(log_path); }

int Daemon::SignalAndWait(int signal, absl::Duration timeout) {
  if (pid <= 0) return -1;
  kill(pid, signal);
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pid = -1;
      return status;
    }
    if (absl::Now() >= deadline) return -1;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

Daemon::~Daemon() {
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
}

absl::StatusOr<std::unique_ptr<Daemon>> StartDaemon(
    const std::vector<std::string>& argv, const std::string& log_name) {
  auto daemon = std::make_unique<Daemon>();
  daemon->log_path = absl::StrCat(TempDir(), "/", log_name);
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return absl::InternalError("pipe2");
  UniqueFd out_read(out[0]);
  UniqueFd out_write(out[1]);
  UniqueFd log_fd(open(daemon->log_path.c_str(),
                       O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    // Between fork() and exec: async-signal-safe calls only, no destructors.
    dup2(out_write.get(), 1);
    dup2(log_fd.get(), 2);
    execvp(args[0], args.data());
    _exit(127);
  }
  out_write.reset();
  log_fd.reset();
  if (pid < 0) return absl::InternalError("fork");
  daemon->pid = pid;
  std::string line;
  const absl::Time deadline = absl::Now() + kTimeout;
  while (line.find('\n') == std::string::npos) {
    const absl::Duration left = deadline - absl::Now();
    struct pollfd p = {out_read.get(), POLLIN, 0};
    if (left <= absl::ZeroDuration() ||
        poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) !=
            1) {
      break;
    }
    char buffer[256];
    const ssize_t n = read(out_read.get(), buffer, sizeof(buffer));
    if (n <= 0) break;
    line.append(buffer, static_cast<size_t>(n));
  }
  out_read.reset();
  const std::string prefix = "listening on ";
  if (!absl::StartsWith(line, prefix) || line.find('\n') == std::string::npos) {
    return absl::UnavailableError(
        absl::StrCat("the daemon did not say where it listens; stdout: \"",
                     line, "\"; stderr: ", daemon->Log()));
  }
  daemon->address = line.substr(prefix.size(), line.find('\n') - prefix.size());
  return daemon;
}

absl::StatusOr<std::unique_ptr<RemoteSession>> RemoteSession::Open(
    const RemoteWorkerOptions& options, bool handshake) {
  absl::StatusOr<std::unique_ptr<Channel>> channel =
      ConnectRemoteWorker(options);
  if (!channel.ok()) return channel.status();
  auto session = std::make_unique<RemoteSession>();
  session->channel_ = *std::move(channel);
  if (!handshake) return session;
  absl::Status sent =
      session->channel_->Send(wire::EncodeMessage(wire::Config{}));
  if (!sent.ok()) return sent;
  absl::StatusOr<wire::Message> hello = session->Next(kTimeout);
  if (!hello.ok()) return hello.status();
  const wire::Hello* h = std::get_if<wire::Hello>(&*hello);
  if (h == nullptr) {
    return absl::DataLossError(absl::StrCat("expected hello, got ",
                                            wire::MessageKind(*hello)));
  }
  session->hello_ = *h;
  return session;
}

absl::StatusOr<wire::Message> RemoteSession::Next(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    absl::Status status = channel_->Pump(&pending_);
    if (!pending_.empty()) {
      std::string frame = std::move(pending_.front());
      pending_.erase(pending_.begin());
      return wire::DecodeMessage(frame);
    }
    if (!status.ok()) return status;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError("no frame within the test's bound");
    }
    struct pollfd p = {channel_->PollFd(), POLLIN, 0};
    poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
  }
}

absl::StatusOr<wire::Result> RemoteSession::AwaitResult(absl::Duration timeout) {
  absl::StatusOr<wire::Message> m = Next(timeout);
  if (!m.ok()) return m.status();
  if (auto* result = std::get_if<wire::Result>(&*m)) {
    wire::Unpack(result);  // tests read outcomes
    return *result;
  }
  return absl::DataLossError(
      absl::StrCat("expected result, got ", wire::MessageKind(*m)));
}

absl::Status RemoteSession::AwaitError(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    absl::StatusOr<wire::Message> m = Next(deadline - absl::Now());
    if (!m.ok()) return m.status();
  }
}

bool IsAlive(pid_t pid) {
  const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  const size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() &&
         stat[close + 2] != 'Z';
}

pid_t ParentOf(pid_t pid) {
  const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> fields =
      absl::StrSplit(stat.substr(close + 2), ' ');
  int parent = -1;
  if (fields.size() < 2 || !absl::SimpleAtoi(fields[1], &parent)) return -1;
  return parent;
}

}  // namespace daemon_testing
}  // namespace procpool
