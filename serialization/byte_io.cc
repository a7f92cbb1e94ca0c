#include "serialization/byte_io.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/big_buffers.h"

namespace procpool {

void Writer::WriteVarintSlow(uint64_t v) {
  char bytes[10];
  size_t n = 0;
  while (v >= 0x80) {
    bytes[n++] = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  bytes[n++] = static_cast<char>(v);
  buffer_.append(bytes, n);
}

absl::Status Reader::ReadVarintSlow(uint64_t* v) {
  uint64_t result = 0;
  const char* p = pos_;
  for (int shift = 0;; shift += 7) {
    if (p == end_) {
      return absl::DataLossError(absl::StrCat(
          "truncated: varint runs past the end after ", p - pos_, " bytes"));
    }
    const uint8_t byte = static_cast<uint8_t>(*p++);
    if (shift == 63 && byte > 1) {
      return absl::DataLossError("varint overflows 64 bits");
    }
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      if (byte == 0 && shift > 0) {
        return absl::DataLossError("overlong varint (ends in a zero byte)");
      }
      break;
    }
  }
  pos_ = p;
  *v = result;
  return absl::OkStatus();
}

absl::Status Reader::EmptyBudgetError() const {
  return absl::DataLossError(absl::StrCat(
      "more zero-byte elements than the budget of ", kEmptyElementBudgetBytes,
      " bytes of memory allows (a corrupt count?)"));
}

absl::Status Reader::NestingError() const {
  return absl::DataLossError(absl::StrCat("user types nested deeper than ",
                                          kMaxNestingDepth, " levels"));
}

namespace internal {

void ReserveBig(std::string* s, size_t n) {
  if (n <= s->capacity()) return;  // (reserve below the capacity may shrink)
  if (n >= kBigBufferBytes && s->size() <= kBigBufferBytes / 32) {
    // Perhaps memory already there (a Writer holds a few header bytes when
    // its first big blob comes).
    std::string big = TakeBigBuffer(n);
    big.append(*s);
    *s = std::move(big);
    return;
  }
  s->reserve(n);
  AdviseHugePages(*s);
}

absl::Status TruncatedError(uint64_t need, size_t left,
                            absl::string_view what) {
  return absl::DataLossError(absl::StrCat(
      "truncated: need ", need, " bytes for ", what, ", ", left, " left"));
}

absl::Status InvalidBoolError(uint8_t byte) {
  return absl::DataLossError(
      absl::StrFormat("invalid bool byte 0x%02x (want 0 or 1)", byte));
}

}  // namespace internal
}  // namespace procpool
