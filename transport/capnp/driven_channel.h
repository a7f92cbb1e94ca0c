// A Channel whose Cap'n Proto RPC connection runs on a KJ event loop that
// the channel's user drives itself whenever it calls, and a thread of the
// channel's own drives otherwise: the parent's end of a local capnp channel.
//
//   user thread (the pool's I/O: a caller or the manager)
//   Send(frame) -> push() calls on the RPC connection, written at once
//   Poll()/Pump() -> one non-blocking turn of the loop: reads what arrived,
//                    answers the worker's push() calls, hands out frames
//   loop thread (one per channel, the bridge to the manager)
//   sleeps in poll() on the socket; when the worker sent something and no
//   user is polling, turns the loop, and signals PollFd() (an eventfd) once
//   frames wait; keeps writing a big frame as the socket drains
//
// Why (tools/BENCHMARKS.md, "capnp"): when only the loop thread ran the
// connection (ThreadedChannel, still used by remote channels), a round trip
// crossed it twice (caller -> loop thread -> worker -> loop thread -> the
// caller polling for it) and cost ~5 sleeping wake-ups; on a 2-core machine
// the loop thread and the worker took turns on one CPU while the caller spun
// on the other (perf sched: 20-90 us of scheduling delay per hop). Driven
// from the caller's thread, a round trip crosses only the caller and the
// worker, as with the unix transport: a caller writes its Call itself, and a
// caller polling for its result (Poll with `stay`) reads it itself while the
// loop thread leaves the socket alone.
//
// How a KJ loop can be driven by more than one thread: kj::EventLoop binds to
// a thread only while a kj::WaitScope for it exists (the thread-local
// "current loop"); every turn here makes one on the calling thread, under
// mu_, and destroys it before returning. A thread that already runs a KJ
// event loop of its own cannot be the user (KJ allows one current loop per
// thread: the call fails with the channel's error).
//
// PollFd() is readable exactly while frames (or the channel's error) wait for
// Poll()/Pump(): the RPC's own traffic (Return, Finish) wakes only the loop
// thread. PollEvents() is always EPOLLIN.
//
// Thread safety: the Channel's methods may be called from any thread, one at
// a time (the Channel contract); they and the loop thread share everything
// under mu_.
// Package-internal (KJ types below); capnp_transport.cc makes these.
#ifndef PROCPOOL_TRANSPORT_CAPNP_DRIVEN_CHANNEL_H_
#define PROCPOOL_TRANSPORT_CAPNP_DRIVEN_CHANNEL_H_

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <capnp/rpc-twoparty.h>
#include <kj/async-unix.h>
#include <kj/async.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/unique_fd.h"
#include "transport/capnp/rpc_common.h"
#include "transport/transport.h"

namespace procpool {
namespace capnp_internal {

class FdStream;

class DrivenChannel final : public Channel, public FrameReceiver {
 public:
  // Takes `socket` (a connected stream socket), also when it fails.
  // `peer_name` names the other end in errors ("worker").
  static absl::StatusOr<std::unique_ptr<DrivenChannel>> Open(
      UniqueFd socket, std::string peer_name);

  ~DrivenChannel() noexcept override;
  DrivenChannel(const DrivenChannel&) = delete;
  DrivenChannel& operator=(const DrivenChannel&) = delete;

  absl::Status Send(std::string frame) override;
  // The parts go straight into the push() calls' messages (no frame is built
  // around a big argument first); `owner` is released on return.
  absl::Status SendParts(std::vector<absl::string_view> parts,
                         std::shared_ptr<const void> owner) override;
  absl::Status Pump(std::vector<std::string>* frames) override;
  // With `stay`, the loop thread leaves the socket to the caller until
  // Poll(frames, false) or Pump().
  absl::Status Poll(std::vector<std::string>* frames, bool stay) override;
  int PollFd() const override { return pending_fd_.get(); }
  uint32_t PollEvents() const override;
  absl::Status SendBlocking(absl::string_view frame) override;
  absl::StatusOr<std::string> ReceiveBlocking() override;

 private:
  DrivenChannel(std::string peer_name, UniqueFd pending_fd, UniqueFd kick_fd);
  // Moves `*socket` into the stream once KJ can own it (left in `*socket`
  // when Init() throws before that).
  void Init(UniqueFd* socket) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Runs `body` with the event loop current on this thread, then turns the
  // loop until nothing is left to do without blocking. A KJ exception becomes
  // the channel's error.
  template <typename Body>
  void Drive(absl::string_view context, Body&& body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // After a turn: signals PollFd() if frames or an error wait (and
  // `handed_out` is false), or takes the signal back once nothing waits;
  // wakes the loop thread if it must watch the socket for more than it does.
  void AfterTurn(bool handed_out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The poll() events the loop thread should wait for on the socket.
  short LoopThreadEvents() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunLoopThread();

  void Fail(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Wake() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FrameReceiver: inside Drive(), so under mu_.
  void OnFrame(std::string frame) override;

  const std::string peer_name_;
  const UniqueFd pending_fd_;  // PollFd(): an eventfd, set while frames wait
  const UniqueFd kick_fd_;     // an eventfd that wakes the loop thread
  int socket_fd_ = -1;  // owned by stream_; set before the thread starts
  std::thread thread_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Set by the loop thread once it runs (its start-up, ASan's per-thread set-
  // up included, is over) and before it first sleeps. Open() waits for it:
  // a fork() right after Open() (the conformance harness's child; a kFork
  // worker) must not copy an allocator lock that the new thread holds
  // mid-start-up (seen under ASan: the child hung in its first refill).
  bool loop_thread_started_ ABSL_GUARDED_BY(mu_) = false;
  bool user_polling_ ABSL_GUARDED_BY(mu_) = false;  // Poll() with `stay`
  bool pending_signaled_ ABSL_GUARDED_BY(mu_) = false;
  short loop_thread_events_ ABSL_GUARDED_BY(mu_) = 0;  // what it waits for
  std::deque<std::string> ready_ ABSL_GUARDED_BY(mu_);  // not handed out
  absl::Status status_ ABSL_GUARDED_BY(mu_);            // the first error

  // The KJ state, used under mu_ only; destroyed in the order the destructor
  // spells out, the loop last.
  std::unique_ptr<kj::UnixEventPort> port_;
  std::unique_ptr<kj::EventLoop> loop_;
  kj::Own<FdStream> stream_;
  std::unique_ptr<FrameConnection> conn_;
  kj::Own<kj::PromiseFulfiller<void>> waiter_;  // a blocking call's wait
};

}  // namespace capnp_internal
}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_CAPNP_DRIVEN_CHANNEL_H_
