// The worker's end of a framed remote channel (framed_remote.h).
//
//   main thread (the worker loop)          keepalive thread
//   ReceiveBlocking(): frames, trailers    poll(socket: POLLRDHUP, stop_fd_)
//     off, keepalives dropped                with the time to the next
//   SendBlocking(): under write_mu_,         keepalive due; sends one under
//     the frame and its trailer              write_mu_ when nothing else was
//                                            sent for the interval; on the
//                                            parent's hang-up or a socket
//                                            error: on_connection_lost, done
// The keepalive thread touches only the socket's descriptor (send, poll),
// never the StreamChannel, so the two threads share write_mu_ and
// last_sent_ns_ only.
//
// At destruction the worker's end shuts its side down and reads what the
// parent still sends until the parent closes (at most kLinger): closing a
// TCP socket with unread bytes resets the connection, which could cost the
// parent the tail of this worker's last frame.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

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
#include "common/unique_fd.h"
#include "transport/capnp/framed_link.h"
#include "transport/capnp/framed_remote.h"
#include "transport/stream_channel.h"

namespace procpool {
namespace capnp_internal {
namespace {

constexpr absl::Duration kLinger = absl::Seconds(1);

class FramedWorkerChannel final : public Channel {
 public:
  FramedWorkerChannel(UniqueFd socket, absl::Duration keepalive,
                      FramedWorkerOptions options, UniqueFd stop_fd)
      : options_(std::move(options)),
        keepalive_ns_(absl::ToInt64Nanoseconds(keepalive)),
        stop_fd_(std::move(stop_fd)),
        fd_(socket.get()),
        inner_(StreamChannel::Make(std::move(socket), framed::kFormat,
                                   options_.peer_name)) {
    last_sent_ns_ = MonotonicNanos();
    thread_ = std::thread([this] { RunKeepalives(); });
  }

  ~FramedWorkerChannel() override {
    SignalEventFd(stop_fd_.get());
    thread_.join();
    Linger();
  }

  absl::Status Send(std::string frame) override {
    frame.push_back(framed::kDataTrailer);
    absl::MutexLock lock(&write_mu_);
    last_sent_ns_ = MonotonicNanos();
    return inner_->Send(std::move(frame));
  }

  absl::Status SendParts(std::vector<absl::string_view> parts,
                         std::shared_ptr<const void> owner) override {
    parts.push_back(framed::DataTrailer());
    absl::MutexLock lock(&write_mu_);
    last_sent_ns_ = MonotonicNanos();
    return inner_->SendParts(std::move(parts), std::move(owner));
  }

  absl::Status Pump(std::vector<std::string>* frames) override {
    absl::Status s;
    {
      absl::MutexLock lock(&write_mu_);  // Pump() writes queued output
      s = inner_->Pump(&got_);
    }
    absl::Status strip =
        framed::StripTrailers(&got_, frames, options_.peer_name);
    return s.ok() ? strip : s;
  }

  int PollFd() const override { return inner_->PollFd(); }
  uint32_t PollEvents() const override { return inner_->PollEvents(); }

  absl::Status SendBlocking(absl::string_view frame) override {
    return SendBlockingParts({frame});
  }

  absl::Status SendBlockingParts(
      absl::Span<const absl::string_view> parts) override {
    std::vector<absl::string_view> pieces(parts.begin(), parts.end());
    pieces.push_back(framed::DataTrailer());
    absl::MutexLock lock(&write_mu_);
    absl::Status s = inner_->SendBlockingParts(pieces);
    last_sent_ns_ = MonotonicNanos();
    return s;
  }

  absl::StatusOr<std::string> ReceiveBlocking() override {
    for (;;) {
      absl::StatusOr<std::string> frame = inner_->ReceiveBlocking();
      if (!frame.ok()) return frame.status();
      got_.push_back(*std::move(frame));
      std::vector<std::string> out;
      RETURN_IF_ERROR(
          framed::StripTrailers(&got_, &out, options_.peer_name));
      if (!out.empty()) return std::move(out.front());
    }
  }

