// The framed remote link's bytes (framed_remote.h describes the link): the
// preamble the parent sends once after authentication, the frame format, and
// the trailer byte that ends every frame's payload (0: a frame of the
// channel, 1: a keepalive).
//
// Package-internal. Thread safety: pure functions and constants.
#ifndef PROCPOOL_TRANSPORT_CAPNP_FRAMED_LINK_H_
#define PROCPOOL_TRANSPORT_CAPNP_FRAMED_LINK_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "transport/frame_header.h"

namespace procpool {
namespace capnp_internal {
namespace framed {

inline constexpr char kPreambleMagic[4] = {'P', 'P', 'L', '1'};
inline constexpr size_t kPreambleSize = 16;
inline constexpr char kFrameMagic[4] = {'P', 'P', 'T', '1'};
inline constexpr char kDataTrailer = 0;
inline constexpr char kKeepaliveTrailer = 1;
inline constexpr FrameFormat kFormat = {kFrameMagic, uint64_t{1} << 40,
                                        "capnp transport", "stream"};

std::string EncodePreamble(absl::Duration keepalive_interval);
// The interval, or kDataLoss naming `peer` if `bytes` is not a preamble.
absl::StatusOr<absl::Duration> DecodePreamble(absl::string_view bytes,
                                              absl::string_view peer);

// Takes the trailer off each of `got`'s frames and appends the channel's
// frames to `*frames`, dropping keepalives. kDataLoss (naming `peer`) at the
// first frame without a valid trailer; the frames before it are delivered.
absl::Status StripTrailers(std::vector<std::string>* got,
                           std::vector<std::string>* frames,
                           absl::string_view peer);

// The trailer of a channel frame, as a part to send after its bytes.
absl::string_view DataTrailer();
// A whole keepalive frame: header and payload.
absl::string_view KeepaliveFrame();

}  // namespace framed
}  // namespace capnp_internal
}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_CAPNP_FRAMED_LINK_H_
