// One end of an shm channel (the layout, the memory ordering and the
// wake-up protocol are in shm_transport.h).
//
// Data flow inside one ShmChannel (the same class serves both sides; only
// which ring is "in" and which "out", and which closed word is whose, differ):
//   Send()          -> out_ (header + payload, moved in, never copied)
//                   -> Flush(): memcpy into the out ring, Publish() per chunk
//   SendBlocking()  -> memcpy straight from the caller's bytes into the ring
//   ReadInput()     -> FrameAssembler (transport/frame_assembler.h) copies
//                      (std::string::append) from the in ring into the frame
//                      being assembled; Release() per chunk
//                   -> whole frames appended to the caller's vector
// Large frames move in chunks of a quarter ring at most, each published (or
// released) at once, so that the other side copies while this one does.
//
// Descriptors (ChannelFds::descriptors, a SOCK_SEQPACKET pair of its own):
//   SendPartsWithDescriptors() -> OutFrame::fds (duplicates); the header
//                      announces how many (frame_header.h)
//   Flush()         -> when the frame's first byte is about to enter the ring:
//                      one message, 'D' + SCM_RIGHTS, on the descriptor
//                      socket (MSG_DONTWAIT; a full socket leaves the frame
//                      queued and puts the socket in PollFd()'s epoll for
//                      EPOLLOUT until it has room)
//   ReadInput()     -> for each completed frame whose header announced n > 0:
//                      recvmsg() one message (MSG_DONTWAIT, MSG_CMSG_CLOEXEC);
//                      it is there already (sent before the frame's bytes).
//                      Missing, short, long or not 'D' is kDataLoss.
//                   -> fds_in_, taken in order by TakeDescriptors()
// The liveness socket keeps its role (no bytes ever; its readability is a
// hang-up or garbage). Why a socket of its own: descriptor messages waiting on
// the liveness socket would keep PollFd() readable (the manager would spin
// between a message and its frame, or forever for a frame never read) and
// could not be told from garbage. A peer that dies mid-frame leaves its
// message in the socket, where the kernel drops it with the socket.
#include "transport/shm/shm_channel.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
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
#include "common/event_fd.h"
#include "common/posix_error.h"
#include "common/spin.h"
#include "common/status_macros.h"
#include "common/sys.h"
#include "transport/frame_assembler.h"
#include "transport/frame_header.h"
#include "transport/out_frame.h"
#include "transport/shm/spin_gate.h"
#include "transport/transport.h"

namespace procpool {
namespace shm_internal {
namespace {

static_assert(kShmFrameHeaderSize == kFrameHeaderSize);

// The frames' header (frame_header.h) and its errors.
constexpr FrameFormat kShmFrameFormat = {kShmFrameMagic, kShmMaxFrameLength,
                                         "shm transport", "ring",
                                         /*descriptors=*/true};

// Spin iterations between two reads of the clock.
constexpr int kSpinsPerClockRead = 64;

static_assert(kMaxFrameDescriptors == Channel::kMaxDescriptorsPerFrame);
// The byte each descriptor message carries.
constexpr char kDescriptorMessageByte = 'D';
// Room for any SCM_RIGHTS message (SCM_MAX_FD is 253).
union DescriptorControl {
  struct cmsghdr align;
  char bytes[CMSG_SPACE(sizeof(int) * 253)];
};

class ShmChannel final : public Channel {
 public:
  // See NewShmChannel().
  ShmChannel(Side side, ShmSegment segment, ChannelFds fds,
             const ShmTransportOptions& options)
      : peer_(side == Side::kParent ? "worker" : "parent"),
        segment_(std::move(segment)),
        fds_(std::move(fds)),
        spin_ns_(options.spin_ns),
        spin_gate_(options.spin_only_with_idle_cpu),
        control_(segment_.control()),
        in_frames_(kShmFrameFormat, FrameAssembler::kReserveFrame, peer_) {
    const uint64_t ring_bytes = segment_.ring_bytes();
    char* const to_child = segment_.ring_to_child();
    char* const to_parent = segment_.ring_to_parent();
    if (side == Side::kParent) {
      out_ = RingWriter(&control_->to_child, to_child, ring_bytes);
      in_ = RingReader(&control_->to_parent, to_parent, ring_bytes);
      my_closed_ = &control_->parent_closed;
      peer_closed_ = &control_->child_closed;
    } else {
      out_ = RingWriter(&control_->to_parent, to_parent, ring_bytes);
      in_ = RingReader(&control_->to_child, to_child, ring_bytes);
      my_closed_ = &control_->child_closed;
      peer_closed_ = &control_->parent_closed;
    }
    chunk_ = std::max<uint64_t>(ring_bytes / 4, kShmMinRingBytes / 2);
  }

