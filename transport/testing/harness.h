// Helpers for transport tests: forked children that own the far end of a
// channel, and a driver for the parent's end that uses only the non-blocking
// API, the way the executor's manager thread does.
//
// Every wait here is bounded: a transport that hangs fails the test instead of
// stalling it. A forked child also arms alarm(kChildAlarmSeconds), so a child
// whose parent died or stopped driving it goes away on its own; a blocked
// parent call to a dead child then returns.
//
// Example:
//   absl::StatusOr<ChannelPair> pair = transport->CreatePair();
//   absl::StatusOr<ForkedChild> child = ForkedChild::StartWithChannel(
//       transport, pair->child, EchoLoop);
//   CloseEndpoint(&pair->child);
//   ChannelDriver driver(pair->parent.get());
//   ASSERT_TRUE(driver.Send("ping").ok());
//   ASSERT_TRUE(driver.PumpUntilFrames(1, absl::Seconds(10)).ok());
//
// Thread safety: none; use from the test's thread. fork() is called from the
// test's thread, so the test process should have no other threads that hold
// locks the child needs (gtest's own main thread is fine).
#ifndef PROCPOOL_TRANSPORT_TESTING_HARNESS_H_
#define PROCPOOL_TRANSPORT_TESTING_HARNESS_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"
#include "transport/transport.h"

namespace procpool {
namespace transport_testing {

// A forked child gets SIGALRM (and dies) after this many seconds.
inline constexpr int kChildAlarmSeconds = 30;

// Exit codes of a child body; a body returns 0 for success, anything in
// [1, 99] for its own failures.
inline constexpr int kChildOpenFailed = 100;

// Writes "child <pid>: <message>" to stderr and returns `code`: for child
// bodies, `return ChildFailure(3, "...")`.
int ChildFailure(int code, absl::string_view message);

// A child body that echoes every frame until the parent closes the channel:
// 0 on a clean kUnavailable, non-zero on any other error.
int EchoLoop(Channel& channel);

// A child process, killed (SIGKILL) and reaped on destruction if still
// running. Move-only.
class ForkedChild {
 public:
  // Forks. The child closes every descriptor except 0, 1, 2 and `keep`,
  // restores SIGPIPE to its default action, arms the alarm, runs `body` and
  // _exit()s with its result (never returning into the test framework).
  static absl::StatusOr<ForkedChild> Start(std::function<int()> body,
                                           const std::vector<int>& keep);

  // Like Start(), the child opening its end of `endpoint` with `transport`
  // (exit code kChildOpenFailed if that fails) and running `body` on it.
  // `extra_keep` are more descriptors the child keeps (pipes for a test's
  // own signalling). The parent still owns its copies of endpoint.fds.
  static absl::StatusOr<ForkedChild> StartWithChannel(
      Transport* transport, const ChildEndpoint& endpoint,
      std::function<int(Channel&)> body,
      const std::vector<int>& extra_keep = {});

  ForkedChild(ForkedChild&& other) noexcept;
  ForkedChild& operator=(ForkedChild&& other) noexcept;
  ForkedChild(const ForkedChild&) = delete;
  ForkedChild& operator=(const ForkedChild&) = delete;
  ~ForkedChild();

  pid_t pid() const { return pid_; }

  // Waits up to `timeout` for the child to exit and reaps it; returns its
  // wait status. On timeout kills it and returns kDeadlineExceeded.
  absl::StatusOr<int> Wait(absl::Duration timeout);

  // SIGKILLs the child and reaps it (no-op once reaped).
  void Kill();

 private:
  explicit ForkedChild(pid_t pid) : pid_(pid) {}

