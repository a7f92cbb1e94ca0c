// Pieces of the "capnp" transport shared by its local channels
// (capnp_transport.cc) and its remote ones (remote.cc): KJ exceptions as
// absl::Status, the FrameSink that reassembles frames, pushing a frame in
// chunks, the message stream that watches traffic, and disconnect detection.
//
// Package-internal: KJ and Cap'n Proto types appear here, so no header
// outside transport/capnp may include it (BUILD keeps it private).
//
// Thread safety: everything here runs on the thread of the KJ event loop it
// was made on.
#ifndef PROCPOOL_TRANSPORT_CAPNP_RPC_COMMON_H_
#define PROCPOOL_TRANSPORT_CAPNP_RPC_COMMON_H_

#include <functional>
#include <string>
#include <utility>

#include <capnp/rpc-twoparty.h>
#include <capnp/serialize-async.h>
#include <kj/async-io.h>
#include <kj/async.h>
#include <kj/exception.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "transport/capnp/frame_sink.capnp.h"

namespace procpool {
namespace capnp_internal {

using capnp_transport::FrameSink;

// The one conversion of KJ exceptions: DISCONNECTED (the peer closed or died,
// a write met EPIPE/ECONNRESET, a premature EOF) is kUnavailable; FAILED (a
// stream that is not valid Cap'n Proto RPC) is kDataLoss. The RPC system
// reports every broken connection as DISCONNECTED, also one it dropped itself
// over bytes that are not Cap'n Proto; `peer_open` (the peer's end of the
// socket is still open) tells that case apart: kDataLoss.
absl::Status StatusFromKj(const kj::Exception& e, absl::string_view context,
                          bool peer_open = false);

// Runs `func`, turning a KJ (or std::) exception into a status.
template <typename Func>
absl::Status CatchKj(absl::string_view context, Func&& func) {
  KJ_IF_MAYBE(e, kj::runCatchingExceptions(kj::fwd<Func>(func))) {
    return StatusFromKj(*e, context);
  }
  return absl::OkStatus();
}

// Hands every failed task's exception to `on_error`, as a status whose
// message starts with `context`.
class ErrorHandler final : public kj::TaskSet::ErrorHandler {
 public:
  ErrorHandler(std::string context, std::function<void(absl::Status)> on_error)
      : context_(std::move(context)), on_error_(std::move(on_error)) {}
  void taskFailed(kj::Exception&& exception) override {
    on_error_(StatusFromKj(exception, context_));
  }

 private:
  const std::string context_;
  std::function<void(absl::Status)> on_error_;
};

// Where a FrameSink delivers complete frames. Called on the KJ loop's thread.
class FrameReceiver {
 public:
  virtual ~FrameReceiver() = default;
  virtual void OnFrame(std::string frame) = 0;
};

// The bootstrap capability each side exports: reassembles chunks into frames
// and answers ping() at once.
class FrameSinkImpl final : public FrameSink::Server {
 public:
  // `receiver` must outlive the RPC system that owns this object.
  explicit FrameSinkImpl(FrameReceiver* receiver) : receiver_(receiver) {}

  kj::Promise<void> push(PushContext context) override;
  kj::Promise<void> ping(PingContext context) override;

 private:
  FrameReceiver* const receiver_;
  std::string partial_;  // chunks of the frame being received
};

// Issues the push() calls that carry the frame made of `parts` (in order) to
// `peer`, copying the bytes into the calls' messages (the parts may go away
// on return); returns their answers. If `last_message` is given, it is set to
// an address inside the message of the last call (see
// ObservedMessageStream::Mark).
kj::Array<kj::Promise<void>> PushFrame(FrameSink::Client& peer,
                                       absl::Span<const absl::string_view> parts,
                                       const void** last_message = nullptr);
inline kj::Array<kj::Promise<void>> PushFrame(
    FrameSink::Client& peer, absl::string_view frame,
    const void** last_message = nullptr) {
  return PushFrame(peer, absl::MakeConstSpan(&frame, 1), last_message);
}

// The FrameSink the other side (`peer_side`) exports.
FrameSink::Client Bootstrap(capnp::RpcSystem<capnp::rpc::twoparty::VatId>& rpc,
                            capnp::rpc::twoparty::Side peer_side);

// A message stream over `stream` that watches the traffic:
//  * Mark(address) / marker_written(): whether the message holding a marked
//    address (inside the last call of a frame) has been written to the socket.
//    With it a worker tells "the parent closed after my frame was written"
//    (success, as on a plain socket) from "before" (kUnavailable).
//  * `on_read` (if set) runs whenever a whole message arrived: the heartbeat's
//    evidence that the peer is alive.
class ObservedMessageStream final : public capnp::MessageStream {
 public:
  // `stream` must outlive this object.
  explicit ObservedMessageStream(kj::AsyncIoStream& stream,
                                 std::function<void()> on_read = nullptr)
      : inner_(stream), on_read_(std::move(on_read)) {}