  // Tells the peer (the closed word, then a wake-up: it may sleep), then
  // closes every descriptor and unmaps the memory.
  ~ShmChannel() override {
    my_closed_->value.store(1, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    SignalEventFd(fds_.wake_peer.get());
  }

  ShmChannel(const ShmChannel&) = delete;
  ShmChannel& operator=(const ShmChannel&) = delete;

  absl::Status Send(std::string frame) override {
    return Enqueue({}, std::move(frame), nullptr, {});
  }

  absl::Status SendParts(std::vector<absl::string_view> parts,
                         std::shared_ptr<const void> owner) override {
    return Enqueue(std::move(parts), std::string(), std::move(owner), {});
  }

  bool CarriesDescriptors() const override { return true; }

  absl::Status SendPartsWithDescriptors(std::vector<absl::string_view> parts,
                                        std::shared_ptr<const void> owner,
                                        absl::Span<const int> fds) override {
    if (!status_.ok()) return status_;
    RETURN_IF_ERROR(CheckDescriptorCount(fds.size()));
    std::vector<UniqueFd> copies;
    copies.reserve(fds.size());
    for (int fd : fds) {
      UniqueFd copy(fd < 0 ? -1 : GetSys().DupCloexec(fd, 0));
      if (!copy.valid()) {
        const int error_number = fd < 0 ? EBADF : errno;
        const absl::Status s = PosixError(
            absl::StrCat("shm transport: duplicating descriptor ", fd,
                         " to send"),
            error_number);
        if (error_number == EBADF) {
          return absl::InvalidArgumentError(s.message());
        }
        return s;
      }
      copies.push_back(std::move(copy));
    }
    return Enqueue(std::move(parts), std::string(), std::move(owner),
                   std::move(copies));
  }

  absl::Status SendBlockingPartsWithDescriptors(
      absl::Span<const absl::string_view> parts,
      absl::Span<const int> fds) override {
    RETURN_IF_ERROR(CheckDescriptorCount(fds.size()));
    // A bad one would fail sendmsg() and with it the channel.
    for (int fd : fds) {
      if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "shm transport", ": descriptor ", fd, " to send is not open"));
      }
    }
    return SendBlockingFrame(parts, fds);
  }

