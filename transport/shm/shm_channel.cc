// One end of an shm channel (the layout, the memory ordering and the
// wake-up protocol are in shm_transport.h).
//
// Data flow inside one ShmChannel (the same class serves both sides; only
// which ring is "in" and which "out", and which closed word is whose, differ):
//   Send()          -> sender_ (ring_sender.h: header + payload, moved in,
//                      never copied)
//                   -> Flush(): memcpy into the out ring, Publish() per chunk
//   SendBlocking()  -> memcpy straight from the caller's bytes into the ring
//   ReadInput()     -> FrameAssembler (transport/frame_assembler.h) copies
//                      (std::string::append) from the in ring into the frame
//                      being assembled; Release() per chunk
//                   -> whole frames appended to the caller's vector
// Large frames move in chunks of a quarter ring at most, each published (or
// released) at once, so that the other side copies while this one does.
//
// Descriptors (ChannelFds::descriptors, a SOCK_SEQPACKET pair of its own;
// descriptor_socket.h says how they travel and why a socket of their own):
//   SendPartsWithDescriptors() -> OutFrame::fds (duplicates); the header
//                      announces how many (frame_header.h)
//   Flush()         -> when the frame's first byte is about to enter the ring:
//                      descriptors_.Send() (a full socket leaves the frame
//                      queued until EPOLLOUT on PollFd())
//   ReadInput()     -> for each completed frame whose header announced n > 0:
//                      descriptors_.Receive(n)
//                   -> fds_in_ (descriptor_queue.h), taken in order by
//                      TakeDescriptors()
// The liveness socket keeps its role (no bytes ever; its readability is a
// hang-up or garbage); peer_ (peer_link.h) watches it and the closed words,
// and does the blocking waits.
#include "transport/shm/shm_channel.h"

#include <errno.h>
#include <sys/epoll.h>

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
#include "common/status_macros.h"
#include "common/sys.h"
#include "transport/descriptor_queue.h"
#include "transport/frame_assembler.h"
#include "transport/frame_header.h"
#include "transport/out_frame.h"
#include "transport/scm_rights.h"
#include "transport/shm/descriptor_socket.h"
#include "transport/shm/peer_link.h"
#include "transport/shm/ring_sender.h"
#include "transport/transport.h"

namespace procpool {
namespace shm_internal {
namespace {

static_assert(kShmFrameHeaderSize == kFrameHeaderSize);

// The frames' header (frame_header.h) and its errors.
constexpr FrameFormat kShmFrameFormat = {kShmFrameMagic, kShmMaxFrameLength,
                                         "shm transport", "ring",
                                         /*descriptors=*/true};

static_assert(kMaxFrameDescriptors == Channel::kMaxDescriptorsPerFrame);

// The closed words of `side` (this end's) and of its peer.
AtomicLine* MyClosed(Side side, ShmControl* control) {
  return side == Side::kParent ? &control->parent_closed
                               : &control->child_closed;
}
AtomicLine* PeerClosedWord(Side side, ShmControl* control) {
  return side == Side::kParent ? &control->child_closed
                               : &control->parent_closed;
}

// Bytes moved between two Publish()/Release() on rings of `ring_bytes`.
uint64_t ChunkBytes(uint64_t ring_bytes) {
  return std::max<uint64_t>(ring_bytes / 4, kShmMinRingBytes / 2);
}

class ShmChannel final : public Channel {
 public:
  // See NewShmChannel().
  ShmChannel(Side side, ShmSegment segment, ChannelFds fds,
             const ShmTransportOptions& options)
      : segment_(std::move(segment)),
        fds_(std::move(fds)),
        control_(segment_.control()),
        chunk_(ChunkBytes(segment_.ring_bytes())),
        peer_(side == Side::kParent ? "worker" : "parent",
              MyClosed(side, control_), PeerClosedWord(side, control_),
              fds_.socket.get(), fds_.wake_self.get(), fds_.wake_peer.get(),
              options),
        descriptors_(fds_.descriptors.get(), fds_.epoll.get(), &peer_),
        sender_(kShmFrameFormat, &out_, chunk_, &peer_, &descriptors_),
        in_frames_(kShmFrameFormat, FrameAssembler::kReserveFrame,
                   peer_.name()),
        fds_in_(kShmFrameFormat.name, peer_.name()) {
    const uint64_t ring_bytes = segment_.ring_bytes();
    char* const to_child = segment_.ring_to_child();
    char* const to_parent = segment_.ring_to_parent();
    if (side == Side::kParent) {
      out_ = RingWriter(&control_->to_child, to_child, ring_bytes);
      in_ = RingReader(&control_->to_parent, to_parent, ring_bytes);
    } else {
      out_ = RingWriter(&control_->to_parent, to_parent, ring_bytes);
      in_ = RingReader(&control_->to_child, to_child, ring_bytes);
    }
  }

