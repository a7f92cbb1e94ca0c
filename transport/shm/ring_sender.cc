// RingSender (see ring_sender.h).
#include "transport/shm/ring_sender.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/big_buffers.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "transport/frame_header.h"

namespace procpool {
namespace shm_internal {

RingSender::RingSender(const FrameFormat& format, RingWriter* ring,
                       uint64_t chunk, PeerLink* peer,
                       DescriptorSocket* descriptors)
    : format_(format),
      ring_(ring),
      chunk_(chunk),
      peer_(peer),
      descriptors_(descriptors) {}

void RingSender::Push(uint64_t size, std::vector<absl::string_view> parts,
                      std::string payload, std::shared_ptr<const void> owner,
                      std::vector<UniqueFd> fds) {
  out_.emplace_back().Fill(format_, size, std::move(parts), std::move(payload),
                          std::move(owner), std::move(fds));
}

void RingSender::Clear() {
  out_.clear();
  out_offset_ = 0;
}

absl::Status RingSender::Flush(uint64_t* budget) {
  while (!out_.empty() && *budget > 0) {
    OutFrame& f = out_.front();
    const uint64_t total = kShmFrameHeaderSize + f.size;
    const uint64_t left = total - out_offset_;
    const uint64_t free = ring_->Free(std::min(left, chunk_));
    if (ring_->corrupt()) return peer_->CorruptRingError("tail");
    if (free == 0) break;
    if (!f.fds.empty()) {
      // Its first byte goes next: its descriptors go first.
      absl::Status s = descriptors_->Send(f.fds, /*blocking=*/false);
      if (absl::IsUnavailable(s) && !peer_->gone()) {
        RETURN_IF_ERROR(descriptors_->WaitForRoom());
        break;
      }
      RETURN_IF_ERROR(s);
      f.fds.clear();
      descriptors_->StopWaiting();
    }
    const uint64_t n = std::min({free, left, chunk_, *budget});
    PutFrameBytes(f.header, f.Bytes(), out_offset_, n);
    *budget -= n;
    out_offset_ += n;
    if (out_offset_ == total) {
      RecycleBigBuffer(std::move(f.payload));
      out_.pop_front();
      out_offset_ = 0;
    }
    // Small frames are published together; large ones chunk by chunk.
    if (ring_->unpublished() >= chunk_ && ring_->Publish()) peer_->WakePeer();
  }
  if (ring_->Publish()) peer_->WakePeer();
  return absl::OkStatus();
}

absl::Status RingSender::SendFrontDescriptorsBlocking() {
  RETURN_IF_ERROR(descriptors_->Send(out_.front().fds, /*blocking=*/true));
  out_.front().fds.clear();
  return absl::OkStatus();
}

absl::Status RingSender::PutBlocking(
    const char* header, absl::Span<const absl::string_view> parts,
    uint64_t size, absl::FunctionRef<absl::Status()> wait_for_space) {
  const uint64_t total = kShmFrameHeaderSize + size;
  uint64_t done = 0;
  while (done < total) {
    const uint64_t free = ring_->Free(std::min(total - done, chunk_));
    if (ring_->corrupt()) return peer_->CorruptRingError("tail");
    if (free == 0) {
      RETURN_IF_ERROR(wait_for_space());
      continue;
    }
    const uint64_t n = std::min({free, total - done, chunk_});
    PutFrameBytes(header, parts, done, n);
    done += n;
    if (ring_->Publish()) peer_->WakePeer();
  }
  return absl::OkStatus();
}

void RingSender::PutFrameBytes(const char* header,
                               absl::Span<const absl::string_view> parts,
                               uint64_t offset, uint64_t n) {
  if (offset < kShmFrameHeaderSize) {
    const uint64_t h = std::min(n, kShmFrameHeaderSize - offset);
    ring_->Put(header + offset, h);
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
    ring_->Put(part.data() + offset, k);
    n -= k;
    offset = 0;
  }
}

}  // namespace shm_internal
}  // namespace procpool
