#include "serialization/codec.h"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>

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

absl::Status Codec<std::string>::Decode(Reader& r, std::string* s) {
  uint64_t n = 0;
  RETURN_IF_ERROR(r.ReadVarint(&n));
  if (ABSL_PREDICT_FALSE(n > r.remaining())) {
    return internal::TruncatedError(n, r.remaining(), "string");
  }
  ASSIGN_OR_RETURN(absl::string_view bytes, r.ReadView(n));
  return internal::CatchExceptions([&] {
    internal::ReserveBig(s, bytes.size());
    s->assign(bytes.data(), bytes.size());
    return absl::OkStatus();
  });
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

absl::Status CountError(uint64_t count, size_t min_size, size_t left,
                        absl::string_view signature) {
  return absl::DataLossError(absl::StrCat(
      "truncated or corrupt: ", signature, " of ", count,
      " elements needs at least ", min_size, " bytes each, ", left, " left"));
}

absl::Status DuplicateKeyError(absl::string_view signature) {
  return absl::DataLossError(absl::StrCat("duplicate key in ", signature));
}

absl::Status InvalidTagError(absl::string_view what, uint64_t tag,
                             uint64_t limit, absl::string_view signature) {
  return absl::DataLossError(absl::StrCat("invalid ", what, " ", tag, " for ",
                                          signature, " (want 0 to ", limit - 1,
                                          ")"));
}

absl::Status PaddingBitsError(absl::string_view signature) {
  return absl::DataLossError(
      absl::StrCat("nonzero padding bits at the end of ", signature));
}

absl::Status ExceptionError(const std::exception* e) {
  if (e == nullptr)
    return absl::InternalError("decoder threw a non-std::exception");
  if (dynamic_cast<const std::bad_alloc*>(e) != nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory while decoding: ", e->what()));
  }
  return absl::InternalError(absl::StrCat(
      "decoder threw ", DemangledTypeName(typeid(*e)), ": ", e->what()));
}

absl::Status AnnotateDecodeError(const absl::Status& status,
                                 absl::string_view signature, size_t position,
                                 size_t size) {
  return absl::Status(
      status.code(), absl::StrCat("decoding ", signature, " at byte ", position,
                                  " of ", size, ": ", status.message()));
}

absl::Status TrailingBytesError(absl::string_view signature, size_t left,
                                size_t size) {
  return absl::DataLossError(
      absl::StrCat("decoding ", signature, ": ", left,
                   " bytes left over after the value (of ", size, ")"));
}

std::string DemangledTypeName(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), &std::free);
  if (status != 0 || name == nullptr) return type.name();
  return name.get();
}

}  // namespace internal
}  // namespace procpool
