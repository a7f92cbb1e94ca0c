// The "capnp" transport (see capnp_transport.h for the design).
//
// Everything KJ or Cap'n Proto lives in this file. KJ exceptions become
// absl::Status in one place: StatusFromKj() (used directly by TaskSet error
// handlers, and through CatchKj() around every call that may throw).
#include "transport/capnp/capnp_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <capnp/any.h>
#include <capnp/rpc-twoparty.h>
#include <capnp/serialize-async.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <kj/async.h>
#include <kj/exception.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/posix_error.h"
#include "transport/capnp/frame_sink.capnp.h"
#include "transport/transport.h"

namespace procpool {
namespace {

using capnp_transport::FrameSink;

// The one conversion of KJ exceptions: DISCONNECTED (the peer closed or died,
// a write met EPIPE/ECONNRESET, a premature EOF) is kUnavailable; FAILED (a
// stream that is not valid Cap'n Proto RPC) is kDataLoss. The RPC system
// reports every broken connection as DISCONNECTED, also one it dropped itself
// over bytes that are not Cap'n Proto; `peer_open` (the peer's end of the
// socket is still open) tells that case apart: kDataLoss.
absl::Status StatusFromKj(const kj::Exception& e, absl::string_view context,
                          bool peer_open = false) {
  const std::string message = absl::StrCat("capnp transport: ", context, ": ",
                                           e.getDescription().cStr());
  switch (e.getType()) {
    case kj::Exception::Type::DISCONNECTED:
      if (peer_open) {
        return absl::DataLossError(absl::StrCat(
            message, " (the peer is still connected: its bytes are not a "
                     "valid Cap'n Proto RPC stream)"));
      }
      return absl::UnavailableError(message);
    case kj::Exception::Type::OVERLOADED:
      return absl::ResourceExhaustedError(message);
    case kj::Exception::Type::UNIMPLEMENTED:
      return absl::UnimplementedError(message);
    case kj::Exception::Type::FAILED:
    default:
      return absl::DataLossError(message);
  }
}

// Runs `func`, turning a KJ (or std::) exception into a status.
template <typename Func>
absl::Status CatchKj(absl::string_view context, Func&& func) {
  KJ_IF_MAYBE(e, kj::runCatchingExceptions(kj::fwd<Func>(func))) {
    return StatusFromKj(*e, context);
  }
  return absl::OkStatus();
}

// Where a FrameSink delivers complete frames. Called on the KJ loop's thread.
class FrameReceiver {
 public:
  virtual ~FrameReceiver() = default;
  virtual void OnFrame(std::string frame) = 0;
};

// The bootstrap capability each side exports: reassembles chunks into frames.
class FrameSinkImpl final : public FrameSink::Server {
 public:
  // `receiver` must outlive the RPC system that owns this object.
  explicit FrameSinkImpl(FrameReceiver* receiver) : receiver_(receiver) {}

  kj::Promise<void> push(PushContext context) override {
    FrameSink::PushParams::Reader params = context.getParams();
    const capnp::Data::Reader chunk = params.getChunk();
    partial_.append(reinterpret_cast<const char*>(chunk.begin()),
                    chunk.size());
    if (params.getLast()) {
      receiver_->OnFrame(std::move(partial_));
      partial_ = std::string();
    }
    return kj::READY_NOW;
  }

 private:
  FrameReceiver* const receiver_;
  std::string partial_;  // chunks of the frame being received
};

// Issues the push() calls that carry `frame` to `peer`; returns their answers.
// If `last_message` is given, it is set to an address inside the message of
// the last call (see MarkingMessageStream).
kj::Array<kj::Promise<void>> PushFrame(FrameSink::Client& peer,
                                       absl::string_view frame,
                                       const void** last_message = nullptr) {
  kj::Vector<kj::Promise<void>> answers;
  size_t offset = 0;
  do {
    const size_t n = std::min(kCapnpChunkSize, frame.size() - offset);
    auto request = peer.pushRequest(capnp::MessageSize{n / 8 + 16, 0});
    request.setChunk(capnp::Data::Reader(
        reinterpret_cast<const kj::byte*>(frame.data()) + offset, n));
    request.setLast(offset + n == frame.size());
    if (last_message != nullptr) {
      FrameSink::PushParams::Builder params = request;
      *last_message =
          capnp::AnyStruct::Builder(kj::mv(params)).getDataSection().begin();
    }
    answers.add(request.send().ignoreResult());
    offset += n;
  } while (offset < frame.size());
  return answers.releaseAsArray();
}

// The FrameSink the other side (`peer_side`) exports.
FrameSink::Client Bootstrap(capnp::RpcSystem<capnp::rpc::twoparty::VatId>& rpc,
                            capnp::rpc::twoparty::Side peer_side) {
  capnp::MallocMessageBuilder message(16);
  auto vat_id = message.initRoot<capnp::rpc::twoparty::VatId>();
  vat_id.setSide(peer_side);
  return rpc.bootstrap(vat_id).castAs<FrameSink>();
}

// The child's message stream: notes when the message that holds a marked
// address (inside the last call of a frame) has been written to the socket.
// With it SendBlocking() tells "the parent closed after my frame was written"
// (success, as on a plain socket) from "before" (kUnavailable).
class MarkingMessageStream final : public capnp::MessageStream {
 public:
  // `stream` must outlive this object.
  explicit MarkingMessageStream(kj::AsyncIoStream& stream) : inner_(stream) {}

