#include "transport/frame_header.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace procpool {

absl::Status CheckFrameHeader(const FrameFormat& format, const char* header,
                              absl::string_view peer) {
  if (memcmp(header, format.magic, 4) != 0) {
    return absl::DataLossError(absl::StrCat(
        format.name, ": bad frame magic from the ", peer, " (got 0x",
        absl::BytesToHexString(absl::string_view(header, 4)), ", expected 0x",
        absl::BytesToHexString(absl::string_view(format.magic, 4)), "): the ",
        format.medium, " is corrupt or the peer speaks another protocol"));
  }
  uint32_t flags = DecodeFrameFlags(header);
  if (format.descriptors) {
    const uint32_t descriptors = flags & 0xff;
    if (descriptors > kMaxFrameDescriptors) {
      return absl::DataLossError(absl::StrCat(
          format.name, ": frame header from the ", peer, " announces ",
          descriptors, " descriptors (limit ", kMaxFrameDescriptors, ")"));
    }
    flags &= ~uint32_t{0xff};
  }
  if (flags != 0) {
    return absl::DataLossError(
        absl::StrCat(format.name, ": frame header from the ", peer,
                     " has unknown flags 0x", absl::Hex(flags)));
  }
  if (uint64_t length = DecodeFrameLength(header); length > format.max_length) {
    return absl::DataLossError(
        absl::StrCat(format.name, ": impossible frame length ", length,
                     " from the ", peer, " (limit ", format.max_length, ")"));
  }
  return absl::OkStatus();
}

absl::Status OversizeFrameError(const FrameFormat& format, uint64_t size) {
  return absl::InvalidArgumentError(
      absl::StrCat(format.name, ": a frame of ", size,
                   " bytes is over the limit of ", format.max_length));
}

}  // namespace procpool
