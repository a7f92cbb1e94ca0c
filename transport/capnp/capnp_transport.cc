// The "capnp" transport (see capnp_transport.h for the design).
//
// The parent's end is a DrivenChannel (driven_channel.h); the child's end,
// driven synchronously by the worker's only thread, is here. KJ exceptions become absl::Status in one place:
// StatusFromKj() in rpc_common.cc (used directly by TaskSet error handlers,
// and through CatchKj() around every call that may throw).
#include "transport/capnp/capnp_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
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
#include "common/status_macros.h"
#include "common/sys.h"
#include "common/unique_fd.h"
#include "transport/capnp/driven_channel.h"
#include "transport/capnp/rpc_common.h"
#include "transport/capnp/remote.h"
#include "transport/transport.h"

namespace procpool {
namespace {

using capnp_internal::CatchKj;
using capnp_internal::FrameConnection;
using capnp_internal::FrameReceiver;
using capnp_internal::kSpinBeforeSleep;
using capnp_internal::PushFrame;
using capnp_internal::SpinUntilReady;

// The child's end: the worker's only thread drives the KJ loop synchronously
// inside SendBlocking()/ReceiveBlocking().
class ChildChannel final : public Channel, public FrameReceiver {
 public:
  // Takes `socket`, also on failure.
  static absl::StatusOr<std::unique_ptr<Channel>> Open(UniqueFd socket) {
    std::unique_ptr<ChildChannel> channel(new ChildChannel());
    absl::Status status =
        CatchKj("opening the worker's end",
                [&channel, &socket] { channel->Init(&socket); });
    if (!status.ok()) return status;  // `socket` closes if Init() left it
    return std::unique_ptr<Channel>(std::move(channel));
  }

  ~ChildChannel() noexcept override {
    // Members that need the event loop go first; the loop (io_) last.
    (void)CatchKj("closing the worker's end", [this] {
      waiter_ = nullptr;
      conn_.reset();
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

  // Returns once the frame's last message is written to the socket, as a
  // plain socket's send does; the parent's answers are taken by later calls
  // into the loop (a failed one fails the channel). Not waiting for them
  // saves the worker a wake-up per frame, and the parent need not be
  // pumping: the frame waits in the socket, also after the worker exits.
  absl::Status SendBlocking(absl::string_view frame) override {
    return SendBlockingParts(absl::MakeConstSpan(&frame, 1));
  }

  // The parts go straight into the push() calls' messages (no frame is
  // built around a big result first).
  absl::Status SendBlockingParts(
      absl::Span<const absl::string_view> parts) override {
    if (!status_.ok()) return status_;
    absl::Status status = CatchKj("sending to the parent", [this, parts] {
      const void* last_message = nullptr;
      kj::Array<kj::Promise<void>> answers =
          PushFrame(conn_->peer(), parts, &last_message);
      conn_->tasks().add(
          conn_->messages().Mark(last_message).then([this] { Wake(); }));
      conn_->tasks().add(kj::joinPromises(kj::mv(answers)));
      while (!conn_->messages().marker_written() && status_.ok()) {
        auto paf = kj::newPromiseAndFulfiller<void>();
        waiter_ = kj::mv(paf.fulfiller);
        SpinUntilReady(paf.promise, io_->waitScope, kSpinBeforeSleep);
        paf.promise.wait(io_->waitScope);
      }
    });
    if (!status.ok()) Fail(status);
    // Every byte of the frame was written: as with a plain socket, the send
    // succeeded even if the parent closed since (the next call reports it).
    if (conn_->messages().marker_written()) return absl::OkStatus();
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
        SpinUntilReady(paf.promise, io_->waitScope, kSpinBeforeSleep);
        paf.promise.wait(io_->waitScope);
      });
      if (!status.ok()) Fail(status);
    }
  }

 private:
  ChildChannel() = default;

  // Hands `*socket` to KJ (which then owns it) once the loop exists.
  void Init(UniqueFd* socket) {
    io_ = std::make_unique<kj::AsyncIoContext>(kj::setupAsyncIo());
    const int socket_fd = socket->release();
    socket_fd_ = socket_fd;
    stream_ = io_->lowLevelProvider->wrapSocketFd(
        socket_fd, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP |
                       kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC);
    conn_ = std::make_unique<FrameConnection>(
        *stream_, socket_fd, capnp::rpc::twoparty::Side::SERVER, this,
        "parent", [this](absl::Status s) { Fail(std::move(s)); });
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
  std::unique_ptr<FrameConnection> conn_;
  kj::Own<kj::PromiseFulfiller<void>> waiter_;

  std::deque<std::string> ready_;  // frames received and not returned yet
  absl::Status status_;            // the first error
};

class CapnpTransport final : public Transport {
 public:
  absl::string_view name() const override { return kCapnpTransportName; }

  // A round trip takes ~35-55 us on the 2-core VM (three RPC messages a
  // frame): a waiter that polls 250 us takes it itself rather than through
  // the loop thread and the manager. (With the old parent end, whose loop
  // thread carried every frame, 250 us instead of 50 took the p50 from ~95
  // to ~70 us.)
  absl::Duration WaiterPollBudget() const override {
    return absl::Microseconds(250);
  }

  absl::StatusOr<ChannelPair> CreatePair() override {
    int sv[2];
    if (GetSys().Socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return PosixError("capnp transport: socketpair", errno);
    }
    UniqueFd parent_socket(sv[0]);
    UniqueFd child_socket(sv[1]);
    // The parent's end: driven by the pool's I/O thread of the moment (a
    // caller or the manager), with no KJ thread of its own
    // (driven_channel.h says why).
    ChannelPair pair;
    ASSIGN_OR_RETURN(pair.parent, capnp_internal::DrivenChannel::Open(
                                      std::move(parent_socket), "worker"));
    pair.child.fds = {child_socket.release()};
    pair.child.spec = kCapnpEndpointSpec;
    return pair;
  }

  // Remote workers: remote.h.
  absl::StatusOr<std::unique_ptr<Channel>> ConnectRemote(
      const RemoteWorkerSpec& spec) override {
    RemoteWorkerOptions options;
    options.address = spec.address;
    options.key = spec.key;
    options.use_tls = spec.use_tls;
    options.tls_ca_file = spec.tls_ca_file;
    options.tls_server_name = spec.tls_server_name;
    options.connect_timeout = spec.connect_timeout;
    if (spec.heartbeat_timeout == absl::InfiniteDuration()) {
      options.heartbeat_interval = absl::ZeroDuration();
      options.heartbeat_timeout = absl::ZeroDuration();
    } else {
      options.heartbeat_timeout = spec.heartbeat_timeout;
      options.heartbeat_interval =
          std::min(options.heartbeat_interval, spec.heartbeat_timeout / 4);
    }
    return ConnectRemoteWorker(options);
  }

  // Takes ownership of endpoint.fds even when it fails (closes them then).
  absl::StatusOr<std::unique_ptr<Channel>> OpenChild(
      const ChildEndpoint& endpoint) override {
    std::vector<UniqueFd> owned;
    for (int fd : endpoint.fds) owned.emplace_back(fd);
    RETURN_IF_ERROR(CheckEndpoint(endpoint));
    return ChildChannel::Open(std::move(owned[0]));
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