  void Mark(const void* address) {
    marker_ = static_cast<const capnp::word*>(address);
    marker_written_ = false;
  }
  bool marker_written() const { return marker_written_; }

  kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> tryReadMessage(
      kj::ArrayPtr<kj::AutoCloseFd> fd_space, capnp::ReaderOptions options,
      kj::ArrayPtr<capnp::word> scratch) override {
    return inner_.tryReadMessage(fd_space, options, scratch);
  }

  kj::Promise<void> writeMessage(
      kj::ArrayPtr<const int> fds,
      kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) override {
    kj::Promise<void> written = inner_.writeMessage(fds, segments);
    if (!HoldsMarker(segments)) return written;
    return written.then([this] { marker_written_ = true; });
  }

  kj::Promise<void> writeMessages(
      kj::ArrayPtr<kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>>
          messages) override {
    bool marked = false;
    for (auto& segments : messages) marked = marked || HoldsMarker(segments);
    kj::Promise<void> written = inner_.writeMessages(messages);
    if (!marked) return written;
    return written.then([this] { marker_written_ = true; });
  }

  kj::Maybe<int> getSendBufferSize() override {
    return inner_.getSendBufferSize();
  }
  kj::Promise<void> end() override { return inner_.end(); }

 private:
  bool HoldsMarker(
      kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) const {
    if (marker_ == nullptr) return false;
    for (const auto& segment : segments) {
      if (marker_ >= segment.begin() && marker_ < segment.end()) return true;
    }
    return false;
  }

