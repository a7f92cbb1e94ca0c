// The parent's end of a framed remote channel (framed_remote.h).
//
//   set-up thread (once)                 user thread (the pool's I/O)
//   KJ loop: opener (connect, auth)      Send() -> queued_ until adopted
//   dup the socket, send the preamble    Pump()/Poll(): Adopt() the socket
//   setup_fd_ <- signal, exit              into a StreamChannel, send queued_,
//                                          then frames both ways, trailers off
//   PollFd() = an epoll set of {setup_fd_, the socket, timer_fd_}: readable
//   when set-up ended, bytes arrived or output drained, or a heartbeat tick
//   is due; Pump() handles all three.
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <kj/async-io.h>
#include <kj/async-unix.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/event_fd.h"
#include "common/posix_error.h"
#include "common/spin.h"
#include "common/status_macros.h"
#include "common/sys.h"
#include "common/unique_fd.h"
#include "transport/capnp/framed_link.h"
#include "transport/capnp/framed_remote.h"
#include "transport/capnp/rpc_common.h"
#include "transport/capnp/stream_opener.h"
#include "transport/stream_channel.h"

namespace procpool {
namespace capnp_internal {
namespace {

class FramedParentChannel final : public Channel {
 public:
  FramedParentChannel(std::unique_ptr<StreamOpener> opener,
                      FramedParentOptions options, UniqueFd epoll_fd,
                      UniqueFd timer_fd, UniqueFd setup_fd, UniqueFd cancel_fd)
      : options_(std::move(options)),
        epoll_fd_(std::move(epoll_fd)),
        timer_fd_(std::move(timer_fd)),
        setup_fd_(std::move(setup_fd)),
        cancel_fd_(std::move(cancel_fd)),
        opener_(std::move(opener)) {
    setup_thread_ = std::thread([this] { RunSetup(); });
  }

  ~FramedParentChannel() override {
    if (setup_thread_.joinable()) {
      SignalEventFd(cancel_fd_.get());
      setup_thread_.join();
    }
  }

  absl::Status Send(std::string frame) override {
    if (frame.capacity() > frame.size() || frame.size() < (64 << 10)) {
      frame.push_back(framed::kDataTrailer);
      return Enqueue({}, std::move(frame), nullptr);
    }
    // A big frame without room for the trailer: send it as a part rather
    // than copy it into a bigger string.
    auto owned = std::make_shared<std::string>(std::move(frame));
    std::vector<absl::string_view> parts = {*owned, framed::DataTrailer()};
    return Enqueue(std::move(parts), std::string(), std::move(owned));
  }

  absl::Status SendParts(std::vector<absl::string_view> parts,
                         std::shared_ptr<const void> owner) override {
    parts.push_back(framed::DataTrailer());
    return Enqueue(std::move(parts), std::string(), std::move(owner));
  }

  absl::Status Pump(std::vector<std::string>* frames) override {
    if (Adopt()) {
      absl::Status s = inner_->Pump(&got_);
      Heard();
      Deliver(frames, s);
      UpdateSocketEvents();
      CheckHeartbeat();
    }
    return status_;
  }

  absl::Status Poll(std::vector<std::string>* frames, bool stay) override {
    if (!Adopt()) return status_;
    absl::Status s = inner_->Poll(&got_, stay);
    Heard();
    Deliver(frames, s);
    UpdateSocketEvents();
    return status_;
  }

  int PollFd() const override { return epoll_fd_.get(); }
  uint32_t PollEvents() const override { return EPOLLIN; }

  absl::Status SendBlocking(absl::string_view frame) override {
    RETURN_IF_ERROR(WaitUntilAdopted());
    absl::string_view parts[2] = {frame, framed::DataTrailer()};
    absl::Status s = inner_->SendBlockingParts(parts);
    if (!s.ok()) SetError(s);
    return status_;
  }

  absl::StatusOr<std::string> ReceiveBlocking() override {
    RETURN_IF_ERROR(WaitUntilAdopted());
    for (;;) {
      absl::StatusOr<std::string> frame = inner_->ReceiveBlocking();
      if (!frame.ok()) {
        SetError(frame.status());
        return status_;
      }
      got_.push_back(*std::move(frame));
      std::vector<std::string> out;
      absl::Status s = framed::StripTrailers(&got_, &out, options_.peer_name);
      if (!s.ok()) {
        SetError(s);
        return status_;
      }
      if (!out.empty()) return std::move(out.front());
    }
  }

 private:
  // A frame queued before the socket is adopted: as Send or SendParts had it.
  struct Queued {
    std::vector<absl::string_view> parts;
    std::string payload;
    std::shared_ptr<const void> owner;
  };

  absl::Status Enqueue(std::vector<absl::string_view> parts,
                       std::string payload,
                       std::shared_ptr<const void> owner) {
    if (!status_.ok()) return status_;
    if (!Adopt()) {
      if (!status_.ok()) return status_;
      queued_.push_back({std::move(parts), std::move(payload), std::move(owner)});
      return absl::OkStatus();
    }
    SendNow(std::move(parts), std::move(payload), std::move(owner));
    UpdateSocketEvents();
    return status_;
  }

