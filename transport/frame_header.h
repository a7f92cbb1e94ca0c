// The frame header of the stream transports (shm's rings, unix's sockets):
// every frame on the byte stream is a 16-byte header, then the payload.
//   bytes 0..3   magic, naming the transport and its version ("PPS1" shm,
//                "PPU1" unix)
//   bytes 4..7   flags, little-endian: bits 0..7 the number of descriptors
//                that travel with the frame (0..kMaxFrameDescriptors; only
//                formats with `descriptors`, else zero), bits 8..31 reserved:
//                must be zero
//   bytes 8..15  payload length, unsigned 64-bit little-endian
// A frame that carries no descriptors has the same bytes as before the count
// existed. How the descriptors themselves travel is the transport's business
// (SCM_RIGHTS with the frame's first byte on unix; a side socket on shm).
// The layout is one; the magic (and so the bytes) differ per transport, so a
// FrameFormat names it, with the words its errors use.
//
// Example:
//   char header[kFrameHeaderSize];
//   EncodeFrameHeader(kShmFrameFormat, payload.size(), header);
//   ...
//   absl::Status bad = CheckFrameHeader(kShmFrameFormat, header, "worker");
//
// Internal to the transport implementations. Thread safety: pure functions.
#ifndef PROCPOOL_TRANSPORT_FRAME_HEADER_H_
#define PROCPOOL_TRANSPORT_FRAME_HEADER_H_

#include <string.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace procpool {

inline constexpr size_t kFrameHeaderSize = 16;

// The most descriptors a header may announce (= Channel::
// kMaxDescriptorsPerFrame).
inline constexpr uint32_t kMaxFrameDescriptors = 64;

// One transport's frames. Every member points to static storage.
struct FrameFormat {
  const char* magic;    // 4 bytes
  uint64_t max_length;  // a longer payload is refused (send) or corrupt
  const char* name;     // starts every error: "shm transport"
  const char* medium;   // what a bad magic says is corrupt: "ring", "stream"
  // Whether headers may announce descriptors (flags bits 0..7).
  bool descriptors = false;
};

// Writes the header of a `length`-byte payload that `descriptors` (<=
// kMaxFrameDescriptors; 0 unless format.descriptors) travel with to
// `out[0, 16)`.
inline void EncodeFrameHeader(const FrameFormat& format, uint64_t length,
                              char* out, uint32_t descriptors = 0) {
  memcpy(out, format.magic, 4);
  out[4] = static_cast<char>(descriptors);
  memset(out + 5, 0, 3);
  for (int i = 0; i < 8; ++i) out[8 + i] = static_cast<char>(length >> (8 * i));
}

inline uint32_t DecodeFrameFlags(const char* header) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(header[4 + i]);
  return v;
}

// The descriptors a header checked by CheckFrameHeader() announces.
inline uint32_t DecodeFrameDescriptors(const char* header) {
  return static_cast<unsigned char>(header[4]);
}

inline uint64_t DecodeFrameLength(const char* header) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(header[8 + i]);
  return v;
}

// OK, or kDataLoss naming what is wrong with a received `header` (another
// magic, unknown flags, more descriptors than kMaxFrameDescriptors or any
// where !format.descriptors, a length above format.max_length) and `peer` (the
// other end: "worker" or "parent").
absl::Status CheckFrameHeader(const FrameFormat& format, const char* header,
                              absl::string_view peer);

// kInvalidArgument: a frame of `size` bytes is over format.max_length.
absl::Status OversizeFrameError(const FrameFormat& format, uint64_t size);

// OK if a frame of `size` bytes may be sent.
inline absl::Status CheckOutgoingFrameSize(const FrameFormat& format,
                                           uint64_t size) {
  if (size <= format.max_length) return absl::OkStatus();
  return OversizeFrameError(format, size);
}

}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_FRAME_HEADER_H_