  capnp::AsyncIoMessageStream inner_;
  const capnp::word* marker_ = nullptr;
  bool marker_written_ = false;
};

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

// Resolves when `network` is disconnected; rejects with the reason when there
// is one. onDisconnect() itself only resolves, so this then probes `peer` with
// an empty, not-last chunk (a no-op if it were ever delivered): a call on a
// broken connection fails with the exception that broke it (DISCONNECTED for
// an end of stream, FAILED for bytes that are not Cap'n Proto RPC).
// Then calls `on_disconnect` with the status: kUnavailable naming `peer_name`
// ("worker", "parent") when it closed or died, kDataLoss when its end of
// `socket_fd` is still open (we dropped the connection over bad bytes).
kj::Promise<void> WhenDisconnected(
    capnp::TwoPartyVatNetwork& network, FrameSink::Client& peer, int socket_fd,
    std::string peer_name, std::function<void(absl::Status)> on_disconnect) {
  return network.onDisconnect()
      .then([&peer] {
        auto probe = peer.pushRequest(capnp::MessageSize{8, 0});
        probe.setLast(false);
        return probe.send().ignoreResult();
      })
      .then(
          [peer_name, on_disconnect] {
            on_disconnect(absl::UnavailableError(absl::StrCat(
                "capnp transport: the ", peer_name, " closed the channel")));
          },
          [socket_fd, peer_name, on_disconnect](kj::Exception&& e) {
            struct pollfd p = {socket_fd, POLLRDHUP, 0};
            const bool peer_open =
                poll(&p, 1, 0) == 0 ||
                (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) == 0;
            on_disconnect(StatusFromKj(
                e, absl::StrCat("the connection to the ", peer_name),
                peer_open));
          });
}

absl::StatusOr<int> MakeEventFd() {
  const int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return PosixError("capnp transport: eventfd", errno);
  return fd;
}

void SignalEventFd(int fd) {
  const uint64_t one = 1;
  while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

void DrainEventFd(int fd) {
  uint64_t value;
  while (read(fd, &value, sizeof(value)) < 0 && errno == EINTR) {
  }
}

// The parent's end: the manager thread calls Send()/Pump(); a KJ thread of
// the channel's own runs the RPC connection. They share the queues under mu_.
class ParentChannel final : public Channel, public FrameReceiver {
 public:
  // Takes ownership of `socket_fd` (connected, close-on-exec), also on
  // failure.
  static absl::StatusOr<std::unique_ptr<Channel>> Create(int socket_fd) {
    absl::StatusOr<int> wake_fd = MakeEventFd();
    if (!wake_fd.ok()) {
      close(socket_fd);
      return wake_fd.status();
    }
    absl::StatusOr<int> ready_fd = MakeEventFd();
    if (!ready_fd.ok()) {
      close(socket_fd);
      close(*wake_fd);
      return ready_fd.status();
    }
    return std::unique_ptr<Channel>(
        new ParentChannel(socket_fd, *wake_fd, *ready_fd));
  }

  ~ParentChannel() override {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
      WakeKjThreadLocked();
    }
    thread_.join();
    close(wake_fd_);
    close(ready_fd_);
  }

  ParentChannel(const ParentChannel&) = delete;
  ParentChannel& operator=(const ParentChannel&) = delete;

  absl::Status Send(std::string frame) override {
    absl::MutexLock lock(&mu_);
    if (!status_.ok()) return status_;
    outgoing_.push_back(std::move(frame));
    WakeKjThreadLocked();
    return absl::OkStatus();
  }

  absl::Status Pump(std::vector<std::string>* frames) override {
    absl::MutexLock lock(&mu_);
    TakeReadySignalLocked();
    for (std::string& frame : incoming_) frames->push_back(std::move(frame));
    incoming_.clear();
    return status_;
  }

  int PollFd() const override { return ready_fd_; }
  uint32_t PollEvents() const override { return EPOLLIN; }

  // The parent's end is meant for the non-blocking API; these work anyway.
  absl::Status SendBlocking(absl::string_view frame) override {
    return Send(std::string(frame));
  }

  absl::StatusOr<std::string> ReceiveBlocking() override {
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        TakeReadySignalLocked();
        if (!incoming_.empty()) {
          std::string frame = std::move(incoming_.front());
          incoming_.pop_front();
          return frame;
        }
        if (!status_.ok()) return status_;
      }
      struct pollfd p = {ready_fd_, POLLIN, 0};
      if (poll(&p, 1, -1) < 0 && errno != EINTR) {
        return PosixError("capnp transport: poll", errno);
      }
    }
  }

 private:
  ParentChannel(int socket_fd, int wake_fd, int ready_fd)
      : wake_fd_(wake_fd), ready_fd_(ready_fd) {
    thread_ = std::thread([this, socket_fd] { RunKjThread(socket_fd); });
  }

  void WakeKjThreadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (wake_pending_) return;
    wake_pending_ = true;
    SignalEventFd(wake_fd_);
  }

  void SignalReadyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (ready_signaled_) return;
    ready_signaled_ = true;
    SignalEventFd(ready_fd_);
  }

  void TakeReadySignalLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!ready_signaled_) return;
    ready_signaled_ = false;
    DrainEventFd(ready_fd_);
  }

  // Records the channel's first error and tells the manager.
  void SetError(absl::Status status) {
    absl::MutexLock lock(&mu_);
    if (status_.ok()) status_ = std::move(status);
    outgoing_.clear();
    SignalReadyLocked();
  }

  // FrameReceiver, on the KJ thread.
  void OnFrame(std::string frame) override {
    absl::MutexLock lock(&mu_);
    incoming_.push_back(std::move(frame));
    SignalReadyLocked();
  }

  void RunKjThread(int socket_fd) {
    absl::Status status = CatchKj("the parent's event loop",
                                  [this, socket_fd] { RunKjLoop(socket_fd); });
    if (!status.ok()) SetError(status);
  }

  // Runs until the destructor sets stop_. The peer going away does not end
  // the loop: it records the error, and Send() reports it from then on.
  void RunKjLoop(int socket_fd) {
    kj::Own<kj::AsyncIoStream> stream;
    kj::Maybe<kj::AsyncIoContext> maybe_io;
    {
      KJ_IF_MAYBE(e, kj::runCatchingExceptions(
                         [&] { maybe_io = kj::setupAsyncIo(); })) {
        close(socket_fd);
        kj::throwFatalException(kj::mv(*e));
      }
    }
    kj::AsyncIoContext& io = KJ_ASSERT_NONNULL(maybe_io);
    stream = io.lowLevelProvider->wrapSocketFd(
        socket_fd, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP |
                       kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC);
    capnp::TwoPartyVatNetwork network(*stream,
                                      capnp::rpc::twoparty::Side::CLIENT);
    capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc =
        capnp::makeRpcServer(network, kj::heap<FrameSinkImpl>(this));
    FrameSink::Client peer = Bootstrap(rpc, capnp::rpc::twoparty::Side::SERVER);
    ErrorHandler handler("the connection to the worker",
                         [this](absl::Status s) { SetError(std::move(s)); });
    kj::TaskSet tasks(handler);
    tasks.add(WhenDisconnected(network, peer, socket_fd, "worker",
                               [this](absl::Status s) { SetError(s); }));
    kj::UnixEventPort::FdObserver wake(io.unixEventPort, wake_fd_,
                                       kj::UnixEventPort::FdObserver::OBSERVE_READ);
    for (;;) {
      // Drain first, then wait: the observer is edge-triggered.
      DrainEventFd(wake_fd_);
      std::deque<std::string> out;
      {
        absl::MutexLock lock(&mu_);
        if (stop_) return;
        wake_pending_ = false;
        out.swap(outgoing_);
      }
      for (const std::string& frame : out) {
        for (kj::Promise<void>& answer : PushFrame(peer, frame)) {
          tasks.add(kj::mv(answer));
        }
      }
      out.clear();
      wake.whenBecomesReadable().wait(io.waitScope);
    }
  }

  // Constant after construction.
  const int wake_fd_;   // the manager wakes the KJ thread
  const int ready_fd_;  // PollFd(): the KJ thread wakes the manager
  std::thread thread_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool ready_signaled_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> outgoing_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> incoming_ ABSL_GUARDED_BY(mu_);
};

