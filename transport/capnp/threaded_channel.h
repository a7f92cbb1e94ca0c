// A Channel whose Cap'n Proto RPC connection runs on a KJ event-loop thread of
// its own: both ends of a remote capnp channel (the parent's, so that
// heartbeats run while nobody polls; the worker's, so that the worker answers
// heartbeats while its only other thread runs a task). A local channel's
// parent end is a DrivenChannel instead (driven_channel.h says why).
//
//   user thread                      KJ thread (one per channel)
//   Send(frame) -> outgoing queue -> wake eventfd -> push() calls, no waiting
//   Pump() <- incoming queue <- ready eventfd (PollFd) <- FrameSink::push()
//
// The KJ thread first asks its StreamOpener for the connection (a TCP connect
// + TLS + authentication, or an accepted connection); frames sent meanwhile
// wait in the queue, and a failure to open becomes the channel's error. Then it
// serves the RPC connection until the channel is destroyed.
//
// Send() never blocks: it queues under a mutex and writes the KJ thread's wake
// eventfd when the queue was empty. PollFd() is an eventfd the KJ thread makes
// readable when a frame completes or the channel fails, and Pump() reads it
// back to zero under the same mutex, so it is readable exactly when Pump() has
// something to hand out. PollEvents() is always EPOLLIN. SendBlocking() is
// Send(), or with `acknowledged_sends` waits until the peer answered every
// push() of the frame (its event loop has queued it): a worker that sends its
// result and exits at once cannot lose it.
//
// Heartbeats (heartbeat_interval > 0): the KJ thread pings the peer every
// interval and records when any message last arrived from it; when nothing
// arrived for heartbeat_timeout, the channel fails with kUnavailable "no
// heartbeat from <peer> for <timeout>". It looks every min(interval,
// timeout / 8), so the error comes within timeout + timeout / 8 of the last
// message.
//
// Package-internal (KJ types below): remote.h and capnp_transport.h are the
// package's public headers.
//
// Thread safety: as a Channel (one user thread at a time); the KJ thread and
// the user thread share only the members guarded by mu_.
#ifndef PROCPOOL_TRANSPORT_CAPNP_THREADED_CHANNEL_H_
#define PROCPOOL_TRANSPORT_CAPNP_THREADED_CHANNEL_H_

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"
#include "transport/capnp/rpc_common.h"
#include "transport/capnp/stream_opener.h"
#include "transport/transport.h"

namespace procpool {
namespace capnp_internal {

struct ThreadedChannelOptions {
  // Our side of the two-party connection (the parent is CLIENT).
  capnp::rpc::twoparty::Side side = capnp::rpc::twoparty::Side::CLIENT;
  // The peer in messages: "worker", "worker daemon at 10.0.0.2:7000".
  std::string peer_name = "worker";
  // Zero: no heartbeats.
  absl::Duration heartbeat_interval = absl::ZeroDuration();
  absl::Duration heartbeat_timeout = absl::ZeroDuration();
  // SendBlocking() waits for the peer's answers (see the file comment).
  bool acknowledged_sends = false;
  // Called at most once, on the KJ thread, with the channel's first error if
  // that came after the stream opened (a failure to open is reported by
  // WaitUntilOpen() and Pump() only).
  std::function<void(const absl::Status&)> on_error;
};

class ThreadedChannel final : public Channel, public FrameReceiver {
 public:
  // Starts the KJ thread, which opens the stream with `opener`.
  static absl::StatusOr<std::unique_ptr<ThreadedChannel>> Start(
      std::unique_ptr<StreamOpener> opener, ThreadedChannelOptions options);

  ~ThreadedChannel() override;
  ThreadedChannel(const ThreadedChannel&) = delete;
  ThreadedChannel& operator=(const ThreadedChannel&) = delete;

  // Blocks until the stream is open (OK) or the channel failed (its error),
  // or `timeout` passed (kDeadlineExceeded).
  absl::Status WaitUntilOpen(absl::Duration timeout);

  absl::Status Send(std::string frame) override;
  absl::Status Pump(std::vector<std::string>* frames) override;
  // Costs no system call and takes no lock when nothing arrived; with
  // `stay`, frames that arrive do not signal PollFd() until Poll(false) or
  // Pump().
  absl::Status Poll(std::vector<std::string>* frames, bool stay) override;
  bool PollIsCheap() const override { return true; }
  int PollFd() const override { return ready_fd_.get(); }
  uint32_t PollEvents() const override;
  absl::Status SendBlocking(absl::string_view frame) override;
  absl::StatusOr<std::string> ReceiveBlocking() override;

 private:
  ThreadedChannel(std::unique_ptr<StreamOpener> opener,
                  ThreadedChannelOptions options, UniqueFd wake_fd,
                  UniqueFd ready_fd);

  void WakeKjThreadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SignalReadyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TakeReadySignalLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Records the channel's first error and tells the user thread.
  void SetError(absl::Status status);

  // FrameReceiver, on the KJ thread.
  void OnFrame(std::string frame) override;

  // The KJ thread.
  void RunKjThread();
  void RunKjLoop();
  // Resolves when the destructor asks the KJ thread to stop.
  kj::Promise<void> StopRequested(kj::UnixEventPort::FdObserver& wake);
  // Pings the peer and checks that it was heard from; runs until it fails
  // the channel.
  kj::Promise<void> Heartbeat(kj::Timer& timer, FrameSink::Client& peer,
                              kj::TaskSet& tasks);

  // Constant after construction.
  const ThreadedChannelOptions options_;
  const UniqueFd wake_fd_;   // eventfd: the user thread wakes the KJ thread
  const UniqueFd ready_fd_;  // PollFd(): the KJ thread wakes the user thread
  std::unique_ptr<StreamOpener> opener_;  // used by the KJ thread only
  std::thread thread_;

  // KJ thread only.
  kj::TimePoint last_heard_ = kj::origin<kj::TimePoint>();
  kj::TimePoint last_ping_ = kj::origin<kj::TimePoint>();

  // Lock-free hints for Poll(), written under mu_ or (stay_) by the user
  // thread.
  // incoming_ is not empty or status_ is an error: Poll() must lock.
  std::atomic<bool> news_{false};
  // The user thread polls with `stay`: OnFrame() need not signal ready_fd_.
  std::atomic<bool> stay_{false};

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool ready_signaled_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> outgoing_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> incoming_ ABSL_GUARDED_BY(mu_);
  // Frames queued by Send() since the start, and those the peer answered.
  uint64_t frames_queued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t frames_acknowledged_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace capnp_internal
}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_CAPNP_THREADED_CHANNEL_H_