  // Tells the peer (the closed word, then a wake-up: it may sleep), then
  // closes every descriptor and unmaps the memory.
  ~ShmChannel() override { peer_.CloseMine(); }

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
    std::vector<UniqueFd> copies;
    RETURN_IF_ERROR(
        DuplicateDescriptorsToSend(kShmFrameFormat.name, fds, &copies));
    return Enqueue(std::move(parts), std::string(), std::move(owner),
                   std::move(copies));
  }

  absl::Status SendBlockingPartsWithDescriptors(
      absl::Span<const absl::string_view> parts,
      absl::Span<const int> fds) override {
    RETURN_IF_ERROR(CheckDescriptorsToSend(kShmFrameFormat.name, fds));
    return SendBlockingFrame(parts, fds);
  }

  absl::StatusOr<std::vector<UniqueFd>> TakeDescriptors(size_t n) override {
    return fds_in_.Take(n);
  }

  absl::Status Pump(std::vector<std::string>* frames) override {
    TakeReady(frames);
    if (input_done_) return status_;
    // Reset the wake-up first: whatever the peer does from here on is seen
    // by the loop below or wakes us again.
    if (!peer_.DrainWakeups()) peer_.ProbeSocket();
    in_.DisarmSleeping();
    if (peer_.PeerClosed()) peer_.MarkGone();
    if (peer_.gone() || peer_.garbage() || !status_.ok()) {
      // What is left is finite (the peer is gone, or we stop here): deliver
      // all of it. A dead peer left at most one ring of bytes.
      sender_.Clear();
      out_.DisarmWaiting();
      ReadInput(frames, in_.size());
      if (!input_done_) {
        FailInput(peer_.garbage() ? peer_.GarbageError()
                  : peer_.gone()  ? EofError()
                                  : status_);
      }
      return status_;
    }
    budget_ = kShmMaxReadPerPump;
    for (;;) {
      if (!sender_.empty()) {
        absl::Status s = sender_.Flush(&budget_);
        if (!s.ok()) SetError(s);
      }
      budget_ -= ReadInput(frames, budget_);
      if (!status_.ok() || input_done_) return status_;
      if (budget_ == 0) {
        // Stop for the other channels; stay readable.
        peer_.WakeSelf();
        return status_;
      }
      // Stop looking: arm, then re-check (shm_transport.h).
      in_.ArmSleeping();
      // Waiting for room in the descriptor socket: its EPOLLOUT wakes us.
      const bool want_space =
          !sender_.empty() && !descriptors_.full();
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
    if (input_done_ || !status_.ok() || peer_.gone() || peer_.garbage() ||
        peer_.PeerClosed()) {
      return Pump(frames);
    }
    in_.DisarmSleeping();
    budget_ = kShmMaxReadPerPump;
    if (!sender_.empty()) {
      absl::Status s = sender_.Flush(&budget_);
      if (!s.ok()) SetError(s);
    }
    budget_ -= ReadInput(frames, budget_);
    if (!status_.ok() || input_done_ || stay) return status_;
    if (budget_ == 0 || !sender_.empty()) return Pump(frames);
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
        fds_in_.HandedOut(ready_counts_[ready_next_]);
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
  // The frame's bytes go from each part straight into the ring; `fds` go
  // just before, on the descriptor socket.
  absl::Status SendBlockingFrame(absl::Span<const absl::string_view> parts,
                                 absl::Span<const int> fds) {
    if (!status_.ok()) return status_;
    uint64_t size = 0;
    for (absl::string_view part : parts) size += part.size();
    RETURN_IF_ERROR(CheckOutgoingFrameSize(kShmFrameFormat, size));
    // Output queued by Send() goes first, to keep frames in order.
    while (!sender_.empty()) {
      budget_ = ~uint64_t{0};
      absl::Status s = sender_.Flush(&budget_);
      if (!s.ok()) return Fail(s);
      if (descriptors_.full()) {
        descriptors_.StopWaiting();
        s = sender_.SendFrontDescriptorsBlocking();
        if (!s.ok()) return Fail(s);
        continue;
      }
      if (!sender_.empty()) RETURN_IF_ERROR(WaitForSpace());
    }
    if (peer_.PeerClosed()) return Fail(peer_.ClosedError());
    if (!fds.empty()) {
      absl::Status s = descriptors_.Send(fds, /*blocking=*/true);
      if (!s.ok()) return Fail(s);
    }
    char header[kShmFrameHeaderSize];
    EncodeFrameHeader(kShmFrameFormat, size, header,
                      static_cast<uint32_t>(fds.size()));
    absl::Status s = sender_.PutBlocking(header, parts, size,
                                         [this] { return WaitForSpace(); });
    if (!s.ok()) return Fail(s);
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
    if (peer_.PeerClosed()) return Fail(peer_.ClosedError());
    sender_.Push(size, std::move(parts), std::move(payload), std::move(owner),
                 std::move(fds));
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
    sender_.Clear();
    descriptors_.StopWaiting();
  }

  // Stops reading: the peer is gone, or the stream is corrupt.
  void FailInput(const absl::Status& s) {
    input_done_ = true;
    in_frames_.Reset();
    SetError(s);
  }

  // The peer is gone: what was cut short, if anything.
  absl::Status EofError() const { return in_frames_.EndOfStreamError(); }

  // Send()'s tail: flush, and if output is left, arm the wait for space
  // (re-checking as the protocol says). Keeps PollFd() readable when the
  // budget stopped the flush.
  absl::Status FlushAndArm() {
    for (;;) {
      absl::Status s = sender_.Flush(&budget_);
      if (!s.ok()) return Fail(s);
      if (sender_.empty()) return absl::OkStatus();
      if (descriptors_.full()) return absl::OkStatus();  // EPOLLOUT wakes
      if (budget_ == 0) {
        peer_.WakeSelf();
        return absl::OkStatus();
      }
      out_.ArmWaiting();
      if (out_.Free(1) == 0) {
        if (out_.corrupt()) return Fail(peer_.CorruptRingError("tail"));
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
        FailInput(peer_.CorruptRingError("head"));
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
      if (in_.Release()) peer_.WakePeer();
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
      fds_in_.Completed(n);
      if (!to_ready) fds_in_.HandedOut(n);
      if (fds_in_.lost()) continue;
      absl::StatusOr<std::vector<UniqueFd>> came = descriptors_.Receive(n);
      if (came.ok()) {
        fds_in_.Add(&*came);
      } else {
        // Which frame owns which descriptor is unknown now: none is handed
        // out.
        fds_in_.Lose();
        if (!input_done_) FailInput(came.status());
      }
    }
    counts_.clear();
  }

  // Blocks until the in ring has bytes: spins, then sleeps. kUnavailable
  // once the peer is gone (the caller then drains what is left).
  absl::Status WaitForInput() {
    return peer_.Wait([this] { return in_.Available() > 0 || in_.corrupt(); },
                      [this] { in_.ArmSleeping(); },
                      [this] { in_.DisarmSleeping(); },
                      [this] { return EofError(); },
                      [this] { return out_.Free(out_.size()) < out_.size(); });
  }

  // Blocks until the out ring has space (or the peer is gone: then fails the
  // channel and returns its error).
  absl::Status WaitForSpace() {
    absl::Status s =
        peer_.Wait([this] { return out_.Free(1) > 0 || out_.corrupt(); },
                   [this] { out_.ArmWaiting(); },
                   [this] { out_.DisarmWaiting(); },
                   [this] { return peer_.ClosedError(); },
                   [] { return false; });
    if (!s.ok()) return Fail(s);
    if (out_.corrupt()) return Fail(peer_.CorruptRingError("tail"));
    return s;
  }

  // Moves frames that ReceiveBlocking() parsed but did not return yet.
  void TakeReady(std::vector<std::string>* frames) {
    for (; ready_next_ < ready_.size(); ++ready_next_) {
      frames->push_back(std::move(ready_[ready_next_]));
      fds_in_.HandedOut(ready_counts_[ready_next_]);
    }
    ready_.clear();
    ready_counts_.clear();
    ready_next_ = 0;
  }

  // Constant after construction.
  const ShmSegment segment_;
  const ChannelFds fds_;
  ShmControl* const control_;
  const uint64_t chunk_;  // bytes moved between two Publish()/Release()

  // The other end: its liveness (gone, garbage), the wake-ups, the waits.
  PeerLink peer_;
  // The descriptor socket's sending and receiving.
  DescriptorSocket descriptors_;

  RingWriter out_;
  RingReader in_;

  // The first error; once set, nothing more is sent.
  absl::Status status_;
  // No more input will be read (the peer is gone, or the ring is corrupt).
  bool input_done_ = false;
  // Bytes the current Send()/Pump() may still move.
  uint64_t budget_ = 0;

  // Output not yet in the ring.
  RingSender sender_;

  // Input: the frame being received (its buffer reserved whole up front).
  FrameAssembler in_frames_;

  // Frames parsed by ReceiveBlocking() and not returned yet, from ready_next_,
  // with their descriptor counts.
  std::vector<std::string> ready_;
  std::vector<uint32_t> ready_counts_;
  size_t ready_next_ = 0;

  // Descriptors received, not taken yet, in order (frames completed count
  // those in ready_ too).
  DescriptorQueue fds_in_;
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