  pid_t pid_ = -1;  // -1 once reaped
};

// Waits up to `timeout` until every thread of process `pid` (a child of this
// process) is in an interruptible sleep, 'S' in /proc/PID/task/*/stat:
// blocked in a system call (a send to a full socket or ring, a receive,
// pause()) rather than running or not yet started on what the test waits
// for. False on timeout, or once `pid` is a zombie or gone.
//
// A test that needs "the child has sent all it can of a large frame and now
// waits for room" waits for this after the child said it is about to send,
// instead of sleeping and hoping so.
bool AwaitAsleep(pid_t pid, absl::Duration timeout);

// "exited with status 3", "killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int wait_status);

// Succeeds when `child` exits with status 0 within `timeout`.
::testing::AssertionResult ExitsCleanly(ForkedChild& child,
                                        absl::Duration timeout);

// Drives the parent's end of a channel only through Send(), Pump(), PollFd()
// and PollEvents(), waiting with epoll the way the manager thread does.
// Incoming frames accumulate in frames().
class ChannelDriver {
 public:
  // `channel` must outlive every call on the driver (destroying the driver
  // does not touch it).
  explicit ChannelDriver(Channel* channel);
  ~ChannelDriver();
  ChannelDriver(const ChannelDriver&) = delete;
  ChannelDriver& operator=(const ChannelDriver&) = delete;

  // channel->Send(frame), then re-reads PollEvents().
  absl::Status Send(std::string frame);

  // channel->SendParts(parts, owner), then re-reads PollEvents().
  absl::Status SendParts(std::vector<absl::string_view> parts,
                         std::shared_ptr<const void> owner);

  // channel->SendPartsWithDescriptors(parts, owner, fds), then re-reads
  // PollEvents().
  absl::Status SendPartsWithDescriptors(std::vector<absl::string_view> parts,
                                        std::shared_ptr<const void> owner,
                                        absl::Span<const int> fds);

  // One Pump() into frames(), then re-reads PollEvents().
  absl::Status PumpOnce();

  // Pumps whenever epoll reports PollFd() ready, until `done()` holds after a
  // Pump (OK), Pump fails (its error) or `timeout` passes
  // (kDeadlineExceeded).
  absl::Status PumpUntil(const std::function<bool()>& done,
                         absl::Duration timeout);

  // PumpUntil() frames().size() >= count.
  absl::Status PumpUntilFrames(size_t count, absl::Duration timeout);

  // Pumps until Pump() fails and returns that error, or kDeadlineExceeded.
  absl::Status PumpUntilError(absl::Duration timeout);

  // Waits, without pumping, until PollFd() is readable (POLLIN); false if
  // `timeout` passes first.
  bool WaitReadable(absl::Duration timeout);

  std::vector<std::string>& frames() { return frames_; }

 private:
  void UpdateEvents();

  Channel* const channel_;
  UniqueFd epoll_fd_;
  uint32_t registered_events_ = 0;
  std::vector<std::string> frames_;
};

// A pipe for a test's own signalling between parent and child (hand read_fd()
// or write_fd() to ForkedChild's keep list). Both ends are close-on-exec and
// closed with the object.
class SignalPipe {
 public:
  SignalPipe();
  SignalPipe(const SignalPipe&) = delete;
  SignalPipe& operator=(const SignalPipe&) = delete;

  // Writes one byte; false if that failed.
  bool Signal() const;
  // Waits up to `timeout` for one byte; false if none came.
  bool Await(absl::Duration timeout) const;

  int read_fd() const { return read_.get(); }
  int write_fd() const { return write_.get(); }

 private:
  UniqueFd read_;
  UniqueFd write_;
};

// Makes SIGPIPE kill this process again while in scope, so that a transport
// that writes to a closed peer without MSG_NOSIGNAL (or equivalent) fails the
// test even when the test runner started us with SIGPIPE ignored.
class ScopedDefaultSigpipe {
 public:
  ScopedDefaultSigpipe();
  ~ScopedDefaultSigpipe();
  ScopedDefaultSigpipe(const ScopedDefaultSigpipe&) = delete;
  ScopedDefaultSigpipe& operator=(const ScopedDefaultSigpipe&) = delete;

 private:
  void (*old_)(int);
};

// `size` bytes, a function of (size, seed), cheap to make and check.
std::string Pattern(size_t size, uint64_t seed);

// Equality of byte strings that prints sizes and the first difference
// instead of the strings themselves (they may be hundreds of MiB).
::testing::AssertionResult SameBytes(const std::string& got,
                                     const std::string& want);

// Descriptors open in this process now.
int CountOpenFds();

// Closes endpoint->fds and clears them (the parent's copies, once the child
// has its own).
void CloseEndpoint(ChildEndpoint* endpoint);

}  // namespace transport_testing
}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_TESTING_HARNESS_H_
