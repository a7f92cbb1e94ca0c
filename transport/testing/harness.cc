#include "transport/testing/harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "common/posix_error.h"

namespace procpool {
namespace transport_testing {
namespace {

// Milliseconds to pass to poll()/epoll_wait() for `left`, rounded up.
int WaitMillis(absl::Duration left) {
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(
      std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 60 * 1000));
}

// In a freshly forked child: closes every descriptor but 0, 1, 2 and `keep`.
void CloseAllExcept(const std::vector<int>& keep) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  const int dir_fd = dirfd(dir);
  std::vector<int> doomed;
  while (struct dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = atoi(entry->d_name);
    if (fd <= 2 || fd == dir_fd) continue;
    if (std::find(keep.begin(), keep.end(), fd) != keep.end()) continue;
    doomed.push_back(fd);
  }
  closedir(dir);
  for (int fd : doomed) CloseFd(fd);
}

// The scheduler state ('R', 'S', 'D', 'Z', ...) in the stat file at `path`
// (/proc/PID/task/TID/stat); 0 if it cannot be read.
char StatState(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buffer[512];
  const ssize_t n = read(fd, buffer, sizeof(buffer));
  close(fd);
  if (n <= 0) return 0;
  const absl::string_view stat(buffer, static_cast<size_t>(n));
  const size_t close_paren = stat.rfind(')');  // the name may hold ')'
  if (close_paren == absl::string_view::npos ||
      close_paren + 2 >= stat.size()) {
    return 0;
  }
  return stat[close_paren + 2];
}

// True if every thread of `pid` is in state 'S' (and there is at least one).
bool AllThreadsAsleep(pid_t pid) {
  const std::string task_dir = absl::StrCat("/proc/", pid, "/task");
  DIR* dir = opendir(task_dir.c_str());
  if (dir == nullptr) return false;
  int threads = 0;
  bool asleep = true;
  while (struct dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    ++threads;
    if (StatState(absl::StrCat(task_dir, "/", entry->d_name, "/stat")) != 'S') {
      asleep = false;
      break;
    }
  }
  closedir(dir);
  return asleep && threads > 0;
}

}  // namespace

int ChildFailure(int code, absl::string_view message) {
  std::string line = absl::StrCat("child ", getpid(), ": ", message, "\n");
  (void)!write(STDERR_FILENO, line.data(), line.size());
  return code;
}

int EchoLoop(Channel& channel) {
  for (;;) {
    absl::StatusOr<std::string> frame = channel.ReceiveBlocking();
    if (!frame.ok()) {
      if (absl::IsUnavailable(frame.status())) return 0;
      return ChildFailure(
          2, absl::StrCat("ReceiveBlocking: ", frame.status().ToString()));
    }
    absl::Status s = channel.SendBlocking(*frame);
    if (!s.ok()) {
      if (absl::IsUnavailable(s)) return 0;
      return ChildFailure(3, absl::StrCat("SendBlocking: ", s.ToString()));
    }
  }
}

absl::StatusOr<ForkedChild> ForkedChild::Start(std::function<int()> body,
                                               const std::vector<int>& keep) {
  const pid_t pid = fork();
  if (pid < 0) return PosixError("fork", errno);
  if (pid == 0) {
    alarm(kChildAlarmSeconds);
    signal(SIGPIPE, SIG_DFL);
    CloseAllExcept(keep);
    _exit(body());
  }
  return ForkedChild(pid);
}

absl::StatusOr<ForkedChild> ForkedChild::StartWithChannel(
    Transport* transport, const ChildEndpoint& endpoint,
    std::function<int(Channel&)> body, const std::vector<int>& extra_keep) {
  std::vector<int> keep = endpoint.fds;
  keep.insert(keep.end(), extra_keep.begin(), extra_keep.end());
  return Start(
      [transport, &endpoint, &body]() {
        absl::StatusOr<std::unique_ptr<Channel>> channel =
            transport->OpenChild(endpoint);
        if (!channel.ok()) {
          return ChildFailure(
              kChildOpenFailed,
              absl::StrCat("OpenChild: ", channel.status().ToString()));
        }
        const int code = body(**channel);
        channel->reset();
        return code;
      },
      keep);
}

ForkedChild::ForkedChild(ForkedChild&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)) {}

ForkedChild& ForkedChild::operator=(ForkedChild&& other) noexcept {
  if (this != &other) {
    Kill();
    pid_ = std::exchange(other.pid_, -1);
  }
  return *this;
}

ForkedChild::~ForkedChild() { Kill(); }

absl::StatusOr<int> ForkedChild::Wait(absl::Duration timeout) {
  if (pid_ < 0) return absl::FailedPreconditionError("child already reaped");
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int wait_status = 0;
    const pid_t r = waitpid(pid_, &wait_status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return wait_status;
    }
    if (r < 0 && errno != EINTR) return PosixError("waitpid", errno);
    if (absl::Now() >= deadline) {
      const pid_t pid = pid_;
      Kill();
      return absl::DeadlineExceededError(
          absl::StrCat("child ", pid, " still running after ",
                       absl::FormatDuration(timeout), "; killed it"));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
}

void ForkedChild::Kill() {
  if (pid_ < 0) return;
  kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

bool AwaitAsleep(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (AllThreadsAsleep(pid)) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
}

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) {
    return absl::StrCat("exited with status ", WEXITSTATUS(wait_status));
  }
  if (WIFSIGNALED(wait_status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(wait_status), " (",
                        strsignal(WTERMSIG(wait_status)), ")");
  }
  return absl::StrCat("wait status ", wait_status);
}

