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
//
// Descriptors (formats with `descriptors`: the unix transport's):
//   SendPartsWithDescriptors() -> OutFrame::fds (duplicates, so that the
//                      caller may close its own at once); the header
//                      announces how many
//                   -> SCM_RIGHTS on the sendmsg() that writes the frame's
//                      first byte; such a frame always starts a sendmsg() of
//                      its own (a frame without descriptors is gathered as
//                      before). The kernel attaches them to the first skb of
//                      that sendmsg(), so they go exactly once, with byte 0
//                      of the frame, however the write is cut short.
//   recvmsg()       -> with room for SCM_MAX_FD descriptors, MSG_CMSG_CLOEXEC
//                      (every read of such a channel: a plain recv() would
//                      make the kernel drop them) -> fds_in_, in order
//   after each read: every header parsed must have had its descriptors
//                      (they came with its first byte, so no later), and at
//                      most one header's worth may be ahead of its header
//                      (its first bytes came, not all 16); anything else, or
//                      MSG_CTRUNC, is kDataLoss and closes what came.
//   TakeDescriptors() hands out those of frames handed out, in order.
#include "transport/stream_channel.h"

#include <errno.h>
#include <fcntl.h>
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
#include "common/sys.h"
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

static_assert(kMaxFrameDescriptors == Channel::kMaxDescriptorsPerFrame);
// The most descriptors the kernel passes in one message (SCM_MAX_FD, not in
// the user-space headers): one recvmsg() never brings more.
constexpr size_t kScmMaxFd = 253;

// Room for the control message of a frame's descriptors (sending).
union SendControl {
  struct cmsghdr align;
  char bytes[CMSG_SPACE(sizeof(int) * kMaxFrameDescriptors)];
};
// Room for any SCM_RIGHTS message the kernel may deliver (receiving).
union ReceiveControl {
  struct cmsghdr align;
  char bytes[CMSG_SPACE(sizeof(int) * kScmMaxFd)];
};

