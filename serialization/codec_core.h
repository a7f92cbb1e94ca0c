// Codec<T>: the template every encodable type has a specialization of, the
// hooks through which user types plug in (a specialization, or
// ProcpoolEncode/ProcpoolDecode found by ADL), the codecs of the arithmetic
// types and std::string, and EncodeValue/DecodeValue/TypeSignature over them.
// The standard containers' codecs are in codec_std.h.
//
// Include codec.h, not this: it has both, and documents the encoding of each
// type, the guarantees on bad input and how to plug in a type.
//
// Thread safety: the free functions are thread-safe; a Writer or Reader
// passed to a codec is used by one thread at a time.
#ifndef PROCPOOL_SERIALIZATION_CODEC_CORE_H_
#define PROCPOOL_SERIALIZATION_CODEC_CORE_H_

#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "serialization/byte_io.h"  // IWYU pragma: export

namespace procpool {

// The codec of T: a specialization provides
//   static void Encode(Writer&, const T&);
//   static absl::Status Decode(Reader&, T*);   // never throws
//   static std::string Signature();            // stable type name
// The primary template serves types with ProcpoolEncode/ProcpoolDecode found
// by ADL and is a compile error naming T for every other type.
template <typename T, typename Enable = void>
struct Codec;

namespace internal {

// Instantiated with the offending type so that the compiler's note names it.
template <typename T>
struct TypeHasNoProcpoolCodec {
  static constexpr bool value = false;
};

template <typename T, typename = void>
struct HasAdlCodec : std::false_type {};
template <typename T>
struct HasAdlCodec<
    T, std::void_t<decltype(ProcpoolEncode(std::declval<Writer&>(),
                                           std::declval<const T&>())),
                   decltype(ProcpoolDecode(std::declval<Reader&>(),
                                           std::declval<T*>()))>>
    : std::is_convertible<decltype(ProcpoolDecode(std::declval<Reader&>(),
                                                  std::declval<T*>())),
                          absl::Status> {};

template <typename T, typename = void>
struct HasAdlSignature : std::false_type {};
template <typename T>
struct HasAdlSignature<
    T, std::void_t<decltype(ProcpoolSignature(std::declval<const T*>()))>>
    : std::is_convertible<decltype(ProcpoolSignature(std::declval<const T*>())),
                          std::string> {};

// "shop::Order" for typeid(shop::Order).
std::string DemangledTypeName(const std::type_info& type);

template <typename T, bool = HasAdlCodec<T>::value>
struct AdlCodec {
  static void Encode(Writer& w, const T& v) { ProcpoolEncode(w, v); }
  static absl::Status Decode(Reader& r, T* v) { return ProcpoolDecode(r, v); }
  static std::string Signature() {
    if constexpr (HasAdlSignature<T>::value) {
      return ProcpoolSignature(static_cast<const T*>(nullptr));
    } else {
      return DemangledTypeName(typeid(T));
    }
  }
};

template <typename T>
struct AdlCodec<T, false> {
  static_assert(
      TypeHasNoProcpoolCodec<T>::value,
      "procpool: no Codec for this type. Specialize procpool::Codec<T> or "
      "declare ProcpoolEncode/ProcpoolDecode beside the type (see "
      "serialization/codec.h); the note below names the type");
  // Stubs that keep the static_assert the only error.
  static void Encode(Writer&, const T&) {}
  static absl::Status Decode(Reader&, T*) { return absl::OkStatus(); }
  static std::string Signature() { return ""; }
};

// Built-in codecs state the fewest bytes one value can encode to; user codecs
// don't, which also marks them as possibly recursive.
template <typename T, typename = void>
struct BuiltinCodecInfo {
  static constexpr bool kBuiltin = false;
  static constexpr size_t kMinWireSize = 0;
};
template <typename T>
struct BuiltinCodecInfo<T, std::void_t<decltype(Codec<T>::kMinWireSize)>> {
  static constexpr bool kBuiltin = true;
  static constexpr size_t kMinWireSize = Codec<T>::kMinWireSize;
};
template <typename T>
inline constexpr size_t kMinWireSize = BuiltinCodecInfo<T>::kMinWireSize;

// Arithmetic types whose in-memory array is their wire encoding.
template <typename T>
inline constexpr bool kIsBlockCopyable =
    kLittleEndian&& std::is_arithmetic<T>::value &&
    !std::is_same<T, bool>::value && !std::is_same<T, long double>::value;

// Decodes a nested value, counting user types against the depth limit.
template <typename T>
absl::Status DecodeNested(Reader& r, T* v) {
  if constexpr (BuiltinCodecInfo<T>::kBuiltin) {
    return Codec<T>::Decode(r, v);
  } else {
    RETURN_IF_ERROR(r.EnterNested());
    absl::Status status = Codec<T>::Decode(r, v);
    r.ExitNested();
    return status;
  }
}

absl::Status ExceptionError(const std::exception* e);

// Runs `fn` (returning absl::Status) and turns any exception into a Status:
// std::bad_alloc is kResourceExhausted, anything else kInternal.
template <typename Fn>
absl::Status CatchExceptions(Fn&& fn) noexcept {
  try {
    return fn();
  } catch (const std::exception& e) {
    return ExceptionError(&e);
  } catch (...) {
    return ExceptionError(nullptr);
  }
}

absl::Status AnnotateDecodeError(const absl::Status& status,
                                 absl::string_view signature, size_t position,
                                 size_t size);
absl::Status TrailingBytesError(absl::string_view signature, size_t left,
                                size_t size);

}  // namespace internal

// Primary template: user types with ADL functions; otherwise a compile error.
template <typename T, typename Enable>
struct Codec : internal::AdlCodec<T> {};

// Arithmetic types: fixed-width little-endian.
template <typename T>
struct Codec<T, std::enable_if_t<std::is_arithmetic<T>::value>> {
  static constexpr size_t kMinWireSize = sizeof(T);
  static void Encode(Writer& w, const T& v) { w.WriteFixed(v); }
  static absl::Status Decode(Reader& r, T* v) { return r.ReadFixed(v); }
  static std::string Signature() { return internal::ArithmeticName<T>(); }
};

// std::string: varint length, then the bytes.
template <>
struct Codec<std::string> {
  static constexpr size_t kMinWireSize = 1;
  static void Encode(Writer& w, const std::string& s) {
    w.WriteVarint(s.size());
    w.WriteBytes(s.data(), s.size());
  }
  static absl::Status Decode(Reader& r, std::string* s);
  static std::string Signature() { return "string"; }
};

// Appends the encoding of `v` (for use inside user encoders).
template <typename T>
void WriteValue(Writer& w, const T& v) {
  Codec<T>::Encode(w, v);
}

// Decodes `*v` from `r` (for use inside user decoders).
template <typename T>
absl::Status ReadValue(Reader& r, T* v) {
  return internal::DecodeNested(r, v);
}

// The encoding of `v`.
template <typename T>
std::string EncodeValue(const T& v) {
  Writer w;
  Codec<T>::Encode(w, v);
  return w.Release();
}

// The stable name of T's encoding, e.g. "map<string,vector<i32>>". Computed
// once per type.
template <typename T>
std::string TypeSignature() {
  static const std::string* const signature =
      new std::string(Codec<T>::Signature());
  return *signature;
}

// Decodes all of `bytes` into `*out`, reusing its memory where it can. Bytes
// left over are an error. On error `*out` is valid but unspecified.
template <typename T>
absl::Status DecodeValueInto(absl::string_view bytes, T* out) {
  Reader r(bytes);
  absl::Status status =
      internal::CatchExceptions([&] { return internal::DecodeNested(r, out); });
  if (ABSL_PREDICT_FALSE(!status.ok())) {
    return internal::AnnotateDecodeError(status, TypeSignature<T>(),
                                         r.position(), bytes.size());
  }
  if (ABSL_PREDICT_FALSE(r.remaining() != 0)) {
    return internal::TrailingBytesError(TypeSignature<T>(), r.remaining(),
                                        bytes.size());
  }
  return absl::OkStatus();
}

// Decodes a T from all of `bytes`. Bytes left over are an error.
template <typename T>
absl::StatusOr<T> DecodeValue(absl::string_view bytes) {
  absl::StatusOr<T> result;
  // Constructing T may itself throw (a user type's constructor).
  RETURN_IF_ERROR(internal::CatchExceptions([&] {
    result.emplace();
    return absl::OkStatus();
  }));
  RETURN_IF_ERROR(DecodeValueInto(bytes, &*result));
  return result;
}

}  // namespace procpool

#endif  // PROCPOOL_SERIALIZATION_CODEC_CORE_H_
