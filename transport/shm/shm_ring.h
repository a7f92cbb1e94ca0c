// Internal to //transport/shm: the shared control page and the two ends of a
// single-producer/single-consumer byte ring. shm_transport.h documents the
// layout, the memory ordering and the wake-up protocol; this file is their
// code.
//
// Example (one process, for tests; the transport puts the control page and
// the ring in a shared mapping):
//   ShmControl control;            // zeroed: an empty ring
//   std::vector<char> bytes(4096);
//   RingWriter w(&control.to_child, bytes.data(), bytes.size());
//   RingReader r(&control.to_child, bytes.data(), bytes.size());
//   if (w.Free(3) >= 3) { w.Put("abc", 3); w.Publish(); }
//   char out[3];
//   if (r.Available() >= 3) { r.Get(out, 3); r.Release(); }
//
// Thread safety: a RingWriter and a RingReader of the same ring may be used
// concurrently (from two processes); each must be used by one thread.
#ifndef PROCPOOL_TRANSPORT_SHM_SHM_RING_H_
#define PROCPOOL_TRANSPORT_SHM_SHM_RING_H_

#include <string.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace procpool {
namespace shm_internal {

// One atomic word alone on a 128-byte line (two 64-byte cache lines: the
// adjacent-line prefetcher pulls lines in pairs), so that words written by
// different processes never share a line.
struct alignas(128) AtomicLine {
  std::atomic<uint64_t> value{0};
};
static_assert(std::atomic<uint64_t>::is_always_lock_free,
              "the rings need lock-free 64-bit atomics in shared memory");

// The words of one ring (see shm_transport.h).
struct RingControl {
  AtomicLine head;               // written by the producer only
  AtomicLine tail;               // written by the consumer only
  AtomicLine consumer_sleeping;  // set by the consumer, claimed by the producer
  AtomicLine producer_waiting;   // set by the producer, claimed by the consumer
};

inline constexpr uint64_t kControlMagic = 0x314d48532d505050;  // "PPP-SHM1"
inline constexpr uint32_t kControlVersion = 1;

// The control page at offset 0 of the memfd. The parent constructs it in
// fresh (zeroed) memory before the child exists; the constants never change
// afterwards.
struct ShmControl {
  struct alignas(128) Constants {
    uint64_t magic = 0;
    uint32_t version = 0;
    uint32_t control_bytes = 0;
    uint64_t ring_bytes = 0;
  } constants;
  RingControl to_child;   // the parent produces, the child consumes
  RingControl to_parent;  // the child produces, the parent consumes
  AtomicLine parent_closed;
  AtomicLine child_closed;
};

// Claims a wake-up: true if `flag` was set and this call cleared it (the
// caller must then write the sleeper's eventfd). The plain load first keeps
// the common case (nobody sleeps) free of a locked instruction.
inline bool ClaimFlag(AtomicLine& flag) {
  return flag.value.load(std::memory_order_relaxed) != 0 &&
         flag.value.exchange(0, std::memory_order_acq_rel) != 0;
}

// Publishes `flag` and orders it before the caller's next load of the ring
// (the waiter's half of the Dekker handshake).
inline void ArmFlag(AtomicLine& flag) {
  flag.value.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

inline void DisarmFlag(AtomicLine& flag) {
  flag.value.store(0, std::memory_order_relaxed);
}

// The producer's end. Keeps its own head and a cached copy of the consumer's
// tail, reloaded only when the cache shows too little space.
class RingWriter {
 public:
  RingWriter() = default;
  // `data` is the ring's `size` bytes (a power of two); both must outlive
  // the writer.
  RingWriter(RingControl* control, char* data, uint64_t size)
      : control_(control),
        data_(data),
        size_(size),
        head_(control->head.value.load(std::memory_order_relaxed)),
        published_(head_),
        tail_(control->tail.value.load(std::memory_order_acquire)) {}

  // Bytes that may be written now. Rereads the consumer's tail when fewer
  // than `want` seem free. A tail outside [old tail, head] (a corrupt peer)
  // sets corrupt() and reports 0.
  uint64_t Free(uint64_t want) {
    if (corrupt_) return 0;
    const uint64_t free = size_ - (head_ - tail_);
    if (free >= want) return free;
    const uint64_t tail = control_->tail.value.load(std::memory_order_acquire);
    if (tail - tail_ > head_ - tail_) {
      corrupt_ = true;
      return 0;
    }
    tail_ = tail;
    return size_ - (head_ - tail_);
  }

  // Copies `n` <= Free() bytes into the ring; the consumer sees them after
  // Publish().
  void Put(const char* src, size_t n) {
    const uint64_t pos = head_ & (size_ - 1);
    const size_t first = static_cast<size_t>(std::min<uint64_t>(n, size_ - pos));
    memcpy(data_ + pos, src, first);
    memcpy(data_, src + first, n - first);
    head_ += n;
  }

  // Bytes Put() since the last Publish().
  uint64_t unpublished() const { return head_ - published_; }

  // Makes everything Put() visible (release), then claims the consumer's
  // wake-up: true means the consumer sleeps and the caller must wake it.
  bool Publish() {
    if (head_ == published_) return false;
    published_ = head_;
    control_->head.value.store(head_, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return ClaimFlag(control_->consumer_sleeping);
  }

  // The producer waits for space: arm, then re-check with Free(1).
  void ArmWaiting() { ArmFlag(control_->producer_waiting); }
  void DisarmWaiting() { DisarmFlag(control_->producer_waiting); }

  bool corrupt() const { return corrupt_; }
  uint64_t size() const { return size_; }

 private:
  RingControl* control_ = nullptr;
  char* data_ = nullptr;
  uint64_t size_ = 0;
  uint64_t head_ = 0;       // bytes Put(), ours alone
  uint64_t published_ = 0;  // the head the consumer can see
  uint64_t tail_ = 0;       // the consumer's tail, as last read
  bool corrupt_ = false;
};

// The consumer's end. Keeps its own tail; reads the producer's head whenever
// it looks for data.
class RingReader {
 public:
  RingReader() = default;
  RingReader(RingControl* control, char* data, uint64_t size)
      : control_(control),
        data_(data),
        size_(size),
        tail_(control->tail.value.load(std::memory_order_relaxed)),
        released_(tail_) {}

  // Bytes readable now (rereads the head: acquire). A head more than a ring
  // ahead of the tail, or behind it (a corrupt peer), sets corrupt() and
  // reports 0.
  uint64_t Available() {
    if (corrupt_) return 0;
    const uint64_t head = control_->head.value.load(std::memory_order_acquire);
    if (head - tail_ > size_) {
      corrupt_ = true;
      return 0;
    }
    return head - tail_;
  }

  // Copies `n` <= Available() bytes out and consumes them.
  void Get(char* dst, size_t n) {
    const uint64_t pos = tail_ & (size_ - 1);
    const size_t first = static_cast<size_t>(std::min<uint64_t>(n, size_ - pos));
    memcpy(dst, data_ + pos, first);
    memcpy(dst + first, data_, n - first);
    tail_ += n;
  }

  // Appends `n` <= Available() bytes to `*dst` and consumes them.
  void Append(std::string* dst, size_t n) {
    const uint64_t pos = tail_ & (size_ - 1);
    const size_t first =
        static_cast<size_t>(std::min<uint64_t>(n, size_ - pos));
    dst->append(data_ + pos, first);
    dst->append(data_, n - first);
    tail_ += n;
  }

  // The next `n` <= Available() bytes, in order and not consumed: two pieces,
  // the second empty unless they wrap around the ring's end.
  struct Pieces {
    const char* first;
    size_t first_size;
    const char* second;
    size_t second_size;
  };
  Pieces Peek(size_t n) const {
    const uint64_t pos = tail_ & (size_ - 1);
    const size_t first = static_cast<size_t>(std::min<uint64_t>(n, size_ - pos));
    return {data_ + pos, first, data_, n - first};
  }

  // Consumes `n` <= Available() bytes (those Peek() showed).
  void Skip(size_t n) { tail_ += n; }

  // Bytes consumed since the last Release().
  uint64_t unreleased() const { return tail_ - released_; }

  // Hands the consumed space back (release), then claims the producer's
  // wake-up: true means the producer waits for space and must be woken.
  bool Release() {
    if (tail_ == released_) return false;
    released_ = tail_;
    control_->tail.value.store(tail_, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return ClaimFlag(control_->producer_waiting);
  }

  // The consumer stops looking: arm, then re-check with Available().
  void ArmSleeping() { ArmFlag(control_->consumer_sleeping); }
  void DisarmSleeping() { DisarmFlag(control_->consumer_sleeping); }

  bool corrupt() const { return corrupt_; }
  uint64_t size() const { return size_; }

 private:
  RingControl* control_ = nullptr;
  const char* data_ = nullptr;
  uint64_t size_ = 0;
  uint64_t tail_ = 0;      // bytes consumed, ours alone
  uint64_t released_ = 0;  // the tail the producer can see
  bool corrupt_ = false;
};

}  // namespace shm_internal
}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_SHM_SHM_RING_H_
