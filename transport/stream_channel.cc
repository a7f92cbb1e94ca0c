// A Channel over a connected stream socket (see stream_channel.h).
//
// Data flow inside one channel:
//   Send()          -> out_ (header + payload, moved in, never copied)
//                   -> sendmsg(iovec over queued frames, MSG_NOSIGNAL)
//   recv()          -> in_buf_ (headers and small frames, many per read)
//                      or straight into the payload being assembled (the
//                      tail of a large one: FrameAssembler::PayloadRoom())
//   Deliver()       -> FrameAssembler (transport/frame_assembler.h): whole
//                      frames appended to the caller's vector.
// The parent's Pump() stops reading after a short read (the socket was
// drained; epoll is level-triggered, so more data wakes the manager again)
// and after kMaxReadPerPump bytes, so that one busy worker cannot starve the
// others; in both cases unread bytes stay in the socket and PollFd() stays
// readable. Bytes already pulled into user space are always parsed into frames
// in the same call.
#include "transport/stream_channel.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/big_buffers.h"
#include "common/posix_error.h"
#include "common/spin.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "transport/frame_assembler.h"
#include "transport/frame_header.h"
#include "transport/out_frame.h"
#include "transport/transport.h"

namespace procpool {
namespace {

// Staging buffer for headers and small frames.
constexpr size_t kInBufSize = 256 << 10;
// With at least this much payload still to come, recv() goes straight into
// the frame instead of through in_buf_.
constexpr size_t kDirectReadMin = 64 << 10;
// Bytes one Pump() reads at most while the channel is healthy.
constexpr size_t kMaxReadPerPump = 32 << 20;
// iovecs per sendmsg(): two per queued frame.
constexpr int kMaxIov = 128;
// How long a worker's ReceiveBlocking() polls the socket (recv with
// MSG_DONTWAIT, ~0.3 us each) before it sleeps in recv(). A sleeping worker
// costs the next call a wake-up (~15-30 us on a 2-core VM); a worker that
// is sent its next call within this window costs none. Bounded, so an idle
// worker stops taking CPU after this long.
constexpr int64_t kReceiveSpinNs = 20'000;

// recv() that first polls for up to kReceiveSpinNs.
ssize_t SpinThenRecv(int fd, char* dst, size_t want) {
  const int64_t deadline = MonotonicNanos() + kReceiveSpinNs;
  for (int i = 1;; ++i) {
    const ssize_t n = recv(fd, dst, want, MSG_DONTWAIT);
    if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      return n;
    }
    if (i % 4 == 0 && MonotonicNanos() >= deadline) break;
    CpuRelax();
  }
  return recv(fd, dst, want, 0);
}

// `status` with `context` put before its message, code unchanged.
absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  return absl::Status(status.code(),
                      absl::StrCat(context, ": ", status.message()));
}

class StreamChannelImpl final : public StreamChannel {
 public:
  StreamChannelImpl(UniqueFd fd, const FrameFormat& format,
                    absl::string_view peer)
      : fd_(std::move(fd)),
        format_(format),
        peer_(peer),
        in_buf_(new char[kInBufSize]),
        in_frames_(format_, FrameAssembler::kGrowWithArrival, peer_) {}

  StreamChannelImpl(const StreamChannelImpl&) = delete;
  StreamChannelImpl& operator=(const StreamChannelImpl&) = delete;

  uint64_t bytes_received() const override { return bytes_received_; }

  // Send() reports a failure it meets while writing (kUnavailable when the
  // peer is gone); frames that arrived before are still handed out by Pump().
  absl::Status Send(std::string frame) override {
    return Enqueue({}, std::move(frame), nullptr);
  }

  absl::Status SendParts(std::vector<absl::string_view> parts,
                         std::shared_ptr<const void> owner) override {
    return Enqueue(std::move(parts), std::string(), std::move(owner));
  }

  absl::Status Pump(std::vector<std::string>* frames) override {
    TakeReady(frames);
    if (status_.ok() && !out_.empty()) {
      absl::Status s = Flush();
      if (!s.ok()) SetError(s);
    }
    if (!input_done_) ReadAvailable(frames);
    return status_;
  }