// The child's end: the worker's only thread drives the KJ loop synchronously
// inside SendBlocking()/ReceiveBlocking().
class ChildChannel final : public Channel, public FrameReceiver {
 public:
  // Takes ownership of `socket_fd`, also on failure.
  static absl::StatusOr<std::unique_ptr<Channel>> Open(int socket_fd) {
    std::unique_ptr<ChildChannel> channel(new ChildChannel());
    bool fd_taken = false;
    absl::Status status =
        CatchKj("opening the worker's end", [&channel, &fd_taken, socket_fd] {
          channel->Init(socket_fd, &fd_taken);
        });
    if (!status.ok()) {
      if (!fd_taken) close(socket_fd);
      return status;
    }
    return std::unique_ptr<Channel>(std::move(channel));
  }

  ~ChildChannel() noexcept override {
    // Members that need the event loop go first; the loop (io_) last.
    (void)CatchKj("closing the worker's end", [this] {
      waiter_ = nullptr;
      tasks_.reset();
      peer_.reset();
      rpc_.reset();
      network_.reset();
      messages_.reset();
      stream_ = nullptr;
      io_.reset();
    });
  }

  absl::Status Send(std::string frame) override {
    return SendBlocking(frame);
  }

  absl::Status Pump(std::vector<std::string>* frames) override {
    (void)CatchKj("polling", [this] { io_->waitScope.poll(); });
    for (std::string& frame : ready_) frames->push_back(std::move(frame));
    ready_.clear();
    return status_;
  }

  int PollFd() const override { return socket_fd_; }
  uint32_t PollEvents() const override { return EPOLLIN; }

  absl::Status SendBlocking(absl::string_view frame) override {
    if (!status_.ok()) return status_;
    absl::Status status = CatchKj("sending to the parent", [this, frame] {
      const void* last_message = nullptr;
      kj::Array<kj::Promise<void>> answers =
          PushFrame(*peer_, frame, &last_message);
      messages_->Mark(last_message);
      kj::joinPromises(kj::mv(answers)).wait(io_->waitScope);
    });
    if (status.ok()) return absl::OkStatus();
    Fail(status);
    // The parent closed before it answered, but every byte of the frame was
    // written to the socket: as with a plain socket, the send succeeded (and
    // the next call reports the close).
    if (absl::IsUnavailable(status) && messages_->marker_written()) {
      return absl::OkStatus();
    }
    return status_;
  }

  absl::StatusOr<std::string> ReceiveBlocking() override {
    for (;;) {
      if (!ready_.empty()) {
        std::string frame = std::move(ready_.front());
        ready_.pop_front();
        return frame;
      }
      if (!status_.ok()) return status_;
      auto paf = kj::newPromiseAndFulfiller<void>();
      waiter_ = kj::mv(paf.fulfiller);
      absl::Status status = CatchKj("waiting for the parent", [this, &paf] {
        paf.promise.wait(io_->waitScope);
      });
      if (!status.ok()) Fail(status);
    }
  }

 private:
  ChildChannel() = default;