  absl::StatusOr<std::vector<UniqueFd>> TakeDescriptors(size_t n) override {
    if (n == 0) return std::vector<UniqueFd>();
    const uint64_t owed = fds_handed_out_ - fds_taken_;
    if (fds_lost_ || n > owed || n > fds_in_.size()) {
      return absl::DataLossError(absl::StrCat(
          "shm transport: ", n, " descriptors asked for, but the frames "
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
    if (input_done_) return status_;
    // Reset the wake-up first: whatever the peer does from here on is seen
    // by the loop below or wakes us again.
    if (!DrainEventFd(fds_.wake_self.get())) ProbeSocket();
    in_.DisarmSleeping();
    if (PeerClosed()) peer_gone_ = true;
    if (peer_gone_ || socket_garbage_ || !status_.ok()) {
      // What is left is finite (the peer is gone, or we stop here): deliver
      // all of it. A dead peer left at most one ring of bytes.
      out_frames_.clear();
      out_.DisarmWaiting();
      ReadInput(frames, in_.size());
      if (!input_done_) {
        FailInput(socket_garbage_ ? GarbageError()
                  : peer_gone_    ? EofError()
                                  : status_);
      }
      return status_;
    }
    budget_ = kShmMaxReadPerPump;
    for (;;) {
      if (!out_frames_.empty()) {
        absl::Status s = Flush();
        if (!s.ok()) SetError(s);
      }
      budget_ -= ReadInput(frames, budget_);
      if (!status_.ok() || input_done_) return status_;
      if (budget_ == 0) {
        // Stop for the other channels; stay readable.
        SignalEventFd(fds_.wake_self.get());
        return status_;
      }
      // Stop looking: arm, then re-check (shm_transport.h).
      in_.ArmSleeping();
      // Waiting for room in the descriptor socket: its EPOLLOUT wakes us.
      const bool want_space =
          !out_frames_.empty() && !descriptor_socket_full_;
      if (want_space) out_.ArmWaiting();
      if (in_.Available() == 0 && !in_.corrupt() &&
          !(want_space && out_.Free(1) > 0)) {
        return status_;
      }
      in_.DisarmSleeping();
      if (want_space) out_.DisarmWaiting();
    }
  }

  // Pump() without its two system calls (resetting the eventfd and probing
  // the socket): a stale eventfd count costs the manager one spurious wake-up,
  // and a dead peer still makes PollFd() readable. With `stay` the "to
  // parent" ring stays disarmed, so the child's Publish() claims no flag and
  // writes no eventfd while a caller polls.
  absl::Status Poll(std::vector<std::string>* frames, bool stay) override {
    TakeReady(frames);
    if (input_done_ || !status_.ok() || peer_gone_ || socket_garbage_ ||
        PeerClosed()) {
      return Pump(frames);
    }
    in_.DisarmSleeping();
    budget_ = kShmMaxReadPerPump;
    if (!out_frames_.empty()) {
      absl::Status s = Flush();
      if (!s.ok()) SetError(s);
    }
    budget_ -= ReadInput(frames, budget_);
    if (!status_.ok() || input_done_ || stay) return status_;
    if (budget_ == 0 || !out_frames_.empty()) return Pump(frames);
    in_.ArmSleeping();
    if (in_.Available() == 0 && !in_.corrupt()) return status_;
    return Pump(frames);  // raced with the child: the careful path
  }

  bool PollIsCheap() const override { return true; }

  int PollFd() const override { return fds_.epoll.get(); }

  uint32_t PollEvents() const override { return EPOLLIN; }

  absl::Status SendBlocking(absl::string_view frame) override {
    return SendBlockingParts({frame});
  }

  absl::Status SendBlockingParts(
      absl::Span<const absl::string_view> parts) override {
    return SendBlockingFrame(parts, {});
  }

  absl::StatusOr<std::string> ReceiveBlocking() override {
    for (;;) {
      if (ready_next_ < ready_.size()) {
        std::string frame = std::move(ready_[ready_next_]);
        fds_handed_out_ += ready_counts_[ready_next_];
        ++ready_next_;
        if (ready_next_ == ready_.size()) {
          ready_.clear();
          ready_counts_.clear();
          ready_next_ = 0;
        }
        return frame;
      }
      if (input_done_) return status_;
      if (in_.Available() == 0 && !in_.corrupt()) {
        absl::Status s = WaitForInput();
        if (!s.ok()) {
          // The peer is gone: what it completed is still delivered.
          ReadInput(&ready_, ~uint64_t{0});
          if (!input_done_) FailInput(s);
          continue;
        }
      }
      ReadInput(&ready_, ~uint64_t{0});
    }
  }

 private:
  // A frame queued by Send (its bytes are `payload`) or SendParts (`parts`,
  // whose bytes `owner` keeps alive).
  using OutFrame = procpool::OutFrame<kShmFrameHeaderSize>;

  absl::Status CheckDescriptorCount(size_t n) const {
    if (n <= kMaxFrameDescriptors) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("shm transport: ", n,
                     " descriptors for one frame; the limit is ",
                     kMaxFrameDescriptors));
  }

  // Sends the descriptor message of a frame: OK, kUnavailable (the socket is
  // full; `blocking` waits instead) or the error.
  absl::Status SendDescriptorMessage(absl::Span<const int> fds, bool blocking) {
    char byte = kDescriptorMessageByte;
    struct iovec iov = {&byte, 1};
    DescriptorControl control;
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
    for (;;) {
      if (sendmsg(fds_.descriptors.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT) ==
          1) {
        return absl::OkStatus();
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!blocking) return absl::UnavailableError("descriptor socket full");
        struct pollfd p[2] = {{fds_.descriptors.get(), POLLOUT, 0},
                              {fds_.socket.get(), POLLRDHUP, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR) {
          return PosixError("shm transport: poll", errno);
        }
        if (p[1].revents != 0) {
          peer_gone_ = true;
          return ClosedError();
        }
        continue;
      }
      if (errno == EPIPE || errno == ECONNRESET) {
        peer_gone_ = true;
        return ClosedError();
      }
      return PosixError(
          absl::StrCat("shm transport: sending descriptors to the ", peer_),
          errno);
    }
  }

  // Reads the descriptor message of a completed frame that announced `n` (>
  // 0) into fds_in_; kDataLoss if it is not there or not what was announced.
  absl::Status ReceiveDescriptorMessage(uint32_t n) {
    char bytes[2];
    struct iovec iov = {bytes, sizeof(bytes)};
    DescriptorControl control;
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes;
    msg.msg_controllen = sizeof(control.bytes);
    ssize_t r;
    do {
      r = recvmsg(fds_.descriptors.get(), &msg,
                  MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (r < 0 && errno == EINTR);
    std::vector<UniqueFd> came;
    if (r >= 0) {
      for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
           c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int fd;
          memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          came.emplace_back(fd);
        }
      }
    }
    if (r == 1 && bytes[0] == kDescriptorMessageByte && came.size() == n &&
        (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) == 0) {
      for (UniqueFd& fd : came) fds_in_.push_back(std::move(fd));
      return absl::OkStatus();
    }
    const std::string what =
        r < 0 ? absl::StrCat("none came (", PosixError("recvmsg", errno).message(),
                             ")")
              : absl::StrCat(r, " bytes and ", came.size(),
                             " descriptors came",
                             (msg.msg_flags & MSG_CTRUNC) ? ", cut short" : "");
    return absl::DataLossError(absl::StrCat(
        "shm transport: a frame from the ", peer_, " announced ", n,
        " descriptors, but ", what));
  }

  // The frame's bytes go from each part straight into the ring; `fds` go
  // just before, on the descriptor socket.
  absl::Status SendBlockingFrame(absl::Span<const absl::string_view> parts,
                                 absl::Span<const int> fds) {
    if (!status_.ok()) return status_;
    uint64_t size = 0;
    for (absl::string_view part : parts) size += part.size();
    RETURN_IF_ERROR(CheckOutgoingFrameSize(kShmFrameFormat, size));
    // Output queued by Send() goes first, to keep frames in order.
    while (!out_frames_.empty()) {
      budget_ = ~uint64_t{0};
      absl::Status s = Flush();
      if (!s.ok()) return Fail(s);
      if (descriptor_socket_full_) {
        DisarmDescriptorSocket();
        const std::vector<int> front = RawFds(out_frames_.front().fds);
        s = SendDescriptorMessage(front, /*blocking=*/true);
        if (!s.ok()) return Fail(s);
        out_frames_.front().fds.clear();
        continue;
      }
      if (!out_frames_.empty()) RETURN_IF_ERROR(WaitForSpace());
    }
    if (PeerClosed()) return Fail(ClosedError());
    if (!fds.empty()) {
      absl::Status s = SendDescriptorMessage(fds, /*blocking=*/true);
      if (!s.ok()) return Fail(s);
    }
    char header[kShmFrameHeaderSize];
    EncodeFrameHeader(kShmFrameFormat, size, header,
                      static_cast<uint32_t>(fds.size()));
    const uint64_t total = kShmFrameHeaderSize + size;
    uint64_t done = 0;
    while (done < total) {
      const uint64_t free = out_.Free(std::min(total - done, chunk_));
      if (out_.corrupt()) return Fail(CorruptIndexError("tail"));
      if (free == 0) {
        RETURN_IF_ERROR(WaitForSpace());
        continue;
      }
      const uint64_t n = std::min({free, total - done, chunk_});
      PutFrameBytes(header, parts, done, n);
      done += n;
      if (out_.Publish()) WakePeer();
    }
    return absl::OkStatus();
  }

  // Send() (`payload`, no parts) and SendParts() (`parts` kept alive by
  // `owner`, no payload): queues the frame and writes what fits.
  // `fds`: duplicates that travel with the frame.
  absl::Status Enqueue(std::vector<absl::string_view> parts,
                       std::string payload, std::shared_ptr<const void> owner,
                       std::vector<UniqueFd> fds) {
    if (!status_.ok()) return status_;
    const uint64_t size = OutFrameSize(parts, payload);
    RETURN_IF_ERROR(CheckOutgoingFrameSize(kShmFrameFormat, size));
    if (PeerClosed()) return Fail(ClosedError());
    OutFrame& f = out_frames_.emplace_back();
    EncodeFrameHeader(kShmFrameFormat, size, f.header,
                      static_cast<uint32_t>(fds.size()));
    f.Take(size, std::move(parts), std::move(payload), std::move(owner));
    f.fds = std::move(fds);
    budget_ = kShmMaxReadPerPump;
    return FlushAndArm();
  }

  // Records `s` unless an error came first; the channel is unusable for
  // sending from now on. Returns the channel's (first) error.
  absl::Status Fail(const absl::Status& s) {
    SetError(s);
    return status_;
  }
  void SetError(const absl::Status& s) {
    if (status_.ok()) status_ = s;
    out_frames_.clear();
    out_offset_ = 0;
    DisarmDescriptorSocket();
  }

  static std::vector<int> RawFds(const std::vector<UniqueFd>& fds) {
    std::vector<int> raw;
    raw.reserve(fds.size());
    for (const UniqueFd& fd : fds) raw.push_back(fd.get());
    return raw;
  }

  // The descriptor socket was full: PollFd() becomes readable when it has
  // room (the parent's Flush() then tries again).
  absl::Status ArmDescriptorSocket() {
    descriptor_socket_full_ = true;
    if (descriptor_socket_armed_) return absl::OkStatus();
    struct epoll_event ev = {};
    ev.events = EPOLLOUT;
    ev.data.fd = fds_.descriptors.get();
    if (epoll_ctl(fds_.epoll.get(), EPOLL_CTL_ADD, fds_.descriptors.get(),
                  &ev) != 0) {
      return PosixError("shm transport: epoll_ctl(descriptor socket)", errno);
    }
    descriptor_socket_armed_ = true;
    return absl::OkStatus();
  }
  void DisarmDescriptorSocket() {
    descriptor_socket_full_ = false;
    if (!descriptor_socket_armed_) return;
    epoll_ctl(fds_.epoll.get(), EPOLL_CTL_DEL, fds_.descriptors.get(), nullptr);
    descriptor_socket_armed_ = false;
  }

  // Stops reading: the peer is gone, or the stream is corrupt.
  void FailInput(const absl::Status& s) {
    input_done_ = true;
    in_frames_.Reset();
    SetError(s);
  }

  bool PeerClosed() const {
    return peer_closed_->value.load(std::memory_order_acquire) != 0;
  }

  void WakePeer() { SignalEventFd(fds_.wake_peer.get()); }

  // Looks at the liveness socket without blocking: end of file or an error
  // means the peer is gone; bytes (it never carries any) mean someone wrote
  // where they should not: the channel is corrupt.
  void ProbeSocket() {
    char byte;
    for (;;) {
      const ssize_t n = recv(fds_.socket.get(), &byte, 1, MSG_DONTWAIT);
      if (n == 0) {
        peer_gone_ = true;
      } else if (n > 0) {
        socket_garbage_ = true;
      } else if (errno == EINTR) {
        continue;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        peer_gone_ = true;
      }
      return;
    }
  }

  absl::Status GarbageError() const {
    return absl::DataLossError(absl::StrCat(
        "shm transport: bytes arrived on the liveness socket, which carries "
        "none: the ", peer_, "'s end is corrupt"));
  }

  absl::Status ClosedError() const {
    return absl::UnavailableError(
        absl::StrCat("shm transport: the ", peer_, " closed the channel"));
  }

  absl::Status CorruptIndexError(absl::string_view which) const {
    return absl::DataLossError(absl::StrCat(
        "shm transport: the ", peer_, "'s ring ", which,
        " is impossible: the shared memory is corrupt"));
  }

  // The peer is gone: what was cut short, if anything.
  absl::Status EofError() const { return in_frames_.EndOfStreamError(); }

  // Copies bytes [offset, offset + n) of header ++ parts into the ring.
  void PutFrameBytes(const char* header,
                     absl::Span<const absl::string_view> parts,
                     uint64_t offset, uint64_t n) {
    if (offset < kShmFrameHeaderSize) {
      const uint64_t h = std::min(n, kShmFrameHeaderSize - offset);
      out_.Put(header + offset, h);
      offset += h;
      n -= h;
    }
    offset -= kShmFrameHeaderSize;  // now within the parts
    for (absl::string_view part : parts) {
      if (n == 0) return;
      if (offset >= part.size()) {
        offset -= part.size();
        continue;
      }
      const uint64_t k = std::min<uint64_t>(n, part.size() - offset);
      out_.Put(part.data() + offset, k);
      n -= k;
      offset = 0;
    }
  }

  // Writes queued output until it is all in the ring, the ring is full or
  // budget_ is spent; publishes every chunk and wakes the peer if it sleeps.
  absl::Status Flush() {
    while (!out_frames_.empty() && budget_ > 0) {
      OutFrame& f = out_frames_.front();
      const uint64_t total = kShmFrameHeaderSize + f.size;
      const uint64_t left = total - out_offset_;
      const uint64_t free = out_.Free(std::min(left, chunk_));
      if (out_.corrupt()) return CorruptIndexError("tail");
      if (free == 0) break;
      if (!f.fds.empty()) {
        // Its first byte goes next: its descriptors go first.
        absl::Status s = SendDescriptorMessage(RawFds(f.fds), false);
        if (absl::IsUnavailable(s) && !peer_gone_) {
          RETURN_IF_ERROR(ArmDescriptorSocket());
          break;
        }
        RETURN_IF_ERROR(s);
        f.fds.clear();
        DisarmDescriptorSocket();
      }
      const uint64_t n = std::min({free, left, chunk_, budget_});
      PutFrameBytes(f.header, f.Bytes(), out_offset_, n);
      budget_ -= n;
      out_offset_ += n;
      if (out_offset_ == total) {
        RecycleBigBuffer(std::move(f.payload));
        out_frames_.pop_front();
        out_offset_ = 0;
      }
      // Small frames are published together; large ones chunk by chunk.
      if (out_.unpublished() >= chunk_ && out_.Publish()) WakePeer();
    }
    if (out_.Publish()) WakePeer();
    return absl::OkStatus();
  }

  // Send()'s tail: flush, and if output is left, arm the wait for space
  // (re-checking as the protocol says). Keeps PollFd() readable when the
  // budget stopped the flush.
  absl::Status FlushAndArm() {
    for (;;) {
      absl::Status s = Flush();
      if (!s.ok()) return Fail(s);
      if (out_frames_.empty()) return absl::OkStatus();
      if (descriptor_socket_full_) return absl::OkStatus();  // EPOLLOUT wakes
      if (budget_ == 0) {
        SignalEventFd(fds_.wake_self.get());
        return absl::OkStatus();
      }
      out_.ArmWaiting();
      if (out_.Free(1) == 0) {
        if (out_.corrupt()) return Fail(CorruptIndexError("tail"));
        return absl::OkStatus();
      }
      out_.DisarmWaiting();
    }
  }

  // Moves whole frames from the in ring to `frames`, reading at most
  // `budget` bytes; returns the bytes read. Releases the space chunk by chunk
  // and wakes the peer if it waits for it.
  uint64_t ReadInput(std::vector<std::string>* frames, uint64_t budget) {
    uint64_t total = 0;
    while (!input_done_ && total < budget) {
      const uint64_t available = in_.Available();
      if (in_.corrupt()) {
        FailInput(CorruptIndexError("head"));
        break;
      }
      if (available == 0) break;
      const uint64_t n = std::min({available, chunk_, budget - total});
      total += n;
      const RingReader::Pieces bytes = in_.Peek(n);
      size_t taken =
          in_frames_.Feed(bytes.first, bytes.first_size, frames, &counts_);
      if (taken == bytes.first_size && bytes.second_size > 0) {
        taken += in_frames_.Feed(bytes.second, bytes.second_size, frames,
                                 &counts_);
      }
      in_.Skip(taken);
      if (!in_frames_.error().ok()) {
        const absl::Status bad = in_frames_.error();
        FailInput(bad);
      }
      if (in_.Release()) WakePeer();
      TakeFrameDescriptors(frames == &ready_);
    }
    return total;
  }

  // The frames ReadInput() just completed (their counts in counts_): reads
  // their descriptor messages and accounts for them (kept in ready_counts_
  // when the frames went to ready_).
  void TakeFrameDescriptors(bool to_ready) {
    for (uint32_t n : counts_) {
      if (to_ready) ready_counts_.push_back(n);
      if (n == 0) continue;
      fds_completed_ += n;
      if (!to_ready) fds_handed_out_ += n;
      if (fds_lost_) continue;
      absl::Status s = ReceiveDescriptorMessage(n);
      if (!s.ok()) {
        // Which frame owns which descriptor is unknown now: none is handed
        // out.
        fds_lost_ = true;
        fds_in_.clear();
        if (!input_done_) FailInput(s);
      }
    }
    counts_.clear();
  }

  // Blocks until the in ring has bytes: spins, then sleeps. kUnavailable
  // once the peer is gone (the caller then drains what is left).
  absl::Status WaitForInput() {
    return Wait([this] { return in_.Available() > 0 || in_.corrupt(); },
                /*for_input=*/true);
  }

  // Blocks until the out ring has space (or the peer is gone: then fails the
  // channel and returns its error).
  absl::Status WaitForSpace() {
    absl::Status s =
        Wait([this] { return out_.Free(1) > 0 || out_.corrupt(); },
             /*for_input=*/false);
    if (!s.ok()) return Fail(s);
    if (out_.corrupt()) return Fail(CorruptIndexError("tail"));
    return s;
  }

  template <typename Ready>
  absl::Status Wait(const Ready& ready, bool for_input) {
    // Spin: the common case when the peer answers within a few microseconds
    // (and a CPU is to spare: SpinGate).
    if (spin_ns_ > 0 && !ready()) {
      int64_t now = MonotonicNanos();
      if (spin_gate_.Allowed(now)) {
        const int64_t deadline = now + spin_ns_;
        for (int i = 1;; ++i) {
          if (ready()) return absl::OkStatus();
          if (i % kSpinsPerClockRead == 0) {
            const int64_t before = now;
            now = MonotonicNanos();
            if (now - before > SpinGate::kPreemptedNs) {
              spin_gate_.Preempted(now);
              break;
            }
            if (PeerClosed() || now >= deadline) break;
          }
          CpuRelax();
        }
      }
    }
    for (;;) {
      // Arm, then re-check (the Dekker handshake in shm_transport.h).
      if (for_input) {
        in_.ArmSleeping();
      } else {
        out_.ArmWaiting();
      }
      const bool closed = PeerClosed();  // before ready(): see below
      const bool is_ready = ready();
      if (is_ready || closed || peer_gone_ || socket_garbage_) {
        if (for_input) {
          in_.DisarmSleeping();
        } else {
          out_.DisarmWaiting();
        }
        // The closed word is read first, so a ring that looks empty after it
        // really holds everything the peer sent before closing.
        if (is_ready) return absl::OkStatus();
        if (socket_garbage_) return GarbageError();
        peer_gone_ = true;
        return for_input ? EofError() : ClosedError();
      }
      struct pollfd p[2] = {{fds_.wake_self.get(), POLLIN, 0},
                            {fds_.socket.get(), POLLIN | POLLRDHUP, 0}};
      const int n = poll(p, 2, -1);
      if (for_input) {
        in_.DisarmSleeping();
      } else {
        out_.DisarmWaiting();
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        return PosixError("shm transport: poll", errno);
      }
      if (p[0].revents & POLLIN) DrainEventFd(fds_.wake_self.get());
      if (p[1].revents != 0) ProbeSocket();
      if (ready()) return absl::OkStatus();
    }
  }

  // Moves frames that ReceiveBlocking() parsed but did not return yet.
  void TakeReady(std::vector<std::string>* frames) {
    for (; ready_next_ < ready_.size(); ++ready_next_) {
      frames->push_back(std::move(ready_[ready_next_]));
      fds_handed_out_ += ready_counts_[ready_next_];
    }
    ready_.clear();
    ready_counts_.clear();
    ready_next_ = 0;
  }

  // Constant after construction.
  const std::string peer_;  // "worker" or "parent", for messages
  const ShmSegment segment_;
  const ChannelFds fds_;
  const int64_t spin_ns_;
  SpinGate spin_gate_;
  ShmControl* const control_;
  shm_internal::AtomicLine* my_closed_ = nullptr;
  shm_internal::AtomicLine* peer_closed_ = nullptr;
  uint64_t chunk_ = 0;  // bytes moved between two Publish()/Release()

  RingWriter out_;
  RingReader in_;

  // The first error; once set, nothing more is sent.
  absl::Status status_;
  // No more input will be read (the peer is gone, or the ring is corrupt).
  bool input_done_ = false;
  // The peer closed its end or died (its socket hung up).
  bool peer_gone_ = false;
  // Bytes arrived on the liveness socket (kDataLoss once the ring is read).
  bool socket_garbage_ = false;
  // Bytes the current Send()/Pump() may still move.
  uint64_t budget_ = 0;

  // Output not yet in the ring; out_offset_ bytes of the front frame are.
  std::deque<OutFrame> out_frames_;
  uint64_t out_offset_ = 0;

  // Input: the frame being received (its buffer reserved whole up front).
  FrameAssembler in_frames_;

  // Frames parsed by ReceiveBlocking() and not returned yet, from ready_next_,
  // with their descriptor counts.
  std::vector<std::string> ready_;
  std::vector<uint32_t> ready_counts_;
  size_t ready_next_ = 0;

  // Descriptors: the output wait on the descriptor socket (full_: a message
  // could not go; armed_: it is in the epoll set for EPOLLOUT).
  bool descriptor_socket_full_ = false;
  bool descriptor_socket_armed_ = false;
  // Received, not taken yet, in order. Totals since the start: of frames
  // completed (handed out or in ready_), of frames handed out, taken.
  std::deque<UniqueFd> fds_in_;
  uint64_t fds_completed_ = 0;
  uint64_t fds_handed_out_ = 0;
  uint64_t fds_taken_ = 0;
  // A descriptor message did not match its frame: every one was dropped.
  bool fds_lost_ = false;
  // Scratch: the descriptor counts of the frames one ReadInput() completed.
  std::vector<uint32_t> counts_;
};

}  // namespace

absl::StatusOr<UniqueFd> MakeChannelEpoll(int wake_self, int socket) {
  UniqueFd epoll(GetSys().EpollCreate1(EPOLL_CLOEXEC));
  if (epoll.get() < 0) return PosixError("shm transport: epoll_create1", errno);
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.fd = wake_self;
  if (epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake_self, &ev) != 0) {
    return PosixError("shm transport: epoll_ctl(eventfd)", errno);
  }
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.fd = socket;
  if (epoll_ctl(epoll.get(), EPOLL_CTL_ADD, socket, &ev) != 0) {
    return PosixError("shm transport: epoll_ctl(socket)", errno);
  }
  return epoll;
}

std::unique_ptr<Channel> NewShmChannel(Side side, ShmSegment segment,
                                       ChannelFds fds,
                                       const ShmTransportOptions& options) {
  return std::make_unique<ShmChannel>(side, std::move(segment), std::move(fds),
                                      options);
}

}  // namespace shm_internal
}  // namespace procpool