  int PollFd() const override { return fd_.get(); }

  uint32_t PollEvents() const override {
    return out_.empty() ? EPOLLIN : (EPOLLIN | EPOLLOUT);
  }

  absl::Status SendBlocking(absl::string_view frame) override {
    return SendBlockingParts({frame});
  }

  // One sendmsg() gathers the header and the parts (kMaxIov at a time).
  absl::Status SendBlockingParts(
      absl::Span<const absl::string_view> parts) override {
    if (!status_.ok()) return status_;
    size_t size = 0;
    for (absl::string_view part : parts) size += part.size();
    RETURN_IF_ERROR(CheckOutgoingFrameSize(format_, size));
    // Output queued by Send() goes first, to keep frames in order.
    while (!out_.empty()) {
      absl::Status s = Flush();
      if (!s.ok()) return Fail(s);
      if (!out_.empty()) RETURN_IF_ERROR(WaitFor(POLLOUT));
    }
    char header[kFrameHeaderSize];
    EncodeFrameHeader(format_, size, header);
    std::vector<absl::string_view> pieces;
    pieces.reserve(parts.size() + 1);
    pieces.emplace_back(header, kFrameHeaderSize);
    for (absl::string_view part : parts) {
      if (!part.empty()) pieces.push_back(part);
    }
    size_t piece = 0;   // the first piece not wholly sent
    size_t offset = 0;  // bytes of it sent
    while (piece < pieces.size()) {
      struct iovec iov[kMaxIov];
      int n = 0;
      for (size_t i = piece; i < pieces.size() && n < kMaxIov; ++i) {
        const size_t skip = i == piece ? offset : 0;
        iov[n++] = {const_cast<char*>(pieces[i].data()) + skip,
                    pieces[i].size() - skip};
      }
      struct msghdr msg = {};
      msg.msg_iov = iov;
      msg.msg_iovlen = n;
      ssize_t w = sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          RETURN_IF_ERROR(WaitFor(POLLOUT));
          continue;
        }
        return Fail(WriteError(errno));
      }
      for (size_t sent = static_cast<size_t>(w); sent > 0;) {
        const size_t k = std::min(sent, pieces[piece].size() - offset);
        sent -= k;
        offset += k;
        if (offset == pieces[piece].size()) {
          ++piece;
          offset = 0;
        }
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> ReceiveBlocking() override {
    bool spun = false;
    for (;;) {
      if (ready_next_ < ready_.size()) {
        std::string frame = std::move(ready_[ready_next_++]);
        if (ready_next_ == ready_.size()) {
          ready_.clear();
          ready_next_ = 0;
        }
        return frame;
      }
      if (input_done_) return status_;
      char* dst;
      size_t want;
      const bool direct = PrepareRead(&dst, &want);
      ssize_t n;
      if (!spun) {
        spun = true;
        n = SpinThenRecv(fd_.get(), dst, want);
      } else {
        n = recv(fd_.get(), dst, want, 0);
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          // A descriptor someone made non-blocking: wait like a blocking one.
          absl::Status s = WaitFor(POLLIN);
          if (!s.ok()) FailInput(s);
          continue;
        }
        FailInput(ReadError(errno));
        continue;
      }
      if (n == 0) {
        FailInput(EofError());
        continue;
      }
      Deliver(direct, static_cast<size_t>(n), &ready_);
    }
  }

 private:
  // A frame queued by Send (its bytes are `payload`) or SendParts (`parts`,
  // whose bytes `owner` keeps alive).
  using OutFrame = procpool::OutFrame<kFrameHeaderSize>;