  void SendNow(std::vector<absl::string_view> parts, std::string payload,
               std::shared_ptr<const void> owner) {
    absl::Status s = parts.empty()
                         ? inner_->Send(std::move(payload))
                         : inner_->SendParts(std::move(parts), std::move(owner));
    if (!s.ok()) SetError(s);
  }

  void SetError(const absl::Status& s) {
    if (status_.ok()) status_ = s;
  }

  // Hands out the frames inner_ produced (trailers off) and records its
  // error.
  void Deliver(std::vector<std::string>* frames, const absl::Status& inner) {
    absl::Status strip =
        framed::StripTrailers(&got_, frames, options_.peer_name);
    if (!strip.ok()) SetError(strip);
    if (!inner.ok()) SetError(inner);
  }

  // True once the socket is a StreamChannel; adopts it if the set-up thread
  // is done. False while connecting, or when set-up failed (status_ says).
  bool Adopt() {
    if (inner_ != nullptr) return true;
    if (!status_.ok()) return false;
    absl::Status setup;
    UniqueFd socket;
    {
      absl::MutexLock lock(&mu_);
      if (!setup_done_) return false;
      setup = setup_status_;
      socket = std::move(setup_socket_);
    }
    setup_thread_.join();
    DrainEventFd(setup_fd_.get());
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, setup_fd_.get(), nullptr);
    if (!setup.ok()) {
      SetError(setup);
      queued_.clear();
      return false;
    }
    socket_fd_ = socket.get();
    inner_ = StreamChannel::Make(std::move(socket), framed::kFormat,
                                 options_.peer_name);
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    socket_events_ = EPOLLIN;
    if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, socket_fd_, &ev) != 0) {
      SetError(PosixError("capnp transport: epoll_ctl(ADD socket)", errno));
    }
    last_heard_ns_ = MonotonicNanos();
    ArmTimer();
    std::vector<Queued> queued;
    queued.swap(queued_);
    for (Queued& q : queued) {
      if (!status_.ok()) break;
      SendNow(std::move(q.parts), std::move(q.payload), std::move(q.owner));
    }
    return true;
  }

  // For the blocking side: waits (without bound: the opener has its own)
  // until set-up ended.
  absl::Status WaitUntilAdopted() {
    while (!Adopt()) {
      if (!status_.ok()) return status_;
      struct epoll_event ev;
      if (epoll_wait(epoll_fd_.get(), &ev, 1, -1) < 0 && errno != EINTR) {
        SetError(PosixError("capnp transport: epoll_wait", errno));
      }
    }
    return status_;
  }