 private:
  void RunKeepalives() {
    for (;;) {
      int timeout_ms = -1;
      if (keepalive_ns_ > 0) {
        int64_t due;
        {
          absl::MutexLock lock(&write_mu_);
          due = last_sent_ns_ + keepalive_ns_;
        }
        const int64_t left = due - MonotonicNanos();
        timeout_ms = static_cast<int>(
            std::max<int64_t>(0, (left + 999'999) / 1'000'000));
      }
      struct pollfd p[2] = {{fd_, POLLRDHUP, 0}, {stop_fd_.get(), POLLIN, 0}};
      const int n = poll(p, 2, timeout_ms);
      if (n < 0) {
        if (errno == EINTR) continue;
        Lost(PosixError("capnp transport: poll", errno));
        return;
      }
      if (p[1].revents != 0) return;  // the destructor
      if (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
        Lost(HangUpStatus());
        return;
      }
      if (keepalive_ns_ > 0) {
        absl::Status s = MaybeSendKeepalive();
        if (!s.ok()) {
          Lost(s);
          return;
        }
      }
    }
  }

  // Sends a keepalive if nothing was sent for the interval.
  absl::Status MaybeSendKeepalive() {
    absl::MutexLock lock(&write_mu_);
    const int64_t now = MonotonicNanos();
    if (now - last_sent_ns_ < keepalive_ns_) return absl::OkStatus();
    last_sent_ns_ = now;
    // Between frames (write_mu_ is held by every sender for a whole frame),
    // on a blocking socket: all 17 bytes go, or the connection failed.
    const absl::string_view frame = framed::KeepaliveFrame();
    size_t sent = 0;
    while (sent < frame.size()) {
      const ssize_t w = send(fd_, frame.data() + sent, frame.size() - sent,
                             MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        struct pollfd p = {fd_, POLLOUT, 0};
        poll(&p, 1, 100);
        continue;
      }
      if (w < 0) {
        return PosixError(absl::StrCat("capnp transport: the connection to the ",
                                       options_.peer_name),
                          errno);
      }
      sent += static_cast<size_t>(w);
    }
    return absl::OkStatus();
  }

  absl::Status HangUpStatus() const {
    int error = 0;
    socklen_t len = sizeof(error);
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len) == 0 &&
        error != 0) {
      return absl::UnavailableError(
          absl::StrCat("capnp transport: the connection to the ",
                       options_.peer_name, " failed: ",
                       PosixError("socket", error).message()));
    }
    return absl::UnavailableError(absl::StrCat(
        "capnp transport: the ", options_.peer_name, " closed the channel"));
  }

  void Lost(const absl::Status& status) {
    if (options_.on_connection_lost) options_.on_connection_lost(status);
  }

  // See the file comment.
  void Linger() {
    if (shutdown(fd_, SHUT_WR) != 0) return;
    const absl::Time deadline = absl::Now() + kLinger;
    char sink[4096];
    for (;;) {
      const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (left <= 0) return;
      struct pollfd p = {fd_, POLLIN, 0};
      const int n = poll(&p, 1, static_cast<int>(left));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      const ssize_t r = recv(fd_, sink, sizeof(sink), MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) return;
    }
  }

  // Constant after construction.
  const FramedWorkerOptions options_;
  const int64_t keepalive_ns_;  // 0: none
  const UniqueFd stop_fd_;
  const int fd_;  // the socket, owned by inner_

  // The main thread's; the keepalive thread uses only fd_.
  const std::unique_ptr<StreamChannel> inner_;
  std::vector<std::string> got_;

  absl::Mutex write_mu_;
  int64_t last_sent_ns_ ABSL_GUARDED_BY(write_mu_) = 0;

  std::thread thread_;
};

// Reads the preamble within `timeout` from the blocking socket `fd`.
absl::StatusOr<absl::Duration> ReadPreamble(int fd, absl::Duration timeout,
                                            absl::string_view peer) {
  std::string bytes(framed::kPreambleSize, '\0');
  size_t have = 0;
  const absl::Time deadline = absl::Now() + timeout;
  while (have < bytes.size()) {
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    struct pollfd p = {fd, POLLIN, 0};
    const int n = left > 0 ? poll(&p, 1, static_cast<int>(left)) : 0;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::UnavailableError(absl::StrCat(
          "capnp transport: the ", peer,
          " authenticated but did not start the framed link within ",
          absl::FormatDuration(timeout)));
    }
    const ssize_t r = recv(fd, &bytes[have], bytes.size() - have, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      return absl::UnavailableError(absl::StrCat(
          "capnp transport: the ", peer,
          " closed the connection right after authentication"));
    }
    have += static_cast<size_t>(r);
  }
  return framed::DecodePreamble(bytes, peer);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Channel>> OpenFramedWorkerChannel(
    UniqueFd socket, FramedWorkerOptions options) {
  // KJ made it non-blocking while it authenticated; the worker blocks.
  const int flags = fcntl(socket.get(), F_GETFL);
  if (flags < 0 ||
      ((flags & O_NONBLOCK) &&
       fcntl(socket.get(), F_SETFL, flags & ~O_NONBLOCK) < 0)) {
    return PosixError("capnp transport: fcntl(~O_NONBLOCK)", errno);
  }
  absl::StatusOr<absl::Duration> asked = ReadPreamble(
      socket.get(), options.preamble_timeout, options.peer_name);
  if (!asked.ok()) return asked.status();
  absl::Duration keepalive = *asked;
  if (options.keepalive_interval > absl::ZeroDuration() &&
      (keepalive <= absl::ZeroDuration() ||
       options.keepalive_interval < keepalive)) {
    keepalive = options.keepalive_interval;
  }
  if (options.heartbeat_timeout > absl::ZeroDuration()) {
    const unsigned int ms = static_cast<unsigned int>(
        absl::ToInt64Milliseconds(options.heartbeat_timeout));
    setsockopt(socket.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
  }
  absl::StatusOr<UniqueFd> stop_fd = MakeEventFd("capnp transport");
  if (!stop_fd.ok()) return stop_fd.status();
  return std::unique_ptr<Channel>(std::make_unique<FramedWorkerChannel>(
      std::move(socket), keepalive, std::move(options), *std::move(stop_fd)));
}

}  // namespace capnp_internal
}  // namespace procpool