  // Send() (`payload`, no parts) and SendParts() (`parts` kept alive by
  // `owner`, no payload): queues the frame and writes what it can. Output
  // left queued by an earlier call means the socket was full; Pump() writes
  // it when epoll reports EPOLLOUT.
  absl::Status Enqueue(std::vector<absl::string_view> parts,
                       std::string payload,
                       std::shared_ptr<const void> owner) {
    if (!status_.ok()) return status_;
    const uint64_t size = OutFrameSize(parts, payload);
    RETURN_IF_ERROR(CheckOutgoingFrameSize(format_, size));
    OutFrame& f = out_.emplace_back();
    EncodeFrameHeader(format_, size, f.header);
    f.Take(size, std::move(parts), std::move(payload), std::move(owner));
    if (out_.size() > 1) return absl::OkStatus();
    absl::Status s = Flush();
    if (!s.ok()) SetError(s);
    return s;
  }

  // Records `s` unless an error came first; the channel is unusable from now
  // on. Returns the channel's (first) error.
  absl::Status Fail(const absl::Status& s) {
    SetError(s);
    return status_;
  }
  void SetError(const absl::Status& s) {
    if (status_.ok()) status_ = s;
    out_.clear();
    out_offset_ = 0;
  }

  // Stops reading: end of stream, a read error or a corrupt stream.
  void FailInput(const absl::Status& s) {
    input_done_ = true;
    in_frames_.Reset();
    SetError(s);
  }

  absl::Status WriteError(int error_number) const {
    absl::Status s = PosixError("send", error_number);
    if (error_number == EPIPE || error_number == ECONNRESET) {
      return Annotate(s, absl::StrCat(format_.name, ": the ", peer_,
                                      " closed the channel"));
    }
    return Annotate(s, absl::StrCat(format_.name, ": writing to the ", peer_));
  }

  absl::Status ReadError(int error_number) const {
    absl::Status s = PosixError("recv", error_number);
    if (error_number == ECONNRESET) {
      return Annotate(s, absl::StrCat(format_.name, ": the ", peer_,
                                      " closed the channel"));
    }
    return Annotate(s, absl::StrCat(format_.name, ": reading from the ", peer_));
  }

  // End of stream: what was cut short, if anything.
  absl::Status EofError() const { return in_frames_.EndOfStreamError(); }

  // Waits until fd_ is ready for `events` (POLLIN or POLLOUT).
  absl::Status WaitFor(short events) {
    struct pollfd p = {fd_.get(), events, 0};
    while (poll(&p, 1, -1) < 0) {
      if (errno != EINTR) return Fail(PosixError("poll", errno));
    }
    return absl::OkStatus();
  }

