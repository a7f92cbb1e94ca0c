// libFuzzer target for the value codec (serialization/codec.h).
//
// Input: a selector byte (which of FuzzTypes, see codec_fuzz_types.h), then
// bytes handed to DecodeValue<T>. Checks, for every input:
//   - decoding returns (no crash, no out-of-bounds read: the sanitizers watch),
//     and a failure is kDataLoss or kResourceExhausted, as codec.h promises;
//   - DecodeValueInto over a non-empty value succeeds exactly when DecodeValue
//     does and yields the same value (the decoders reset what they reuse);
//   - a decoded value re-encodes, and that encoding decodes to a value with
//     the same encoding; for types whose encoding is canonical it is the input
//     itself.
// Values are compared with SameValue.
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fuzz/codec_fuzz_types.h"
#include "fuzz/fuzz_check.h"
#include "serialization/codec.h"

namespace procpool {
namespace fuzz {
namespace {

bool IsDecodeError(const absl::Status& status) {
  return status.code() == absl::StatusCode::kDataLoss ||
         status.code() == absl::StatusCode::kResourceExhausted;
}

template <typename T>
bool SameValue(const T& a, const T& b) {
  if constexpr (kCompareEncodings<T>) {
    return EncodeValue(a) == EncodeValue(b);
  } else {
    return a == b;
  }
}

template <typename T>
void CheckType(absl::string_view bytes) {
  const std::string type = TypeSignature<T>();
  absl::StatusOr<T> value = DecodeValue<T>(bytes);

  T reused = Samples<T>().front();
  const absl::Status into = DecodeValueInto(bytes, &reused);
  FUZZ_CHECK(into.ok() == value.ok(),
             type + ": DecodeValueInto over a sample says " + into.ToString() +
                 ", DecodeValue says " + value.status().ToString());

  if (!value.ok()) {
    FUZZ_CHECK(IsDecodeError(value.status()),
               type + ": unexpected code: " + value.status().ToString());
    FUZZ_CHECK(
        into.code() == value.status().code(),
        type + ": " + into.ToString() + " vs " + value.status().ToString());
    return;
  }
  const std::string encoded = EncodeValue(*value);
  FUZZ_CHECK(SameValue(reused, *value),
             type + ": DecodeValueInto over a sample gave another value");
  if (kCanonical<T>) {
    FUZZ_CHECK(encoded == bytes,
               type + ": canonical type re-encodes to different bytes");
  }
  absl::StatusOr<T> again = DecodeValue<T>(encoded);
  FUZZ_CHECK(again.ok(), type + ": re-encoded value does not decode: " +
                             again.status().ToString());
  FUZZ_CHECK(SameValue(*again, *value),
             type + ": round trip changed the value");
}

// Vectors of zero-byte elements may hold 2^20 of them (the Reader's budget,
// byte_io.h), and decoding that many takes milliseconds, three times per
// input: left to codec_test, so that the fuzzer spends its time on other
// inputs.
template <typename T>
bool WorthDecoding(absl::string_view bytes) {
  if constexpr (std::is_same<T, Empties>::value) {
    Reader r(bytes);
    uint64_t count = 0;
    return !r.ReadVarint(&count).ok() || count <= 4096;
  } else {
    return true;
  }
}

template <size_t... I>
void Dispatch(size_t index, absl::string_view bytes,
              std::index_sequence<I...>) {
  ((index == I && WorthDecoding<std::tuple_element_t<I, FuzzTypes>>(bytes)
        ? CheckType<std::tuple_element_t<I, FuzzTypes>>(bytes)
        : void()),
   ...);
}

}  // namespace
}  // namespace fuzz
}  // namespace procpool

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using procpool::fuzz::kNumTypes;
  if (size == 0) return 0;
  procpool::fuzz::Dispatch(
      data[0] % kNumTypes,
      absl::string_view(reinterpret_cast<const char*>(data) + 1, size - 1),
      std::make_index_sequence<kNumTypes>());
  return 0;
}