// Puts `fds` (1..kMaxFrameDescriptors) in `msg` as SCM_RIGHTS, in `control`.
void AttachDescriptors(absl::Span<const int> fds, SendControl* control,
                       struct msghdr* msg) {
  msg->msg_control = control->bytes;
  msg->msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
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
    return Enqueue({}, std::move(frame), nullptr, {});
  }

  absl::Status SendParts(std::vector<absl::string_view> parts,
                         std::shared_ptr<const void> owner) override {
    return Enqueue(std::move(parts), std::string(), std::move(owner), {});
  }

  bool CarriesDescriptors() const override { return format_.descriptors; }

  absl::Status SendPartsWithDescriptors(std::vector<absl::string_view> parts,
                                        std::shared_ptr<const void> owner,
                                        absl::Span<const int> fds) override {
    if (!format_.descriptors) {
      return Channel::SendPartsWithDescriptors(std::move(parts),
                                               std::move(owner), fds);
    }
    if (!status_.ok()) return status_;
    std::vector<UniqueFd> copies;
    RETURN_IF_ERROR(DuplicateDescriptors(fds, &copies));
    return Enqueue(std::move(parts), std::string(), std::move(owner),
                   std::move(copies));
  }

  absl::Status SendBlockingPartsWithDescriptors(
      absl::Span<const absl::string_view> parts,
      absl::Span<const int> fds) override {
    if (!format_.descriptors) {
      return Channel::SendBlockingPartsWithDescriptors(parts, fds);
    }
    RETURN_IF_ERROR(CheckDescriptorCount(fds.size()));
    // A bad one would fail sendmsg() and with it the channel.
    for (int fd : fds) {
      if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            format_.name, ": descriptor ", fd, " to send is not open"));
      }
    }
    return SendBlockingFrame(parts, fds);
  }

  absl::StatusOr<std::vector<UniqueFd>> TakeDescriptors(size_t n) override {
    if (!format_.descriptors || n == 0) return Channel::TakeDescriptors(n);
    const uint64_t owed = fds_handed_out_ - fds_taken_;
    if (fds_lost_ || n > owed || n > fds_in_.size()) {
      return absl::DataLossError(absl::StrCat(
          format_.name, ": ", n, " descriptors asked for, but the frames "
          "handed out so far brought only ",
          fds_lost_ ? 0 : std::min<uint64_t>(owed, fds_in_.size()),
          " more from the ", peer_,
          fds_lost_ ? " (its descriptors were inconsistent: all dropped)" : ""));
    }
    std::vector<UniqueFd> taken;
    taken.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      taken.push_back(std::move(fds_in_.front()));
      fds_in_.pop_front();
    }
    fds_taken_ += n;
    return taken;
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

  absl::Status SendBlockingParts(
      absl::Span<const absl::string_view> parts) override {
    return SendBlockingFrame(parts, {});
  }

  absl::StatusOr<std::string> ReceiveBlocking() override {
    bool spun = false;
    for (;;) {
      if (ready_next_ < ready_.size()) {
        std::string frame = std::move(ready_[ready_next_]);
        if (format_.descriptors) fds_handed_out_ += ready_counts_[ready_next_];
        ++ready_next_;
        if (ready_next_ == ready_.size()) {
          ready_.clear();
          ready_counts_.clear();
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
        n = SpinThenRead(dst, want);
      } else {
        n = ReadSome(dst, want, 0);
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
      const size_t before = ready_.size();
      Deliver(direct, static_cast<size_t>(n), &ready_,
              format_.descriptors ? &ready_counts_ : nullptr);
      if (format_.descriptors) {
        for (size_t i = before; i < ready_counts_.size(); ++i) {
          fds_completed_ += ready_counts_[i];
        }
        CheckDescriptors();
      }
    }
  }

 private:
  // A frame queued by Send (its bytes are `payload`) or SendParts (`parts`,
  // whose bytes `owner` keeps alive).
  using OutFrame = procpool::OutFrame<kFrameHeaderSize>;

  absl::Status CheckDescriptorCount(size_t n) const {
    if (n <= kMaxFrameDescriptors) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(format_.name, ": ", n,
                     " descriptors for one frame; the limit is ",
                     kMaxFrameDescriptors));
  }

  // Close-on-exec duplicates of `fds` in `*copies`; kInvalidArgument for too
  // many or one that is not open, the dup's error otherwise.
  absl::Status DuplicateDescriptors(absl::Span<const int> fds,
                                    std::vector<UniqueFd>* copies) const {
    RETURN_IF_ERROR(CheckDescriptorCount(fds.size()));
    copies->reserve(fds.size());
    for (int fd : fds) {
      UniqueFd copy(fd < 0 ? -1 : GetSys().DupCloexec(fd, 0));
      if (!copy.valid()) {
        const int error_number = fd < 0 ? EBADF : errno;
        const absl::Status s = PosixError(
            absl::StrCat(format_.name, ": duplicating descriptor ", fd,
                         " to send"),
            error_number);
        if (error_number == EBADF) {
          return absl::InvalidArgumentError(s.message());
        }
        return s;
      }
      copies->push_back(std::move(copy));
    }
    return absl::OkStatus();
  }

  // One sendmsg() gathers the header and the parts (kMaxIov at a time); the
  // first one carries `fds`.
  absl::Status SendBlockingFrame(absl::Span<const absl::string_view> parts,
                                 absl::Span<const int> fds) {
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
    EncodeFrameHeader(format_, size, header, static_cast<uint32_t>(fds.size()));
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
      SendControl control;
      if (!fds.empty()) AttachDescriptors(fds, &control, &msg);
      ssize_t w = sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          RETURN_IF_ERROR(WaitFor(POLLOUT));
          continue;
        }
        return Fail(WriteError(errno));
      }
      fds = {};  // they went with the first byte
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

  // Send() (`payload`, no parts) and SendParts() (`parts` kept alive by
  // `owner`, no payload): queues the frame and writes what it can. Output
  // left queued by an earlier call means the socket was full; Pump() writes
  // it when epoll reports EPOLLOUT.
  // `fds`: duplicates that travel with the frame (formats with
  // `descriptors` only).
  absl::Status Enqueue(std::vector<absl::string_view> parts,
                       std::string payload, std::shared_ptr<const void> owner,
                       std::vector<UniqueFd> fds) {
    if (!status_.ok()) return status_;
    const uint64_t size = OutFrameSize(parts, payload);
    RETURN_IF_ERROR(CheckOutgoingFrameSize(format_, size));
    OutFrame& f = out_.emplace_back();
    EncodeFrameHeader(format_, size, f.header,
                      static_cast<uint32_t>(fds.size()));
    f.Take(size, std::move(parts), std::move(payload), std::move(owner));
    f.fds = std::move(fds);
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

  // Stops reading: end of stream, a read error or a corrupt stream. Closes
  // the descriptors of the frame cut short, if any.
  void FailInput(const absl::Status& s) {
    input_done_ = true;
    in_frames_.Reset();
    SetError(s);
    const uint64_t owed = fds_completed_ - fds_taken_;
    while (fds_in_.size() > owed) fds_in_.pop_back();
  }

  // After a read of a channel that carries descriptors: checks what came
  // against what the headers parsed so far announced (see the file comment).
  void CheckDescriptors() {
    if (fds_lost_) return;
    const uint64_t announced = in_frames_.descriptors_announced();
    const uint64_t ahead_allowed =
        in_frames_.in_header() ? kMaxFrameDescriptors : 0;
    absl::Status bad;
    if (fds_truncated_) {
      bad = absl::DataLossError(absl::StrCat(
          format_.name, ": descriptors from the ", peer_,
          " were cut short (MSG_CTRUNC: more than one message may carry, or "
          "this process is out of descriptors)"));
    } else if (fds_received_ < announced) {
      bad = absl::DataLossError(absl::StrCat(
          format_.name, ": frame headers from the ", peer_, " announced ",
          announced - fds_received_, " descriptors that did not come"));
    } else if (fds_received_ - announced > ahead_allowed) {
      bad = absl::DataLossError(absl::StrCat(
          format_.name, ": ", fds_received_ - announced,
          " descriptors came from the ", peer_,
          " that no frame header announced"));
    } else {
      return;
    }
    // Which frame owns which descriptor is unknown now: none is handed out.
    fds_lost_ = true;
    fds_in_.clear();
    if (!input_done_) FailInput(bad);
  }

  // recv() (or recvmsg() that keeps the descriptors that come, for formats
  // with `descriptors`) of up to `want` bytes into `dst`.
  ssize_t ReadSome(char* dst, size_t want, int flags) {
    if (!format_.descriptors) return recv(fd_.get(), dst, want, flags);
    struct iovec iov = {dst, want};
    ReceiveControl control;
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes;
    msg.msg_controllen = sizeof(control.bytes);
    const ssize_t n = recvmsg(fd_.get(), &msg, flags | MSG_CMSG_CLOEXEC);
    if (n < 0) return n;
    if (msg.msg_flags & MSG_CTRUNC) fds_truncated_ = true;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
         c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds_in_.emplace_back(fd);
      }
      fds_received_ += count;
    }
    return n;
  }

  // ReadSome() that first polls for up to kReceiveSpinNs.
  ssize_t SpinThenRead(char* dst, size_t want) {
    const int64_t deadline = MonotonicNanos() + kReceiveSpinNs;
    for (int i = 1;; ++i) {
      const ssize_t n = ReadSome(dst, want, MSG_DONTWAIT);
      if (n >= 0 ||
          (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        return n;
      }
      if (i % 4 == 0 && MonotonicNanos() >= deadline) break;
      CpuRelax();
    }
    return ReadSome(dst, want, 0);
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
        // A frame with descriptors starts a sendmsg() of its own.
        if (it != out_.begin() && !it->fds.empty()) break;
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
      SendControl control;
      std::vector<int> fds;
      if (!out_.front().fds.empty()) {
        // Not a byte of this frame is written yet (its descriptors go with
        // the first).
        for (const UniqueFd& fd : out_.front().fds) fds.push_back(fd.get());
        AttachDescriptors(fds, &control, &msg);
      }
      ssize_t w = sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return absl::OkStatus();
        return WriteError(errno);
      }
      out_.front().fds.clear();  // sent: the peer has its own now
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
      ssize_t n = ReadSome(dst, want, MSG_DONTWAIT);
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
      if (format_.descriptors) {
        Deliver(direct, static_cast<size_t>(n), frames, &counts_);
        for (uint32_t c : counts_) {
          fds_completed_ += c;
          fds_handed_out_ += c;
        }
        counts_.clear();
        CheckDescriptors();
      } else {
        Deliver(direct, static_cast<size_t>(n), frames, nullptr);
      }
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
  // `counts` (if not null) gets the descriptor count of each frame.
  void Deliver(bool direct, size_t n, std::vector<std::string>* frames,
               std::vector<uint32_t>* counts) {
    bytes_received_ += n;
    if (direct) {
      in_frames_.CommitPayload(n, frames, counts);
      return;
    }
    in_frames_.Feed(in_buf_.get(), n, frames, counts);
    if (!in_frames_.error().ok()) {
      const absl::Status bad = in_frames_.error();
      FailInput(bad);
    }
  }

  // Moves frames that ReceiveBlocking() parsed but did not return yet.
  void TakeReady(std::vector<std::string>* frames) {
    for (; ready_next_ < ready_.size(); ++ready_next_) {
      frames->push_back(std::move(ready_[ready_next_]));
      if (format_.descriptors) fds_handed_out_ += ready_counts_[ready_next_];
    }
    ready_.clear();
    ready_counts_.clear();
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

  // Frames parsed by ReceiveBlocking() and not returned yet, from ready_next_
  // (with their descriptor counts, for formats with `descriptors`).
  std::vector<std::string> ready_;
  std::vector<uint32_t> ready_counts_;
  size_t ready_next_ = 0;

  // Descriptors received (formats with `descriptors`): fds_in_ holds those
  // not taken yet, in order. Totals since the start: received, of frames
  // completed (handed out or in ready_), of frames handed out, taken.
  std::deque<UniqueFd> fds_in_;
  uint64_t fds_received_ = 0;
  uint64_t fds_completed_ = 0;
  uint64_t fds_handed_out_ = 0;
  uint64_t fds_taken_ = 0;
  // A recvmsg() reported MSG_CTRUNC.
  bool fds_truncated_ = false;
  // What came did not match the headers: every descriptor was dropped.
  bool fds_lost_ = false;
  // Scratch: the descriptor counts of the frames one read completed.
  std::vector<uint32_t> counts_;
};

}  // namespace

std::unique_ptr<StreamChannel> StreamChannel::Make(UniqueFd fd,
                                                   const FrameFormat& format,
                                                   absl::string_view peer) {
  return std::make_unique<StreamChannelImpl>(std::move(fd), format, peer);
}

}  // namespace procpool