  // Writes queued output until it is all written, the socket is full (EAGAIN
  // or a short write) or an error.
  absl::Status Flush() {
    while (!out_.empty()) {
      struct iovec iov[kMaxIov];
      int n = 0;
      size_t want = 0;
      size_t offset = out_offset_;  // applies to the front frame only
      for (auto it = out_.begin(); it != out_.end() && n < kMaxIov; ++it) {
        if (offset < kFrameHeaderSize) {
          iov[n++] = {it->header + offset, kFrameHeaderSize - offset};
          want += kFrameHeaderSize - offset;
        }
        // Bytes of the parts to skip (the front frame's, already written).
        size_t skip =
            offset > kFrameHeaderSize ? offset - kFrameHeaderSize : 0;
        for (absl::string_view part : it->Bytes()) {
          if (n == kMaxIov) break;
          if (skip >= part.size()) {
            skip -= part.size();
            continue;
          }
          iov[n++] = {const_cast<char*>(part.data()) + skip,
                      part.size() - skip};
          want += part.size() - skip;
          skip = 0;
        }
        offset = 0;
      }
      struct msghdr msg = {};
      msg.msg_iov = iov;
      msg.msg_iovlen = n;
      ssize_t w = sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return absl::OkStatus();
        return WriteError(errno);
      }
      ConsumeOutput(static_cast<size_t>(w));
      if (static_cast<size_t>(w) < want) return absl::OkStatus();  // full
    }
    return absl::OkStatus();
  }

  // Drops `written` bytes from the front of out_.
  void ConsumeOutput(size_t written) {
    while (written > 0) {
      const size_t left =
          kFrameHeaderSize + out_.front().size - out_offset_;
      if (written < left) {
        out_offset_ += written;
        return;
      }
      written -= left;
      RecycleBigBuffer(std::move(out_.front().payload));
      out_.pop_front();
      out_offset_ = 0;
    }
  }

  // Reads what the socket holds without blocking (see the file comment for
  // when it stops) and appends the frames completed to `frames`.
  void ReadAvailable(std::vector<std::string>* frames) {
    // Once the channel failed (the peer is gone) what is left to read is
    // finite (at most the peer's send buffer): read on to the end, so that
    // this call delivers every frame. kMaxReadPerPump still bounds the call.
    const bool drain_all = !status_.ok();
    size_t total = 0;
    while (!input_done_ && total < kMaxReadPerPump) {
      char* dst;
      size_t want;
      const bool direct = PrepareRead(&dst, &want);
      ssize_t n = recv(fd_.get(), dst, want, MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        FailInput(ReadError(errno));
        return;
      }
      if (n == 0) {
        FailInput(EofError());
        return;
      }
      Deliver(direct, static_cast<size_t>(n), frames);
      total += static_cast<size_t>(n);
      if (!drain_all && static_cast<size_t>(n) < want) return;  // drained
    }
  }

  // Chooses where the next recv() goes: straight into the frame's payload
  // when much of it is still to come (returns true), else in_buf_.
  bool PrepareRead(char** dst, size_t* want) {
    if (in_frames_.payload_left() >= kDirectReadMin) {
      // Deliver() fed every buffered byte to in_frames_: in_buf_ is empty.
      const absl::Span<char> room = in_frames_.PayloadRoom(kInBufSize);
      if (!room.empty()) {
        *dst = room.data();
        *want = room.size();
        return true;
      }
      // No memory for the payload: the bytes go to in_buf_, whose Feed()
      // reports error().
    }
    *dst = in_buf_.get();
    *want = kInBufSize;
    return false;
  }

  // `n` bytes arrived where PrepareRead() said: turns them into frames
  // appended to `frames` (or finds the stream corrupt).
  void Deliver(bool direct, size_t n, std::vector<std::string>* frames) {
    bytes_received_ += n;
    if (direct) {
      in_frames_.CommitPayload(n, frames);
      return;
    }
    in_frames_.Feed(in_buf_.get(), n, frames);
    if (!in_frames_.error().ok()) {
      const absl::Status bad = in_frames_.error();
      FailInput(bad);
    }
  }

  // Moves frames that ReceiveBlocking() parsed but did not return yet.
  void TakeReady(std::vector<std::string>* frames) {
    for (; ready_next_ < ready_.size(); ++ready_next_) {
      frames->push_back(std::move(ready_[ready_next_]));
    }
    ready_.clear();
    ready_next_ = 0;
  }

  // Constant after construction.
  const UniqueFd fd_;
  const FrameFormat format_;
  const std::string peer_;

  // Bytes read from the socket since the start (a sign of life even while
  // a big frame is still incomplete).
  uint64_t bytes_received_ = 0;

  // The first error; once set, the channel is unusable.
  absl::Status status_;
  // No more input will be read (end of stream, read error, corrupt stream).
  bool input_done_ = false;

  // Output not yet written; out_offset_ bytes of the front frame are written.
  std::deque<OutFrame> out_;
  size_t out_offset_ = 0;

  // Input: recv() stages headers and small frames in in_buf_ (every byte
  // is fed to in_frames_ at once); the tail of a large payload goes straight
  // into in_frames_' buffer.
  const std::unique_ptr<char[]> in_buf_;
  FrameAssembler in_frames_;

  // Frames parsed by ReceiveBlocking() and not returned yet, from ready_next_.
  std::vector<std::string> ready_;
  size_t ready_next_ = 0;
};

}  // namespace

std::unique_ptr<StreamChannel> StreamChannel::Make(UniqueFd fd,
                                                   const FrameFormat& format,
                                                   absl::string_view peer) {
  return std::make_unique<StreamChannelImpl>(std::move(fd), format, peer);
}

}  // namespace procpool
