// OutFrame: a frame a stream transport has queued to write (shm's ring and
// unix's socket keep a deque of them): its header, and its bytes either in a
// string of its own (Send) or as parts that an owner keeps alive (SendParts).
//
// Example (a transport's Enqueue):
//   uint64_t size = OutFrameSize(parts, payload);
//   ... check size ...
//   OutFrame<kHeaderBytes>& f = out_.emplace_back();
//   f.Fill(format, size, std::move(parts), std::move(payload),
//          std::move(owner), std::move(fds));
//   ... write f.header, then f.Bytes() ...
//
// Internal to the transport implementations; not part of the Channel seam.
// Thread safety: none (a value type).
#ifndef PROCPOOL_TRANSPORT_OUT_FRAME_H_
#define PROCPOOL_TRANSPORT_OUT_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/unique_fd.h"
#include "transport/frame_header.h"

namespace procpool {

// The length of the frame made of `parts` and then `payload`.
inline uint64_t OutFrameSize(const std::vector<absl::string_view>& parts,
                             const std::string& payload) {
  uint64_t size = payload.size();
  for (absl::string_view part : parts) size += part.size();
  return size;
}

template <size_t kHeaderBytes>
struct OutFrame {
  char header[kHeaderBytes];
  uint64_t size = 0;
  std::vector<absl::string_view> parts;
  std::string payload;
  absl::string_view whole;  // = payload
  std::shared_ptr<const void> owner;
  // Duplicates of the descriptors that travel with the frame, until they are
  // sent (then cleared: closed).
  std::vector<UniqueFd> fds;

  // Takes Send()'s `payload` (no parts) or SendParts()' `parts` kept alive by
  // `owner` (no payload). Call it on the frame in its final place (a deque's
  // element): `whole` points into `payload`, which may be inline.
  void Take(uint64_t frame_size, std::vector<absl::string_view> frame_parts,
            std::string frame_payload, std::shared_ptr<const void> keep) {
    size = frame_size;
    parts = std::move(frame_parts);
    payload = std::move(frame_payload);
    whole = payload;
    owner = std::move(keep);
  }

  // Take(), after the header is encoded in `format` (announcing `frame_fds`,
  // which travel with the frame): what a transport's queue does with a frame.
  void Fill(const FrameFormat& format, uint64_t frame_size,
            std::vector<absl::string_view> frame_parts,
            std::string frame_payload, std::shared_ptr<const void> keep,
            std::vector<UniqueFd> frame_fds) {
    EncodeFrameHeader(format, frame_size, header,
                      static_cast<uint32_t>(frame_fds.size()));
    Take(frame_size, std::move(frame_parts), std::move(frame_payload),
         std::move(keep));
    fds = std::move(frame_fds);
  }

  // The frame's bytes (after the header), in order.
  absl::Span<const absl::string_view> Bytes() const {
    if (parts.empty()) return absl::MakeConstSpan(&whole, 1);
    return parts;
  }
};

}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_OUT_FRAME_H_
