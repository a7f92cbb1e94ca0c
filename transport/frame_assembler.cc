#include "transport/frame_assembler.h"

#include <errno.h>
#include <string.h>

#include <algorithm>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/big_buffers.h"
#include "common/posix_error.h"
#include "glog/logging.h"

namespace procpool {

FrameAssembler::FrameAssembler(const FrameFormat& format, Growth growth,
                               absl::string_view peer)
    : format_(format), growth_(growth), peer_(peer) {}

size_t FrameAssembler::Feed(const char* data, size_t n,
                            std::vector<std::string>* frames,
                            std::vector<uint32_t>* descriptors) {
  if (!error_.ok()) return 0;
  size_t done = 0;
  while (done < n) {
    if (!in_payload_) {
      // The header is copied out before it is checked and read, even when
      // it is whole here: shm's bytes are the ring, which the peer can
      // still write, and a length checked is the length used.
      const size_t take = std::min(n - done, kFrameHeaderSize - header_have_);
      memcpy(header_ + header_have_, data + done, take);
      header_have_ += take;
      done += take;
      if (header_have_ < kFrameHeaderSize) break;
      header_have_ = 0;
      if (!StartPayload(header_)) return done;
      MaybeFinish(frames, descriptors);  // an empty payload: complete at once
      continue;
    }
    const size_t take =
        static_cast<size_t>(std::min<uint64_t>(n - done, length_ - have_));
    if (!Grow(take)) return done;
    if (growth_ == kReserveFrame) {
      payload_.append(data + done, take);
    } else {
      memcpy(&payload_[have_], data + done, take);
    }
    have_ += take;
    done += take;
    MaybeFinish(frames, descriptors);
  }
  return done;
}

absl::Span<char> FrameAssembler::PayloadRoom(size_t more) {
  DCHECK(growth_ == kGrowWithArrival) << "PayloadRoom needs kGrowWithArrival";
  if (!Grow(more)) return absl::Span<char>();
  return absl::Span<char>(&payload_[have_], payload_.size() - have_);
}

void FrameAssembler::CommitPayload(size_t n, std::vector<std::string>* frames,
                                   std::vector<uint32_t>* descriptors) {
  have_ += n;
  MaybeFinish(frames, descriptors);
}

bool FrameAssembler::StartPayload(const char* header) {
  absl::Status bad = CheckFrameHeader(format_, header, peer_);
  if (!bad.ok()) {
    error_ = std::move(bad);
    return false;
  }
  in_payload_ = true;
  length_ = DecodeFrameLength(header);
  descriptors_ = DecodeFrameDescriptors(header);
  descriptors_announced_ += descriptors_;
  have_ = 0;
  if (growth_ == kReserveFrame ||
      (growth_ == kGrowWithArrival && length_ >= kMinBigBuffer)) {
    // A recycled buffer when one fits, else one advised for huge pages: a
    // page fault per 4 KiB costs more than the copy into it. Address space
    // only: kGrowWithArrival still sizes it by the bytes that arrive (and
    // no longer copies it at each doubling).
    try {
      payload_ = TakeBigBuffer(std::min(length_, kEagerReserveLimit));
    } catch (const std::bad_alloc&) {
      OutOfMemory();
      return false;
    }
  }
  return true;
}

bool FrameAssembler::Grow(uint64_t more) {
  try {
    if (growth_ == kReserveFrame) {
      const uint64_t need = have_ + more;
      if (need <= payload_.capacity()) return true;
      const uint64_t doubled = 2 * uint64_t{payload_.capacity()};
      payload_.reserve(std::max(need, std::min(length_, doubled)));
      AdviseHugePages(payload_);
      return true;
    }
    const uint64_t need = std::min<uint64_t>(length_, have_ + more);
    if (need <= payload_.size()) return true;
    const uint64_t doubled =
        std::max<uint64_t>(2 * uint64_t{payload_.size()}, kMinGrowth);
    payload_.resize(std::max(need, std::min(length_, doubled)));
    return true;
  } catch (const std::bad_alloc&) {
    OutOfMemory();
    return false;
  }
}

void FrameAssembler::OutOfMemory() {
  payload_ = std::string();
  error_ = absl::ResourceExhaustedError(absl::StrCat(
      "no memory for a frame of ", length_, " bytes from the ", peer_, " (",
      ExhaustionAdvice(ENOMEM), ")"));
}

void FrameAssembler::MaybeFinish(std::vector<std::string>* frames,
                                 std::vector<uint32_t>* descriptors) {
  if (have_ < length_) return;
  frames->push_back(std::move(payload_));
  if (descriptors != nullptr) descriptors->push_back(descriptors_);
  payload_ = std::string();
  in_payload_ = false;
}

absl::Status FrameAssembler::EndOfStreamError() const {
  if (in_payload_) {
    return absl::UnavailableError(
        absl::StrCat(format_.name, ": the ", peer_,
                     " closed the channel in the middle of a frame (", have_,
                     " of ", length_, " payload bytes arrived)"));
  }
  if (header_have_ > 0) {
    return absl::UnavailableError(absl::StrCat(
        format_.name, ": the ", peer_,
        " closed the channel in the middle of a frame header (", header_have_,
        " of ", kFrameHeaderSize, " bytes arrived)"));
  }
  return absl::UnavailableError(
      absl::StrCat(format_.name, ": the ", peer_, " closed the channel"));
}

void FrameAssembler::Reset() {
  in_payload_ = false;
  header_have_ = 0;
  have_ = 0;
  length_ = 0;
  payload_ = std::string();
}

}  // namespace procpool