  void Init(int socket_fd, bool* fd_taken) {
    io_ = std::make_unique<kj::AsyncIoContext>(kj::setupAsyncIo());
    *fd_taken = true;
    socket_fd_ = socket_fd;
    stream_ = io_->lowLevelProvider->wrapSocketFd(
        socket_fd, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP |
                       kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC);
    messages_ = std::make_unique<MarkingMessageStream>(*stream_);
    network_ = std::make_unique<capnp::TwoPartyVatNetwork>(
        *messages_, capnp::rpc::twoparty::Side::SERVER);
    rpc_ = std::make_unique<capnp::RpcSystem<capnp::rpc::twoparty::VatId>>(
        capnp::makeRpcServer(*network_, kj::heap<FrameSinkImpl>(this)));
    peer_ = std::make_unique<FrameSink::Client>(
        Bootstrap(*rpc_, capnp::rpc::twoparty::Side::CLIENT));
    handler_ = std::make_unique<ErrorHandler>(
        "the connection to the parent",
        [this](absl::Status s) { Fail(std::move(s)); });
    tasks_ = std::make_unique<kj::TaskSet>(*handler_);
    tasks_->add(WhenDisconnected(*network_, *peer_, socket_fd, "parent",
                                 [this](absl::Status s) { Fail(s); }));
  }

  void Wake() {
    if (waiter_.get() != nullptr) {
      waiter_->fulfill();
      waiter_ = nullptr;
    }
  }

  void Fail(absl::Status status) {
    if (status_.ok()) status_ = std::move(status);
    Wake();
  }

  // FrameReceiver, on this (the only) thread, inside a wait.
  void OnFrame(std::string frame) override {
    ready_.push_back(std::move(frame));
    Wake();
  }

  // Destroyed in the order the destructor spells out.
  std::unique_ptr<kj::AsyncIoContext> io_;
  int socket_fd_ = -1;  // owned by stream_
  kj::Own<kj::AsyncIoStream> stream_;
  std::unique_ptr<MarkingMessageStream> messages_;
  std::unique_ptr<capnp::TwoPartyVatNetwork> network_;
  std::unique_ptr<capnp::RpcSystem<capnp::rpc::twoparty::VatId>> rpc_;
  std::unique_ptr<FrameSink::Client> peer_;
  std::unique_ptr<ErrorHandler> handler_;
  std::unique_ptr<kj::TaskSet> tasks_;
  kj::Own<kj::PromiseFulfiller<void>> waiter_;

  std::deque<std::string> ready_;  // frames received and not returned yet
  absl::Status status_;            // the first error
};

class CapnpTransport final : public Transport {
 public:
  absl::string_view name() const override { return kCapnpTransportName; }

  absl::StatusOr<ChannelPair> CreatePair() override {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return PosixError("capnp transport: socketpair", errno);
    }
    absl::StatusOr<std::unique_ptr<Channel>> parent =
        ParentChannel::Create(sv[0]);
    if (!parent.ok()) {
      close(sv[1]);
      return parent.status();
    }
    ChannelPair pair;
    pair.parent = std::move(*parent);
    pair.child.fds = {sv[1]};
    pair.child.spec = kCapnpEndpointSpec;
    return pair;
  }

  // Takes ownership of endpoint.fds even when it fails (closes them then).
  absl::StatusOr<std::unique_ptr<Channel>> OpenChild(
      const ChildEndpoint& endpoint) override {
    absl::Status s = CheckEndpoint(endpoint);
    if (!s.ok()) {
      for (int fd : endpoint.fds) close(fd);
      return s;
    }
    return ChildChannel::Open(endpoint.fds[0]);
  }

 private:
  static absl::Status CheckEndpoint(const ChildEndpoint& endpoint) {
    if (endpoint.fds.size() != 1 ||
        !(endpoint.spec.empty() || endpoint.spec == kCapnpEndpointSpec)) {
      return absl::InvalidArgumentError(
          absl::StrCat("capnp transport: expected one descriptor and spec \"",
                       kCapnpEndpointSpec, "\", got ", endpoint.fds.size(),
                       " descriptors and spec \"", endpoint.spec, "\""));
    }
    const int fd = endpoint.fds[0];
    int type = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
      return PosixError(
          absl::StrCat("capnp transport: endpoint descriptor ", fd), errno);
    }
    if (type != SOCK_STREAM) {
      return absl::InvalidArgumentError(
          absl::StrCat("capnp transport: endpoint descriptor ", fd,
                       " is not a stream socket"));
    }
    return absl::OkStatus();
  }
};

}  // namespace

PROCPOOL_REGISTER_TRANSPORT(CapnpTransport);

}  // namespace procpool
