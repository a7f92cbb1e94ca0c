// A Channel over a connected stream socket (see stream_channel.h).
//
// Data flow inside one channel:
//   Send()          -> out_ (a StreamWriter, stream_writer.h: header +
//                      payload, moved in, never copied)
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
//                      first byte (stream_writer.h says how)
//   recvmsg()       -> ReceiveWithRights() (scm_rights.h: room for SCM_MAX_FD
//                      descriptors, MSG_CMSG_CLOEXEC) on every read of such a
//                      channel (a plain recv() would make the kernel drop
//                      them) -> fds_in_ (descriptor_queue.h), in order
//   after each read: every header parsed must have had its descriptors
//                      (they came with its first byte, so no later), and at
//                      most one header's worth may be ahead of its header
//                      (its first bytes came, not all 16); anything else, or
//                      MSG_CTRUNC, is kDataLoss and closes what came.
//   TakeDescriptors() hands out those of frames handed out, in order.
#include "transport/stream_channel.h"

#include <errno.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/posix_error.h"
#include "common/spin.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "transport/descriptor_queue.h"
#include "transport/frame_assembler.h"
#include "transport/frame_header.h"
#include "transport/scm_rights.h"
#include "transport/stream_writer.h"
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
// How long a worker's ReceiveBlocking() polls the socket (recv with
// MSG_DONTWAIT, ~0.3 us each) before it sleeps in recv(). A sleeping worker
// costs the next call a wake-up (~15-45 us on a 2-core VM); a worker that
// is sent its next call within this window costs none. The window counts
// from when the peer took the last frame this end sent (SIOCOUTQ: bytes
// sent and not yet read), bounded by kReceiveSpinMaxNs from the start, so a
// worker whose peer does not read stops taking CPU after that (ReceiveSpin,
// common/spin.h).
constexpr int64_t kReceiveSpinNs = 20'000;
constexpr int64_t kReceiveSpinMaxNs = 200'000;

static_assert(kMaxFrameDescriptors == Channel::kMaxDescriptorsPerFrame);

class StreamChannelImpl final : public StreamChannel {
 public:
  StreamChannelImpl(UniqueFd fd, const FrameFormat& format,
                    absl::string_view peer)
      : fd_(std::move(fd)),
        format_(format),
        peer_(peer),
        out_(fd_.get(), format_, peer_),
        in_buf_(new char[kInBufSize]),
        in_frames_(format_, FrameAssembler::kGrowWithArrival, peer_),
        fds_in_(format_.name, peer_) {}

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

  // Poll() is Pump(): who is woken is the caller's registration of fd_.
  bool StayIsStateless() const override { return true; }

  absl::Status SendPartsWithDescriptors(std::vector<absl::string_view> parts,
                                        std::shared_ptr<const void> owner,
                                        absl::Span<const int> fds) override {
    if (!format_.descriptors) {
      return Channel::SendPartsWithDescriptors(std::move(parts),
                                               std::move(owner), fds);
    }
    if (!status_.ok()) return status_;
    std::vector<UniqueFd> copies;
    RETURN_IF_ERROR(DuplicateDescriptorsToSend(format_.name, fds, &copies));
    return Enqueue(std::move(parts), std::string(), std::move(owner),
                   std::move(copies));
  }

  absl::Status SendBlockingPartsWithDescriptors(
      absl::Span<const absl::string_view> parts,
      absl::Span<const int> fds) override {
    if (!format_.descriptors) {
      return Channel::SendBlockingPartsWithDescriptors(parts, fds);
    }
    RETURN_IF_ERROR(CheckDescriptorsToSend(format_.name, fds));
    return SendBlockingFrame(parts, fds);
  }

  absl::StatusOr<std::vector<UniqueFd>> TakeDescriptors(size_t n) override {
    if (!format_.descriptors || n == 0) return Channel::TakeDescriptors(n);
    return fds_in_.Take(n);
  }