  // Returns a promise that resolves once the message holding `address` is
  // written (it never resolves if the write fails: the connection then
  // breaks, which its owner learns from the RPC system).
  kj::Promise<void> Mark(const void* address) {
    marker_ = static_cast<const capnp::word*>(address);
    marker_written_ = false;
    auto paf = kj::newPromiseAndFulfiller<void>();
    marker_fulfiller_ = kj::mv(paf.fulfiller);
    return kj::mv(paf.promise);
  }
  bool marker_written() const { return marker_written_; }

  kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> tryReadMessage(
      kj::ArrayPtr<kj::AutoCloseFd> fd_space, capnp::ReaderOptions options,
      kj::ArrayPtr<capnp::word> scratch) override;
  kj::Promise<void> writeMessage(
      kj::ArrayPtr<const int> fds,
      kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) override;
  kj::Promise<void> writeMessages(
      kj::ArrayPtr<kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>>
          messages) override;
  kj::Maybe<int> getSendBufferSize() override {
    return inner_.getSendBufferSize();
  }
  kj::Promise<void> end() override { return inner_.end(); }

 private:
  bool HoldsMarker(
      kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) const;

  capnp::AsyncIoMessageStream inner_;
  std::function<void()> on_read_;
  // Whether `segments` hold the marker; if so, marks it written once
  // `written` resolves.
  kj::Promise<void> WatchMarker(kj::Promise<void> written, bool marked);

  const capnp::word* marker_ = nullptr;
  bool marker_written_ = false;
  kj::Own<kj::PromiseFulfiller<void>> marker_fulfiller_;
};

// Resolves when `network` is disconnected, then calls `on_disconnect` with
// why: kUnavailable "the <peer_name> closed the channel" when the peer closed
// or died, kDataLoss when its end of `socket_fd` is still open (we dropped the
// connection over bad bytes). `socket_fd` < 0: unknown (never kDataLoss).
kj::Promise<void> WhenDisconnected(
    capnp::TwoPartyVatNetwork& network, FrameSink::Client& peer, int socket_fd,
    std::string peer_name, std::function<void(absl::Status)> on_disconnect);

// The RPC stack of one end of a channel, shared by every capnp channel: a
// watched message stream over `stream`, the two-party network (this end is
// `side`), the RPC system exporting a FrameSink that hands complete frames to
// `receiver`, the peer's FrameSink, and a task set whose failures go to
// `on_error` as a status (the peer's disconnect too, via WhenDisconnected:
// `socket_fd`, if known, tells a dropped connection from a closed one).
// Made and destroyed with its event loop current; its members are destroyed
// in the order the RPC system needs (tasks first, the message stream last).
class FrameConnection {
 public:
  FrameConnection(kj::AsyncIoStream& stream, int socket_fd,
                  capnp::rpc::twoparty::Side side, FrameReceiver* receiver,
                  const std::string& peer_name,
                  std::function<void(absl::Status)> on_error,
                  std::function<void()> on_read = nullptr);
  FrameConnection(const FrameConnection&) = delete;
  FrameConnection& operator=(const FrameConnection&) = delete;

  ObservedMessageStream& messages() { return messages_; }
  FrameSink::Client& peer() { return peer_; }
  // Promises the connection keeps until they settle (failures: on_error).
  kj::TaskSet& tasks() { return tasks_; }

 private:
  ObservedMessageStream messages_;
  capnp::TwoPartyVatNetwork network_;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc_;
  FrameSink::Client peer_;
  ErrorHandler handler_;
  kj::TaskSet tasks_;
};

// How long a worker that has just sent or received a frame keeps its event
// loop spinning (SpinUntilReady) before it sleeps in epoll: the caller's next
// frame usually comes within a round trip, and a worker that sleeps costs it
// a wake-up of ~10-20 us on the 2-core VM. Measured in tools/BENCHMARKS.md
// ("capnp").
inline constexpr absl::Duration kSpinBeforeSleep = absl::Microseconds(100);

// Runs the event loop of `wait_scope` without blocking (each round polls its
// descriptors once: epoll_wait with no timeout) until `promise` is ready,
// `budget` passed, or this thread was preempted (a gap in its clock readings:
// it then competes with the thread it waits for, and sleeping lets the
// scheduler place the two apart). Returns whether `promise` is ready:
// promise.wait() then returns at once; otherwise it blocks as usual.
bool SpinUntilReady(kj::Promise<void>& promise, kj::WaitScope& wait_scope,
                    absl::Duration budget);

// absl::Duration -> kj::Duration.
kj::Duration ToKj(absl::Duration d);

}  // namespace capnp_internal
}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_CAPNP_RPC_COMMON_H_
