// The framed remote link's preamble and trailers (framed_link.h).
#include "transport/capnp/framed_link.h"

#include <string.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "transport/frame_header.h"

namespace procpool {
namespace capnp_internal {
namespace framed {
namespace {

// The 17 bytes of a keepalive: the header of a 1-byte payload, the trailer.
std::string MakeKeepaliveFrame() {
  std::string bytes(kFrameHeaderSize + 1, '\0');
  EncodeFrameHeader(kFormat, 1, &bytes[0]);
  bytes[kFrameHeaderSize] = kKeepaliveTrailer;
  return bytes;
}

}  // namespace

std::string EncodePreamble(absl::Duration keepalive_interval) {
  std::string bytes(kPreambleSize, '\0');
  memcpy(&bytes[0], kPreambleMagic, 4);
  const int64_t us = std::max<int64_t>(
      0, absl::ToInt64Microseconds(keepalive_interval));
  for (int i = 0; i < 8; ++i) {
    bytes[8 + i] = static_cast<char>(static_cast<uint64_t>(us) >> (8 * i));
  }
  return bytes;
}

absl::StatusOr<absl::Duration> DecodePreamble(absl::string_view bytes,
                                              absl::string_view peer) {
  if (bytes.size() != kPreambleSize ||
      memcmp(bytes.data(), kPreambleMagic, 4) != 0 ||
      bytes.substr(4, 4) != absl::string_view("\0\0\0\0", 4)) {
    return absl::DataLossError(absl::StrCat(
        "capnp transport: the ", peer,
        " did not start the framed link after authentication (a parent of "
        "another procpool version, or TLS on one side only?)"));
  }
  uint64_t us = 0;
  for (int i = 7; i >= 0; --i) {
    us = (us << 8) | static_cast<unsigned char>(bytes[8 + i]);
  }
  // Anything above a day is as good as none.
  if (us > uint64_t{86'400'000'000}) us = 0;
  return absl::Microseconds(static_cast<int64_t>(us));
}

absl::Status StripTrailers(std::vector<std::string>* got,
                           std::vector<std::string>* frames,
                           absl::string_view peer) {
  absl::Status status;
  for (std::string& frame : *got) {
    if (!status.ok()) break;
    if (frame.empty()) {
      status = absl::DataLossError(absl::StrCat(
          "capnp transport: the ", peer,
          " sent a frame without its trailer byte (a corrupt stream)"));
    } else if (frame.back() == kDataTrailer) {
      frame.pop_back();
      frames->push_back(std::move(frame));
    } else if (frame.back() != kKeepaliveTrailer || frame.size() != 1) {
      status = absl::DataLossError(absl::StrCat(
          "capnp transport: the ", peer, " sent a frame whose trailer byte is ",
          static_cast<int>(static_cast<unsigned char>(frame.back())),
          " (a corrupt stream)"));
    }
  }
  got->clear();
  return status;
}

absl::string_view DataTrailer() {
  static constexpr char kTrailer[1] = {kDataTrailer};
  return absl::string_view(kTrailer, 1);
}

absl::string_view KeepaliveFrame() {
  static const std::string* const frame = new std::string(MakeKeepaliveFrame());
  return *frame;
}

}  // namespace framed
}  // namespace capnp_internal
}  // namespace procpool
