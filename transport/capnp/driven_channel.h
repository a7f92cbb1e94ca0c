// A Channel whose Cap'n Proto RPC connection is driven by the thread that
// uses the channel, with no event-loop thread of its own: the parent's end of
// a local capnp channel.
//
//   user thread (the pool's I/O: a caller or the manager, one at a time)
//   Send(frame) -> push() calls on the RPC connection, written at once
//   Poll()/Pump() -> one non-blocking turn of the channel's KJ event loop:
//                    reads what arrived, answers the worker's push() calls,
//                    and hands out the frames they completed
//
// Why (tools/BENCHMARKS.md, "capnp"): with a KJ thread per channel
// (ThreadedChannel) a round trip crossed four threads on the parent's side
// (caller -> KJ thread -> worker -> KJ thread -> manager or caller) and cost
// ~5 sleeping wake-ups; on a 2-core machine the KJ thread and the worker
// then took turns on one CPU (perf sched: ~50 us of scheduling delay each
// way). Driven from the caller's thread, a round trip crosses only the
// caller and the worker, as with the unix transport.
//
// How a KJ loop can be driven by more than one thread: kj::EventLoop binds to
// a thread only while a kj::WaitScope for it exists (the thread-local
// "current loop"), and every call here makes one on the calling thread and
// destroys it before returning. So the channel is used by one thread at a
// time (the Channel contract; the pool's io_mu_), and a thread that already
// runs a KJ event loop of its own must not use it (KJ allows one current loop
// per thread: the call fails with kInternal).
//
// PollFd() is an epoll set of the channel's own, readable when the socket is
// (the worker sent something), when a write waits for space in the socket,
// or when a Send() took in frames that no Pump() handed out yet (a pending
// eventfd): any call turns the loop, which reads whatever arrived, and only
// Poll()/Pump() hand frames out. PollEvents() is always EPOLLIN.
//
// Package-internal (KJ types below); capnp_transport.cc makes these.
#ifndef PROCPOOL_TRANSPORT_CAPNP_DRIVEN_CHANNEL_H_
#define PROCPOOL_TRANSPORT_CAPNP_DRIVEN_CHANNEL_H_

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <capnp/rpc-twoparty.h>
#include <kj/async-unix.h>
#include <kj/async.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "transport/capnp/rpc_common.h"
#include "transport/transport.h"

namespace procpool {
namespace capnp_internal {

class FdStream;

class DrivenChannel final : public Channel, public FrameReceiver {
 public:
  // Takes ownership of `socket_fd` (a connected stream socket), also when it
  // fails. `peer_name` names the other end in errors ("worker").
  static absl::StatusOr<std::unique_ptr<DrivenChannel>> Open(
      int socket_fd, std::string peer_name);

  ~DrivenChannel() noexcept override;
  DrivenChannel(const DrivenChannel&) = delete;
  DrivenChannel& operator=(const DrivenChannel&) = delete;

  absl::Status Send(std::string frame) override;
  absl::Status Pump(std::vector<std::string>* frames) override;
  absl::Status Poll(std::vector<std::string>* frames, bool stay) override;
  int PollFd() const override { return poll_fd_; }
  uint32_t PollEvents() const override;
  absl::Status SendBlocking(absl::string_view frame) override;
  absl::StatusOr<std::string> ReceiveBlocking() override;

 private:
  explicit DrivenChannel(std::string peer_name);
  void Init(int socket_fd, bool* fd_taken);

  // Runs `body` with the event loop current on this thread, then turns the
  // loop until nothing is left to do without blocking. A KJ exception becomes
  // the channel's error.
  template <typename Body>
  void Drive(absl::string_view context, Body&& body);

  // After a call that does not hand frames out: makes PollFd() readable if
  // frames or an error wait for Pump(). After every call: watches the socket
  // for space while a write waits for it.
  void UpdatePollFd(bool handed_out);

  void Fail(absl::Status status);
  void Wake();
  // FrameReceiver: inside Drive(), on the driving thread.
  void OnFrame(std::string frame) override;

  const std::string peer_name_;
  int poll_fd_ = -1;     // PollFd(): an epoll set of the socket and pending_fd_
  int pending_fd_ = -1;  // an eventfd: frames wait for Pump()
  bool pending_signaled_ = false;
  bool watching_output_ = false;  // the socket is in poll_fd_ with EPOLLOUT
  // Destroyed in the order the destructor spells out; the loop last.
  std::unique_ptr<kj::UnixEventPort> port_;
  std::unique_ptr<kj::EventLoop> loop_;
  int socket_fd_ = -1;  // owned by stream_
  kj::Own<FdStream> stream_;
  std::unique_ptr<ObservedMessageStream> messages_;
  std::unique_ptr<capnp::TwoPartyVatNetwork> network_;
  std::unique_ptr<capnp::RpcSystem<capnp::rpc::twoparty::VatId>> rpc_;
  std::unique_ptr<FrameSink::Client> peer_;
  std::unique_ptr<ErrorHandler> handler_;
  std::unique_ptr<kj::TaskSet> tasks_;
  kj::Own<kj::PromiseFulfiller<void>> waiter_;  // a blocking call's wait

  std::deque<std::string> ready_;  // frames received and not handed out
  absl::Status status_;            // the first error
};

}  // namespace capnp_internal
}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_CAPNP_DRIVEN_CHANNEL_H_
