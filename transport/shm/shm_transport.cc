// The "shm" transport (see shm_transport.h for the layout, the memory
// ordering and the wake-up protocol).
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
#include "transport/shm/shm_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/types/span.h"
#include "common/big_buffers.h"
#include "common/event_fd.h"
#include "common/posix_error.h"
#include "common/spin.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "glog/logging.h"
#include "transport/frame_assembler.h"
#include "transport/frame_header.h"
#include "transport/out_frame.h"
#include "transport/shm/shm_ring.h"
#include "transport/transport.h"

namespace procpool {
namespace {

using shm_internal::kControlMagic;
using shm_internal::kControlVersion;
using shm_internal::RingControl;
using shm_internal::RingReader;
using shm_internal::RingWriter;
using shm_internal::ShmControl;

static_assert(sizeof(ShmControl) <= kShmControlBytes,
              "the control block must fit its page");
static_assert(kShmFrameHeaderSize == kFrameHeaderSize);

// The frames' header (frame_header.h) and its errors.
constexpr FrameFormat kShmFrameFormat = {kShmFrameMagic, kShmMaxFrameLength,
                                         "shm transport", "ring"};

// Spin iterations between two reads of the clock.
constexpr int kSpinsPerClockRead = 64;

// Threads runnable on the whole machine now, this one included (the kernel's
// nr_running, the fourth field of /proc/loadavg: "0.50 0.40 0.30 3/131 42");
// -1 if unknown. Opens and closes the file each time, so that no descriptor
// outlives the call.
int RunnableThreads() {
  const UniqueFd fd(open("/proc/loadavg", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return -1;
  char buf[128];
  const ssize_t n = read(fd.get(), buf, sizeof(buf) - 1);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* slash = strchr(buf, '/');
  if (slash == nullptr) return -1;
  const char* p = slash;
  while (p > buf && p[-1] >= '0' && p[-1] <= '9') --p;
  int runnable = 0;
  if (!absl::SimpleAtoi(absl::string_view(p, slash - p), &runnable)) return -1;
  return runnable;
}

// Whether a blocking wait may spin. Spinning pays only with a CPU to spare:
// on a busy machine (the 2-core one this was tuned on runs the caller, the
// manager and two workers) every microsecond spun is taken from a thread that
// has work, and a spinning worker delays the manager it has just woken onto
// its CPU. So a wait spins only while the kernel counts at most one runnable
// thread more than CPUs (sampled at most every kRefreshNs), and not after a spin
// was preempted (seen as a gap in its clock readings) until the next sample.
class SpinGate {
 public:
  // `enabled` false: always allowed.
  explicit SpinGate(bool enabled) : enabled_(enabled) {}

  bool Allowed(int64_t now) {
    if (!enabled_) return true;
    if (now - sampled_at_ >= kRefreshNs) {
      sampled_at_ = now;
      const int runnable = RunnableThreads();
      // One runnable thread more than CPUs is allowed: the pool's caller
      // polls for results (executor/internal/pool.h) and counts as runnable,
      // but it waits for us rather than competing. Measured on the 2-core
      // VM: Submit throughput 130-150k/s with `<= cpus_` (the workers slept
      // between batches, and every batch paid a wake-up) and 220-320k/s with
      // `<= cpus_ + 1`; round-trip p99 30-270 us -> ~3 us.
      allowed_ = runnable < 0 || runnable <= cpus_ + 1;
    }
    return allowed_;
  }

  // A spin lost its CPU: another thread wanted it.
  void Preempted(int64_t now) {
    if (!enabled_) return;
    sampled_at_ = now;
    allowed_ = false;
  }

  // A gap this long between two clock readings of a spin means the spinner
  // was preempted.
  static constexpr int64_t kPreemptedNs = 50'000;

 private:
  static constexpr int64_t kRefreshNs = 2'000'000;

  const bool enabled_;
  const int cpus_ = std::max(1, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  int64_t sampled_at_ = std::numeric_limits<int64_t>::min() / 2;
  bool allowed_ = true;
};

size_t MappingBytes(uint64_t ring_bytes) {
  return kShmControlBytes + 2 * static_cast<size_t>(ring_bytes);
}

bool ValidRingBytes(uint64_t ring_bytes) {
  return ring_bytes >= kShmMinRingBytes && ring_bytes <= kShmMaxRingBytes &&
         (ring_bytes & (ring_bytes - 1)) == 0;
}

std::string EndpointSpec(uint64_t ring_bytes) {
  return absl::StrCat(kShmEndpointSpecPrefix, ";ring=", ring_bytes);
}

// A shared mapping, unmapped on destruction unless released.
class ScopedMapping {
 public:
  ScopedMapping() = default;
  ScopedMapping(void* addr, size_t bytes) : addr_(addr), bytes_(bytes) {}
  ScopedMapping(ScopedMapping&& other) noexcept
      : addr_(std::exchange(other.addr_, nullptr)), bytes_(other.bytes_) {}
  ScopedMapping& operator=(ScopedMapping&&) = delete;
  ~ScopedMapping() {
    if (addr_ != nullptr) munmap(addr_, bytes_);
  }

  void* get() const { return addr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* addr_ = nullptr;
  size_t bytes_ = 0;
};

enum class Side { kParent, kChild };

// What a channel owns besides its mapping.
struct ChannelFds {
  UniqueFd socket;     // liveness only: no data ever travels on it
  UniqueFd wake_self;  // the eventfd the peer writes to wake this side
  UniqueFd wake_peer;  // the eventfd this side writes to wake the peer
  UniqueFd epoll;      // PollFd(): wake_self and socket
};

absl::StatusOr<UniqueFd> MakeEpoll(int wake_self, int socket) {
  UniqueFd epoll(epoll_create1(EPOLL_CLOEXEC));
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

class ShmChannel final : public Channel {
 public:
  // Takes `mapping` (the whole memfd, its ShmControl already valid) and
  // `fds`. `options` say how blocking calls spin before they sleep.
  ShmChannel(Side side, ScopedMapping mapping, ChannelFds fds,
             const ShmTransportOptions& options)
      : peer_(side == Side::kParent ? "worker" : "parent"),
        mapping_(std::move(mapping)),
        fds_(std::move(fds)),
        spin_ns_(options.spin_ns),
        spin_gate_(options.spin_only_with_idle_cpu),
        control_(static_cast<ShmControl*>(mapping_.get())),
        in_frames_(kShmFrameFormat, FrameAssembler::kReserveFrame, peer_) {
    const uint64_t ring_bytes = control_->constants.ring_bytes;
    char* const base = static_cast<char*>(mapping_.get());
    char* const to_child = base + kShmControlBytes;
    char* const to_parent = to_child + ring_bytes;
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
    return Enqueue({}, std::move(frame), nullptr);
  }

  absl::Status SendParts(std::vector<absl::string_view> parts,
                         std::shared_ptr<const void> owner) override {
    return Enqueue(std::move(parts), std::string(), std::move(owner));
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
      const bool want_space = !out_frames_.empty();
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

  // The frame's bytes go from each part straight into the ring.
  absl::Status SendBlockingParts(
      absl::Span<const absl::string_view> parts) override {
    if (!status_.ok()) return status_;
    uint64_t size = 0;
    for (absl::string_view part : parts) size += part.size();
    RETURN_IF_ERROR(CheckOutgoingFrameSize(kShmFrameFormat, size));
    // Output queued by Send() goes first, to keep frames in order.
    while (!out_frames_.empty()) {
      budget_ = ~uint64_t{0};
      absl::Status s = Flush();
      if (!s.ok()) return Fail(s);
      if (!out_frames_.empty()) RETURN_IF_ERROR(WaitForSpace());
    }
    if (PeerClosed()) return Fail(ClosedError());
    char header[kShmFrameHeaderSize];
    EncodeFrameHeader(kShmFrameFormat, size, header);
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

  absl::StatusOr<std::string> ReceiveBlocking() override {
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

  // Send() (`payload`, no parts) and SendParts() (`parts` kept alive by
  // `owner`, no payload): queues the frame and writes what fits.
  absl::Status Enqueue(std::vector<absl::string_view> parts,
                       std::string payload,
                       std::shared_ptr<const void> owner) {
    if (!status_.ok()) return status_;
    const uint64_t size = OutFrameSize(parts, payload);
    RETURN_IF_ERROR(CheckOutgoingFrameSize(kShmFrameFormat, size));
    if (PeerClosed()) return Fail(ClosedError());
    OutFrame& f = out_frames_.emplace_back();
    EncodeFrameHeader(kShmFrameFormat, size, f.header);
    f.Take(size, std::move(parts), std::move(payload), std::move(owner));
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
      size_t taken = in_frames_.Feed(bytes.first, bytes.first_size, frames);
      if (taken == bytes.first_size && bytes.second_size > 0) {
        taken += in_frames_.Feed(bytes.second, bytes.second_size, frames);
      }
      in_.Skip(taken);
      if (!in_frames_.error().ok()) {
        const absl::Status bad = in_frames_.error();
        FailInput(bad);
      }
      if (in_.Release()) WakePeer();
    }
    return total;
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
    }
    ready_.clear();
    ready_next_ = 0;
  }

  // Constant after construction.
  const std::string peer_;  // "worker" or "parent", for messages
  const ScopedMapping mapping_;
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

  // Frames parsed by ReceiveBlocking() and not returned yet, from ready_next_.
  std::vector<std::string> ready_;
  size_t ready_next_ = 0;
};

class ShmTransport final : public Transport {
 public:
  ShmTransport() : ShmTransport(ShmTransportOptions{}) {}
  explicit ShmTransport(const ShmTransportOptions& options)
      : options_(options) {
    CHECK(ValidRingBytes(options_.ring_bytes))
        << "shm transport: ring_bytes " << options_.ring_bytes
        << " is not a power of two in [" << kShmMinRingBytes << ", "
        << kShmMaxRingBytes << "]";
  }

  absl::string_view name() const override { return kShmTransportName; }

  absl::StatusOr<ChannelPair> CreatePair() override {
    const uint64_t ring_bytes = options_.ring_bytes;
    const size_t bytes = MappingBytes(ring_bytes);
    UniqueFd memfd(memfd_create("procpool-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (memfd.get() < 0) return PosixError("shm transport: memfd_create", errno);
    if (ftruncate(memfd.get(), static_cast<off_t>(bytes)) != 0) {
      return PosixError("shm transport: ftruncate", errno);
    }
    // Neither side may shrink it under the other (that would be SIGBUS).
    if (fcntl(memfd.get(), F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
      return PosixError("shm transport: F_ADD_SEALS", errno);
    }
    void* addr = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                      memfd.get(), 0);
    if (addr == MAP_FAILED) return PosixError("shm transport: mmap", errno);
    ScopedMapping mapping(addr, bytes);
    // A worker started with fork() must not inherit other workers' rings.
    if (madvise(addr, bytes, MADV_DONTFORK) != 0) {
      return PosixError("shm transport: madvise(MADV_DONTFORK)", errno);
    }
    ShmControl* control = new (addr) ShmControl();
    control->constants.magic = kControlMagic;
    control->constants.version = kControlVersion;
    control->constants.control_bytes = kShmControlBytes;
    control->constants.ring_bytes = ring_bytes;
    // The parent looks at its input only inside Pump(), and none has run:
    // the child must wake it for its first frame.
    control->to_parent.consumer_sleeping.value.store(1);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return PosixError("shm transport: socketpair", errno);
    }
    UniqueFd parent_socket(sv[0]);
    UniqueFd child_socket(sv[1]);
    ASSIGN_OR_RETURN(UniqueFd to_parent, MakeEventFd("shm transport"));
    ASSIGN_OR_RETURN(UniqueFd to_child, MakeEventFd("shm transport"));
    UniqueFd child_to_parent(fcntl(to_parent.get(), F_DUPFD_CLOEXEC, 0));
    if (child_to_parent.get() < 0) {
      return PosixError("shm transport: dup(eventfd)", errno);
    }
    UniqueFd child_to_child(fcntl(to_child.get(), F_DUPFD_CLOEXEC, 0));
    if (child_to_child.get() < 0) {
      return PosixError("shm transport: dup(eventfd)", errno);
    }
    ASSIGN_OR_RETURN(UniqueFd epoll,
                     MakeEpoll(to_parent.get(), parent_socket.get()));

    ChannelFds fds;
    fds.socket = std::move(parent_socket);
    fds.wake_self = std::move(to_parent);
    fds.wake_peer = std::move(to_child);
    fds.epoll = std::move(epoll);
    ChannelPair pair;
    pair.parent = std::make_unique<ShmChannel>(
        Side::kParent, std::move(mapping), std::move(fds), options_);
    pair.child.fds = {memfd.release(), child_socket.release(),
                      child_to_parent.release(), child_to_child.release()};
    pair.child.spec = EndpointSpec(ring_bytes);
    return pair;
  }

  // Takes ownership of endpoint.fds even when it fails (closes them then).
  absl::StatusOr<std::unique_ptr<Channel>> OpenChild(
      const ChildEndpoint& endpoint) override {
    std::vector<UniqueFd> owned;
    for (int fd : endpoint.fds) owned.emplace_back(fd);
    for (int fd : endpoint.fds) {
      if (fd < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("shm transport: endpoint descriptor ", fd));
      }
    }
    ASSIGN_OR_RETURN(const uint64_t ring_bytes, ParseEndpoint(endpoint));
    const int memfd = owned[0].get();
    const size_t bytes = MappingBytes(ring_bytes);
    struct stat st;
    if (fstat(memfd, &st) != 0) {
      return PosixError("shm transport: fstat(endpoint memfd)", errno);
    }
    // Sealed against shrinking: the mapping cannot fault under us.
    const int seals = fcntl(memfd, F_GET_SEALS);
    if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != bytes ||
        seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shm transport: endpoint descriptor ", memfd,
          " is not a sealed memfd of ", bytes, " bytes"));
    }
    int type = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(owned[1].get(), SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
        type != SOCK_STREAM) {
      return absl::InvalidArgumentError(
          absl::StrCat("shm transport: endpoint descriptor ", owned[1].get(),
                       " is not a stream socket"));
    }
    void* addr =
        mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (addr == MAP_FAILED) return PosixError("shm transport: mmap", errno);
    ScopedMapping mapping(addr, bytes);
    owned[0].reset();  // the mapping keeps the memory
    const ShmControl* control = static_cast<const ShmControl*>(addr);
    if (control->constants.magic != kControlMagic ||
        control->constants.version != kControlVersion ||
        control->constants.control_bytes != kShmControlBytes ||
        control->constants.ring_bytes != ring_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shm transport: the shared memory does not match the spec \"",
          endpoint.spec, "\" (another version of procpool?)"));
    }
    ASSIGN_OR_RETURN(UniqueFd epoll,
                     MakeEpoll(owned[3].get(), owned[1].get()));
    ChannelFds fds;
    fds.socket = std::move(owned[1]);
    fds.wake_peer = std::move(owned[2]);
    fds.wake_self = std::move(owned[3]);
    fds.epoll = std::move(epoll);
    return std::unique_ptr<Channel>(std::make_unique<ShmChannel>(
        Side::kChild, std::move(mapping), std::move(fds), options_));
  }

 private:
  // The ring size the endpoint's spec names, if the endpoint is one of ours.
  static absl::StatusOr<uint64_t> ParseEndpoint(const ChildEndpoint& endpoint) {
    const std::string prefix = absl::StrCat(kShmEndpointSpecPrefix, ";ring=");
    absl::string_view spec = endpoint.spec;
    uint64_t ring_bytes = 0;
    if (endpoint.fds.size() != 4 || !absl::ConsumePrefix(&spec, prefix) ||
        !absl::SimpleAtoi(spec, &ring_bytes) || !ValidRingBytes(ring_bytes)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shm transport: expected four descriptors and spec \"",
          kShmEndpointSpecPrefix, ";ring=<power of two>\", got ",
          endpoint.fds.size(), " descriptors and spec \"", endpoint.spec,
          "\""));
    }
    return ring_bytes;
  }

  const ShmTransportOptions options_;
};

}  // namespace

std::unique_ptr<Transport> NewShmTransport(const ShmTransportOptions& options) {
  return std::make_unique<ShmTransport>(options);
}

PROCPOOL_REGISTER_TRANSPORT(ShmTransport);

}  // namespace procpool