::testing::AssertionResult ExitsCleanly(ForkedChild& child,
                                        absl::Duration timeout) {
  const pid_t pid = child.pid();
  absl::StatusOr<int> status = child.Wait(timeout);
  if (!status.ok()) {
    return ::testing::AssertionFailure() << status.status().ToString();
  }
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return ::testing::AssertionFailure()
           << "child " << pid << " " << DescribeWaitStatus(*status)
           << " (its stderr above says why)";
  }
  return ::testing::AssertionSuccess();
}

ChannelDriver::ChannelDriver(Channel* channel) : channel_(channel) {
  epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_.valid()) {
    ADD_FAILURE() << PosixError("epoll_create1", errno);
    return;
  }
  struct epoll_event ev = {};
  ev.events = registered_events_ = channel_->PollEvents();
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, channel_->PollFd(), &ev) != 0) {
    ADD_FAILURE() << PosixError("epoll_ctl(ADD, PollFd())", errno);
  }
}

ChannelDriver::~ChannelDriver() = default;

void ChannelDriver::UpdateEvents() {
  const uint32_t events = channel_->PollEvents();
  if (events == registered_events_) return;
  struct epoll_event ev = {};
  ev.events = events;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, channel_->PollFd(), &ev) != 0) {
    ADD_FAILURE() << PosixError("epoll_ctl(MOD, PollFd())", errno);
  }
  registered_events_ = events;
}

absl::Status ChannelDriver::Send(std::string frame) {
  absl::Status s = channel_->Send(std::move(frame));
  UpdateEvents();
  return s;
}

absl::Status ChannelDriver::SendParts(std::vector<absl::string_view> parts,
                                      std::shared_ptr<const void> owner) {
  absl::Status s = channel_->SendParts(std::move(parts), std::move(owner));
  UpdateEvents();
  return s;
}

absl::Status ChannelDriver::SendPartsWithDescriptors(
    std::vector<absl::string_view> parts, std::shared_ptr<const void> owner,
    absl::Span<const int> fds) {
  absl::Status s = channel_->SendPartsWithDescriptors(std::move(parts),
                                                      std::move(owner), fds);
  UpdateEvents();
  return s;
}

absl::Status ChannelDriver::PumpOnce() {
  absl::Status s = channel_->Pump(&frames_);
  UpdateEvents();
  return s;
}

absl::Status ChannelDriver::PumpUntil(const std::function<bool()>& done,
                                      absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    absl::Status s = PumpOnce();
    if (!s.ok()) return s;
    if (done()) return absl::OkStatus();
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(
          absl::StrCat("nothing more after ", absl::FormatDuration(timeout),
                       " (", frames_.size(), " frames received)"));
    }
    struct epoll_event ev;
    if (epoll_wait(epoll_fd_.get(), &ev, 1, WaitMillis(left)) < 0 &&
        errno != EINTR) {
      return PosixError("epoll_wait", errno);
    }
  }
}

absl::Status ChannelDriver::PumpUntilFrames(size_t count,
                                            absl::Duration timeout) {
  return PumpUntil([this, count] { return frames_.size() >= count; }, timeout);
}

absl::Status ChannelDriver::PumpUntilError(absl::Duration timeout) {
  return PumpUntil([] { return false; }, timeout);
}

bool ChannelDriver::WaitReadable(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    struct pollfd p = {channel_->PollFd(), POLLIN, 0};
    const int n = poll(&p, 1, WaitMillis(deadline - absl::Now()));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
    if (absl::Now() >= deadline) return false;
  }
}

SignalPipe::SignalPipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << PosixError("pipe2", errno);
    return;
  }
  read_.reset(fds[0]);
  write_.reset(fds[1]);
}

bool SignalPipe::Signal() const { return write(write_fd(), "x", 1) == 1; }

bool SignalPipe::Await(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    struct pollfd p = {read_fd(), POLLIN, 0};
    const int n = poll(&p, 1, WaitMillis(deadline - absl::Now()));
    if (n > 0) {
      char c;
      return read(read_fd(), &c, 1) == 1;
    }
    if ((n < 0 && errno != EINTR) || absl::Now() >= deadline) return false;
  }
}

ScopedDefaultSigpipe::ScopedDefaultSigpipe() : old_(signal(SIGPIPE, SIG_DFL)) {}

ScopedDefaultSigpipe::~ScopedDefaultSigpipe() { signal(SIGPIPE, old_); }

std::string Pattern(size_t size, uint64_t seed) {
  std::string s(size, '\0');
  const uint64_t base = seed * 0x9E3779B97F4A7C15ull + size;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    const uint64_t word = base + i * 0xBF58476D1CE4E5B9ull;
    memcpy(&s[i], &word, 8);
  }
  for (; i < size; ++i) s[i] = static_cast<char>((base >> (i % 8 * 8)) ^ i);
  return s;
}

::testing::AssertionResult SameBytes(const std::string& got,
                                     const std::string& want) {
  if (got == want) return ::testing::AssertionSuccess();
  const size_t common = std::min(got.size(), want.size());
  const size_t first =
      std::mismatch(got.begin(), got.begin() + common, want.begin()).first -
      got.begin();
  ::testing::AssertionResult failure = ::testing::AssertionFailure();
  failure << "got " << got.size() << " bytes, want " << want.size()
          << "; first difference at byte " << first;
  if (got.size() <= 200 && want.size() <= 200) {
    failure << "; got \"" << absl::CHexEscape(got) << "\", want \""
            << absl::CHexEscape(want) << "\"";
  }
  return failure;
}

int CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int count = 0;
  while (struct dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the directory's own descriptor
}

void CloseEndpoint(ChildEndpoint* endpoint) {
  for (int fd : endpoint->fds) CloseFd(fd);
  endpoint->fds.clear();
}

}  // namespace transport_testing
}  // namespace procpool
