// FrameAssembler: turns the received byte stream of a stream transport (shm,
// unix) back into frames. It keeps a header that arrived in pieces, checks
// it (frame_header.h), grows the payload's buffer as bytes arrive, hands out
// whole frames, and says what was cut short when the stream ends.
//
// Two ways to grow the payload buffer (each transport keeps its own):
//   kReserveFrame (shm): when the header arrives the buffer is reserved for
//     the whole payload, up to kEagerReserveLimit (a recycled big buffer or
//     one advised for huge pages, common/big_buffers.h; address space only:
//     pages are touched as bytes arrive), then grows by doubling. Bytes are
//     appended: nothing is zeroed first. A corrupt length costs at most
//     kEagerReserveLimit of untouched address space.
//   kGrowWithArrival (unix): the buffer's size grows by doubling (at least
//     kMinGrowth) from the bytes that really arrived, never straight to a
//     length read from the wire, so a corrupt length cannot make it touch
//     much memory. A frame of kMinBigBuffer or more starts from a reserved
//     buffer as kReserveFrame does (recycled or advised for huge pages;
//     address space only), so that the doublings do not copy it. A reader
//     may receive straight into it: PayloadRoom() / CommitPayload().
//
// Example (a socket reader):
//   FrameAssembler in(kUnixFrameFormat, FrameAssembler::kGrowWithArrival,
//                     "worker");
//   n = recv(fd, buf, sizeof(buf), 0);
//   if (n == 0) return in.EndOfStreamError();
//   if (in.Feed(buf, n, &frames) < static_cast<size_t>(n)) return in.error();
//
// Thread safety: none; one reader thread at a time (as a Channel).
#ifndef PROCPOOL_TRANSPORT_FRAME_ASSEMBLER_H_
#define PROCPOOL_TRANSPORT_FRAME_ASSEMBLER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "transport/frame_header.h"

namespace procpool {

class FrameAssembler {
 public:
  enum Growth { kReserveFrame, kGrowWithArrival };

  // kReserveFrame: the most reserved when a header arrives.
  static constexpr uint64_t kEagerReserveLimit = uint64_t{1} << 30;
  // kGrowWithArrival: the smallest growth step.
  static constexpr size_t kMinGrowth = size_t{64} << 10;

  // `format` must outlive the assembler (formats are constants). `peer` names
  // the other end in errors: "worker" or "parent".
  FrameAssembler(const FrameFormat& format, Growth growth,
                 absl::string_view peer);

  FrameAssembler(const FrameAssembler&) = delete;
  FrameAssembler& operator=(const FrameAssembler&) = delete;

  // Takes the next `n` bytes of the stream; appends every frame they complete
  // to `frames`, in order, and (if `descriptors` is not null) the number of
  // descriptors its header announced to `descriptors`. Returns the bytes
  // taken: all `n`, unless a header turns out bad: then those up to that
  // header's end, and error() says why (kDataLoss); from then on nothing is
  // taken.
  size_t Feed(const char* data, size_t n, std::vector<std::string>* frames,
              std::vector<uint32_t>* descriptors = nullptr);

  // kGrowWithArrival only: makes room for up to `more` (> 0) bytes of the
  // current payload (never past its end) and returns all the room there is
  // now, for the caller to fill from its start; empty if no memory could be
  // had (error() says so). Needs in_payload().
  absl::Span<char> PayloadRoom(size_t more);
  // The caller wrote `n` bytes at the start of the last PayloadRoom(); if
  // they complete the frame, it is appended to `frames` (and its descriptor
  // count to `descriptors`, as Feed()).
  void CommitPayload(size_t n, std::vector<std::string>* frames,
                     std::vector<uint32_t>* descriptors = nullptr);

  // A header is parsed and its payload not yet complete.
  bool in_payload() const { return in_payload_; }
  // Some bytes of the next header arrived, not all.
  bool in_header() const { return header_have_ > 0; }
  // The descriptors announced by every header parsed so far (the current
  // frame's included), since construction; Reset() does not change it.
  uint64_t descriptors_announced() const { return descriptors_announced_; }
  // Payload bytes still to come in the current frame (0 outside one).
  uint64_t payload_left() const { return in_payload_ ? length_ - have_ : 0; }

  // The first bad header found, or the memory a payload could not get
  // (kResourceExhausted, saying what to do); OK if none.
  const absl::Status& error() const { return error_; }

  // kUnavailable for a stream that ended here: "the <peer> closed the
  // channel", "... in the middle of a frame (H of L payload bytes arrived)"
  // or "... in the middle of a frame header (H of 16 bytes arrived)".
  absl::Status EndOfStreamError() const;

  // Forgets the frame in progress and frees its buffer.
  void Reset();

 private:
  // A whole header is in `header`: checks it and starts its payload.
  bool StartPayload(const char* header);
  // Makes room for `more` bytes of payload (never past its end); false (and
  // error() set) if the memory cannot be had.
  bool Grow(uint64_t more);
  // error() becomes kResourceExhausted: no memory for the frame's payload.
  void OutOfMemory();
  // Appends the frame to `frames` if its payload is complete.
  void MaybeFinish(std::vector<std::string>* frames,
                   std::vector<uint32_t>* descriptors);

  // Constant after construction.
  const FrameFormat& format_;
  const Growth growth_;
  const std::string peer_;

  absl::Status error_;
  // Bytes of the next header received so far (kept in header_).
  size_t header_have_ = 0;
  char header_[kFrameHeaderSize];
  // The current frame: its header is parsed; have_ of its length_ payload
  // bytes are in payload_. kReserveFrame: payload_.size() == have_.
  // kGrowWithArrival: payload_.size() is the room made (<= length_).
  bool in_payload_ = false;
  uint64_t length_ = 0;
  uint64_t have_ = 0;
  uint32_t descriptors_ = 0;  // the current frame's
  uint64_t descriptors_announced_ = 0;
  std::string payload_;
};

}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_FRAME_ASSEMBLER_H_