  void ArmTimer() {
    if (options_.heartbeat_timeout <= absl::ZeroDuration()) return;
    const absl::Duration tick = options_.heartbeat_timeout / 8;
    struct itimerspec spec = {};
    spec.it_interval = absl::ToTimespec(tick);
    spec.it_value = spec.it_interval;
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    if (timerfd_settime(timer_fd_.get(), 0, &spec, nullptr) != 0 ||
        epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, timer_fd_.get(), &ev) != 0) {
      SetError(PosixError("capnp transport: arming the heartbeat timer", errno));
    }
  }

  // Any byte that arrived is a sign of life.
  void Heard() {
    const uint64_t bytes = inner_->bytes_received();
    if (bytes != bytes_seen_) {
      bytes_seen_ = bytes;
      last_heard_ns_ = MonotonicNanos();
    }
  }

  // On a timer tick: fails the channel when nothing arrived for the timeout.
  void CheckHeartbeat() {
    uint64_t ticks;
    if (read(timer_fd_.get(), &ticks, sizeof(ticks)) != sizeof(ticks)) return;
    if (!status_.ok()) return;
    const absl::Duration silent =
        absl::Nanoseconds(MonotonicNanos() - last_heard_ns_);
    if (silent > options_.heartbeat_timeout) {
      SetError(absl::UnavailableError(absl::StrCat(
          "capnp transport: no heartbeat from the ", options_.peer_name,
          " for ", absl::FormatDuration(options_.heartbeat_timeout),
          " (it stopped answering: the host or the network is down, or the "
          "process is stopped)")));
    }
  }

  // Watches the socket for EPOLLOUT while inner_ has output queued.
  void UpdateSocketEvents() {
    if (inner_ == nullptr) return;
    const uint32_t want = inner_->PollEvents();
    if (want == socket_events_) return;
    struct epoll_event ev = {};
    ev.events = want;
    if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, socket_fd_, &ev) != 0) {
      SetError(PosixError("capnp transport: epoll_ctl(MOD socket)", errno));
      return;
    }
    socket_events_ = want;
  }

  // The set-up thread: runs the opener on a KJ loop of its own (or until the
  // destructor cancels), keeps a duplicate of the socket, sends the preamble.
  void RunSetup() {
    UniqueFd socket;
    absl::Status status;
    const absl::Status kj_error = CatchKj(
        absl::StrCat("setting up the connection to the ", options_.peer_name),
        [this, &socket, &status] {
          kj::AsyncIoContext io = kj::setupAsyncIo();
          kj::UnixEventPort::FdObserver cancel(
              io.unixEventPort, cancel_fd_.get(),
              kj::UnixEventPort::FdObserver::OBSERVE_READ);
          kj::Maybe<OpenedStream> maybe =
              kj::evalNow([this, &io] { return opener_->Open(io); })
                  .then([](OpenedStream&& s) -> kj::Maybe<OpenedStream> {
                    return kj::mv(s);
                  })
                  .exclusiveJoin(cancel.whenBecomesReadable().then(
                      []() -> kj::Maybe<OpenedStream> { return nullptr; }))
                  .wait(io.waitScope);
          opener_.reset();
          KJ_IF_MAYBE(opened, maybe) {
            status = opened->status;
            if (!status.ok()) return;
            // The stream (and with it KJ's descriptor) goes with `maybe`.
            const int fd = GetSys().DupCloexec(opened->socket_fd, 0);
            if (fd < 0) {
              status = PosixError(
                  "capnp transport: dup of the authenticated socket", errno);
              return;
            }
            socket = UniqueFd(fd);
          } else {
            status = absl::CancelledError(
                "capnp transport: the channel was closed while connecting");
          }
        });
    if (status.ok()) status = kj_error;
    if (status.ok()) status = SendPreamble(socket.get());
    if (!status.ok()) socket = UniqueFd();
    {
      absl::MutexLock lock(&mu_);
      setup_done_ = true;
      setup_status_ = std::move(status);
      setup_socket_ = std::move(socket);
    }
    SignalEventFd(setup_fd_.get());
  }

  absl::Status SendPreamble(int fd) {
    const std::string preamble =
        framed::EncodePreamble(options_.keepalive_interval);
    // A fresh connection's send buffer takes 16 bytes at once.
    const ssize_t n = send(fd, preamble.data(), preamble.size(),
                           MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(preamble.size())) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat(
        "capnp transport: the connection to the ", options_.peer_name,
        " failed right after authentication: ",
        n < 0 ? PosixError("send", errno).message() : "short write"));
  }

  // Constant after construction.
  const FramedParentOptions options_;
  const UniqueFd epoll_fd_;   // PollFd()
  const UniqueFd timer_fd_;   // heartbeat ticks
  const UniqueFd setup_fd_;   // the set-up thread is done
  const UniqueFd cancel_fd_;  // the destructor cancels set-up
  std::unique_ptr<StreamOpener> opener_;  // the set-up thread's
  std::thread setup_thread_;

  absl::Mutex mu_;
  bool setup_done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status setup_status_ ABSL_GUARDED_BY(mu_);
  UniqueFd setup_socket_ ABSL_GUARDED_BY(mu_);

  // The user thread's (one at a time, as a Channel).
  std::unique_ptr<StreamChannel> inner_;  // once adopted
  int socket_fd_ = -1;                    // owned by inner_
  std::vector<Queued> queued_;            // sent before adoption
  absl::Status status_;                   // the first error
  uint32_t socket_events_ = 0;            // registered in epoll_fd_
  uint64_t bytes_seen_ = 0;
  int64_t last_heard_ns_ = 0;
  std::vector<std::string> got_;  // inner_'s frames, trailers on
};

}  // namespace

absl::StatusOr<std::unique_ptr<Channel>> StartFramedParentChannel(
    std::unique_ptr<StreamOpener> opener, FramedParentOptions options) {
  const std::string context = "capnp transport: remote channel";
  UniqueFd epoll_fd(GetSys().EpollCreate1(EPOLL_CLOEXEC));
  if (!epoll_fd.valid()) return PosixError(context + ": epoll_create1", errno);
  UniqueFd timer_fd(GetSys().TimerfdCreate(CLOCK_MONOTONIC,
                                           TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer_fd.valid()) return PosixError(context + ": timerfd_create", errno);
  absl::StatusOr<UniqueFd> setup_fd = MakeEventFd(context);
  if (!setup_fd.ok()) return setup_fd.status();
  absl::StatusOr<UniqueFd> cancel_fd = MakeEventFd(context);
  if (!cancel_fd.ok()) return cancel_fd.status();
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  if (epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, setup_fd->get(), &ev) != 0) {
    return PosixError(context + ": epoll_ctl", errno);
  }
  return std::unique_ptr<Channel>(std::make_unique<FramedParentChannel>(
      std::move(opener), std::move(options), std::move(epoll_fd),
      std::move(timer_fd), *std::move(setup_fd), *std::move(cancel_fd)));
}

}  // namespace capnp_internal
}  // namespace procpool