  absl::Status Pump(std::vector<std::string>* frames) override {
    TakeReady(frames);
    if (status_.ok() && !out_.empty()) {
      absl::Status s = out_.Flush();
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
        if (format_.descriptors) fds_in_.HandedOut(ready_counts_[ready_next_]);
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
          absl::Status s = WaitReadable();
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
          fds_in_.Completed(ready_counts_[i]);
        }
        CheckDescriptors();
      }
    }
  }

 private:
  // One sendmsg() gathers the header and the parts (128 at a time); the
  // first one carries `fds`. Any error fails the channel.
  absl::Status SendBlockingFrame(absl::Span<const absl::string_view> parts,
                                 absl::Span<const int> fds) {
    if (!status_.ok()) return status_;
    size_t size = 0;
    for (absl::string_view part : parts) size += part.size();
    RETURN_IF_ERROR(CheckOutgoingFrameSize(format_, size));
    absl::Status s = out_.WriteBlocking(parts, size, fds);
    if (!s.ok()) return Fail(s);
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
    const bool queued_before = !out_.empty();
    out_.Push(size, std::move(parts), std::move(payload), std::move(owner),
              std::move(fds));
    if (queued_before) return absl::OkStatus();
    absl::Status s = out_.Flush();
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
    out_.Clear();
  }

  // Stops reading: end of stream, a read error or a corrupt stream. Closes
  // the descriptors of the frame cut short, if any.
  void FailInput(const absl::Status& s) {
    input_done_ = true;
    in_frames_.Reset();
    SetError(s);
    fds_in_.DropIncomplete();
  }

  // After a read of a channel that carries descriptors: checks what came
  // against what the headers parsed so far announced (see the file comment).
  void CheckDescriptors() {
    if (fds_in_.lost()) return;
    const uint64_t announced = in_frames_.descriptors_announced();
    const uint64_t ahead_allowed =
        in_frames_.in_header() ? kMaxFrameDescriptors : 0;
    absl::Status bad;
    if (fds_truncated_) {
      bad = absl::DataLossError(absl::StrCat(
          format_.name, ": descriptors from the ", peer_,
          " were cut short (MSG_CTRUNC: more than one message may carry, or "
          "this process is out of descriptors)"));
    } else if (fds_in_.received() < announced) {
      bad = absl::DataLossError(absl::StrCat(
          format_.name, ": frame headers from the ", peer_, " announced ",
          announced - fds_in_.received(), " descriptors that did not come"));
    } else if (fds_in_.received() - announced > ahead_allowed) {
      bad = absl::DataLossError(absl::StrCat(
          format_.name, ": ", fds_in_.received() - announced,
          " descriptors came from the ", peer_,
          " that no frame header announced"));
    } else {
      return;
    }
    // Which frame owns which descriptor is unknown now: none is handed out.
    fds_in_.Lose();
    if (!input_done_) FailInput(bad);
  }

  // recv() (or recvmsg() that keeps the descriptors that come, for formats
  // with `descriptors`) of up to `want` bytes into `dst`.
  ssize_t ReadSome(char* dst, size_t want, int flags) {
    if (!format_.descriptors) return recv(fd_.get(), dst, want, flags);
    int msg_flags;
    const ssize_t n =
        ReceiveWithRights(fd_.get(), dst, want, flags, &came_, &msg_flags);
    if (n < 0) return n;
    if (msg_flags & MSG_CTRUNC) fds_truncated_ = true;
    fds_in_.Add(&came_);
    return n;
  }

  // ReadSome() that first polls for up to kReceiveSpinNs (ReceiveSpin in
  // common/spin.h: the window counts from when the peer read our last frame).
  ssize_t SpinThenRead(char* dst, size_t want) {
    int64_t now = MonotonicNanos();
    ReceiveSpin spin(now, kReceiveSpinNs, kReceiveSpinMaxNs);
    const auto unread = [this] { return PeerHasUnread(); };
    for (int i = 1;; ++i) {
      const ssize_t n = ReadSome(dst, want, MSG_DONTWAIT);
      if (n >= 0 ||
          (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        return n;
      }
      if (spin.giving_way() || i % 4 == 0) {
        now = MonotonicNanos();
        if (!spin.GoOn(now, unread)) break;
      }
      SpinPause(spin.giving_way());
    }
    return ReadSome(dst, want, 0);
  }

  // Bytes this end sent that the peer has not read yet (SIOCOUTQ); false
  // where the socket cannot tell.
  bool PeerHasUnread() const {
    int unread = 0;
    return ioctl(fd_.get(), SIOCOUTQ, &unread) == 0 && unread > 0;
  }

  absl::Status ReadError(int error_number) const {
    const absl::Status s = PosixError("recv", error_number);
    const std::string context =
        error_number == ECONNRESET
            ? absl::StrCat(format_.name, ": the ", peer_, " closed the channel")
            : absl::StrCat(format_.name, ": reading from the ", peer_);
    return absl::Status(s.code(), absl::StrCat(context, ": ", s.message()));
  }

  // End of stream: what was cut short, if anything.
  absl::Status EofError() const { return in_frames_.EndOfStreamError(); }

  // Waits until fd_ is readable.
  absl::Status WaitReadable() {
    struct pollfd p = {fd_.get(), POLLIN, 0};
    while (poll(&p, 1, -1) < 0) {
      if (errno != EINTR) return Fail(PosixError("poll", errno));
    }
    return absl::OkStatus();
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
          fds_in_.Completed(c);
          fds_in_.HandedOut(c);
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
      if (format_.descriptors) fds_in_.HandedOut(ready_counts_[ready_next_]);
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

  // Output not yet written.
  StreamWriter out_;

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

  // Descriptors received (formats with `descriptors`); frames completed
  // count those in ready_ too.
  DescriptorQueue fds_in_;
  // A recvmsg() reported MSG_CTRUNC.
  bool fds_truncated_ = false;
  // Scratch: the descriptors one read brought.
  std::vector<UniqueFd> came_;
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
