// The value codec: task arguments and results to bytes and back.
//
// EncodeValue(v) turns a value into a compact byte string;
// DecodeValue<T>(bytes) turns it back. The bytes carry no type information:
// both sides must agree on T, which the executor checks once per worker by
// comparing TypeSignature<T>() strings (stable names such as "vector<string>";
// identical in every binary built from the same code, independent of addresses
// and ASLR).
//
// Encodable types, nested freely:
//   bool, char, signed/unsigned 8..64-bit integers, float, double
//       (long double is a compile error: its layout differs between platforms),
//   std::string, std::vector (incl. vector<bool>), std::array, std::map,
//   std::unordered_map, std::set, std::unordered_set, std::pair, std::tuple
//   (incl. tuple<>), std::optional, std::variant, std::monostate,
//   and user types that plug in (below).
// Decoding needs T to be default-constructible; values are decoded in place.
//
// Wire format (little-endian; "varint" is unsigned LEB128, at most 10 bytes and
// minimal, i.e. never ending in a 0x00 continuation byte):
//   bool                 1 byte, 0 or 1
//   char, [u]intN, float, double
//                        sizeof(T) bytes: two's complement / IEEE 754
//   std::string          varint length, then the bytes
//   vector<T>            varint count, then the elements (arithmetic T: one
//                        block; vector<bool>: bits packed LSB first, padding 0)
//   array<T, N>          the N elements, no count
//   map, unordered_map   varint count, then key, value, key, value, ...
//   set, unordered_set   varint count, then the elements
//   pair, tuple          the elements in order
//   optional<T>          1 byte 0 (empty) or 1 followed by the value
//   variant<Ts...>       varint index, then that alternative
//   monostate            nothing
//
// Bad input. Decoding never crashes, throws, reads out of bounds or allocates
// in proportion to a length prefix it has not yet seen the bytes for.
// Truncated or corrupted bytes give kDataLoss whose message says what was
// wrong ("truncated: need 8 bytes for f64, 3 left", "invalid bool byte 0x07",
// "duplicate key in map<string,i32>"), prefixed by DecodeValue with the type
// and the byte offset. A failed allocation is kResourceExhausted; an exception
// thrown by a user decoder becomes kInternal. Duplicate keys in maps and sets
// are rejected. Elements that encode to zero bytes (monostate, tuple<>) are
// limited to about a million per decode (Reader::kEmptyElementBudgetBytes),
// and user types may nest at most Reader::kMaxNestingDepth deep.
//
// Plugging in a user type, way (a): specialize procpool::Codec<T> with all
// three static members.
//   struct Point { int32_t x = 0, y = 0; };
//   namespace procpool {
//   template <>
//   struct Codec<Point> {
//     static void Encode(Writer& w, const Point& p) {
//       w.WriteFixed(p.x);
//       w.WriteFixed(p.y);
//     }
//     static absl::Status Decode(Reader& r, Point* p) {
//       RETURN_IF_ERROR(r.ReadFixed(&p->x));
//       return r.ReadFixed(&p->y);
//     }
//     static std::string Signature() { return "Point"; }
//   };
//   }  // namespace procpool
//
// Way (b): free functions found by argument-dependent lookup, declared in the
// type's own namespace. ProcpoolSignature is optional; without it the
// signature is the demangled type name ("shop::Order").
//   namespace shop {
//   struct Order { std::string item; std::vector<int64_t> quantities; };
//   void ProcpoolEncode(procpool::Writer& w, const Order& o) {
//     procpool::WriteValue(w, o.item);
//     procpool::WriteValue(w, o.quantities);
//   }
//   absl::Status ProcpoolDecode(procpool::Reader& r, Order* o) {
//     RETURN_IF_ERROR(procpool::ReadValue(r, &o->item));
//     return procpool::ReadValue(r, &o->quantities);
//   }
//   std::string ProcpoolSignature(const Order*) { return "shop.Order/v1"; }
//   }  // namespace shop
//
// A user decoder reads only through the Reader and returns its errors (an
// exception it throws becomes a Status). `*v` is default-constructed, except
// inside an object the caller reuses with DecodeValueInto: then it must set
// every field, not append. A recursive user type (struct Node {
// std::vector<Node> kids; }) reads its children with ReadValue or through a
// container, so that the depth limit applies.
//
// A type with no codec is a compile error that names it, e.g. for
// EncodeValue(Unknown{}) GCC prints:
//   error: static assertion failed: procpool: no Codec for this type. ...
//   note: 'procpool::internal::TypeHasNoProcpoolCodec<Unknown>::value'
//         evaluates to false
//
// Example:
//   using Args = std::tuple<int, std::string>;
//   std::string bytes = procpool::EncodeValue(Args(7, "x"));
//   ASSIGN_OR_RETURN(Args args, procpool::DecodeValue<Args>(bytes));
//   procpool::TypeSignature<Args>();  // "tuple<i32,string>"
//
// Thread safety: Writer and Reader are used by one thread at a time; the free
// functions are thread-safe.
#ifndef PROCPOOL_SERIALIZATION_CODEC_H_
#define PROCPOOL_SERIALIZATION_CODEC_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "absl/base/config.h"
#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace procpool {
namespace internal {

#if defined(ABSL_IS_LITTLE_ENDIAN)
inline constexpr bool kLittleEndian = true;
#else
inline constexpr bool kLittleEndian = false;
#endif

// The wire name of an arithmetic type: "bool", "char", "i8".."i64",
// "u8".."u64", "f32", "f64". Types of the same size and signedness share a
// name (long and long long are both "i64") because they share an encoding.
template <typename T>
constexpr const char* ArithmeticName() {
  static_assert(std::is_arithmetic<T>::value, "not an arithmetic type");
  if constexpr (std::is_same<T, bool>::value) {
    return "bool";
  } else if constexpr (std::is_same<T, char>::value) {
    return "char";
  } else if constexpr (std::is_floating_point<T>::value) {
    return sizeof(T) == 4 ? "f32" : "f64";
  } else if constexpr (std::is_signed<T>::value) {
    return sizeof(T) == 1   ? "i8"
           : sizeof(T) == 2 ? "i16"
           : sizeof(T) == 4 ? "i32"
                            : "i64";
  } else {
    return sizeof(T) == 1   ? "u8"
           : sizeof(T) == 2 ? "u16"
           : sizeof(T) == 4 ? "u32"
                            : "u64";
  }
}

template <typename T>
constexpr void CheckEncodableArithmetic() {
  static_assert(!std::is_same<T, long double>::value,
                "procpool: long double is not encodable (its size and layout "
                "differ between platforms); convert to double");
  static_assert(
      !std::is_floating_point<T>::value || std::numeric_limits<T>::is_iec559,
      "procpool: only IEEE 754 float and double are encodable");
  static_assert(std::is_floating_point<T>::value || sizeof(T) <= 8,
                "procpool: integers wider than 64 bits are not encodable");
}

// Writes at least this big go to a buffer reserved by ReserveBig.
inline constexpr size_t kBigBufferBytes = size_t{2} << 20;

// Makes `*s` hold at least `n` bytes without reallocating. A new buffer of
// kBigBufferBytes or more is advised for transparent huge pages before any
// byte of it is touched: glibc maps such a buffer fresh, and a page fault per
// 4 KiB costs more than copying into it (serialization/wire.cc's top comment).
void ReserveBig(std::string* s, size_t n);

// Error builders, out of line: they only run when something is wrong.
absl::Status TruncatedError(uint64_t need, size_t left, absl::string_view what);
absl::Status InvalidBoolError(uint8_t byte);

}  // namespace internal

// Appends encoded values to a string it owns. Never fails.
class Writer {
 public:
  Writer() = default;
  // Appends after what `buffer` already holds (e.g. a frame header).
  explicit Writer(std::string buffer) : buffer_(std::move(buffer)) {}
  Writer(Writer&&) = default;
  Writer& operator=(Writer&&) = default;

  // Appends `n` raw bytes.
  void WriteBytes(const void* data, size_t n) {
    if (n == 0) return;
    if (ABSL_PREDICT_FALSE(n >= internal::kBigBufferBytes &&
                           n > buffer_.capacity() - buffer_.size())) {
      internal::ReserveBig(&buffer_, std::max(buffer_.size() + n,
                                              2 * buffer_.capacity()));
    }
    buffer_.append(static_cast<const char*>(data), n);
  }

  // Makes room for `n` bytes in all (ReserveBig), so that writing them
  // allocates nothing.
  void Reserve(size_t n) { internal::ReserveBig(&buffer_, n); }

  // Appends `v` as an unsigned LEB128 varint (1 to 10 bytes).
  void WriteVarint(uint64_t v) {
    if (ABSL_PREDICT_TRUE(v < 0x80)) {
      buffer_.push_back(static_cast<char>(v));
    } else {
      WriteVarintSlow(v);
    }
  }

  // Appends the arithmetic value `v` as sizeof(T) little-endian bytes.
  template <typename T>
  void WriteFixed(T v) {
    static_assert(std::is_arithmetic<T>::value,
                  "WriteFixed takes arithmetic types");
    internal::CheckEncodableArithmetic<T>();
    if constexpr (internal::kLittleEndian) {
      WriteBytes(&v, sizeof(T));
    } else {
      char bytes[sizeof(T)];
      std::memcpy(bytes, &v, sizeof(T));
      std::reverse(bytes, bytes + sizeof(T));
      WriteBytes(bytes, sizeof(T));
    }
  }

  // Bytes written so far, and direct access to them.
  size_t size() const { return buffer_.size(); }
  std::string& buffer() { return buffer_; }
  // Hands out the bytes written so far and leaves the writer empty.
  std::string Release() {
    std::string out;
    out.swap(buffer_);
    return out;
  }

 private:
  void WriteVarintSlow(uint64_t v);

  std::string buffer_;
};

// A bounds-checked cursor over bytes it does not own (they must outlive it).
// Every read either succeeds and advances, or returns kDataLoss and leaves the
// cursor where it was; nothing reads past the end.
class Reader {
 public:
  // Elements that decode from zero bytes (monostate, tuple<>, empty user
  // types) may take at most this much memory in all, per Reader, each counted
  // as at least kEmptyElementMinCharge bytes (so at most 2^20 of them): a
  // corrupt count of them cannot make a decoder allocate or loop without bound.
  static constexpr size_t kEmptyElementBudgetBytes = size_t{64} << 20;
  static constexpr size_t kEmptyElementMinCharge = 64;
  // User types (which may be recursive) nest at most this deep.
  static constexpr int kMaxNestingDepth = 256;

  explicit Reader(absl::string_view data)
      : begin_(data.data()),
        pos_(data.data()),
        end_(data.data() + data.size()) {}

  // Copies the next `n` bytes to `out`. `what` names them in the error.
  absl::Status ReadBytes(void* out, size_t n,
                         absl::string_view what = "bytes") {
    if (ABSL_PREDICT_FALSE(n > remaining())) {
      return internal::TruncatedError(n, remaining(), what);
    }
    if (n != 0) std::memcpy(out, pos_, n);
    pos_ += n;
    return absl::OkStatus();
  }

  // Reads an unsigned LEB128 varint. Rejects one that runs past the end,
  // overflows 64 bits, or is not minimal (an overlong encoding).
  absl::Status ReadVarint(uint64_t* v) {
    if (ABSL_PREDICT_TRUE(pos_ != end_ &&
                          (static_cast<uint8_t>(*pos_) & 0x80) == 0)) {
      *v = static_cast<uint8_t>(*pos_++);
      return absl::OkStatus();
    }
    return ReadVarintSlow(v);
  }

  // Reads sizeof(T) little-endian bytes as the arithmetic value `*v`. A bool
  // must be 0 or 1.
  template <typename T>
  absl::Status ReadFixed(T* v) {
    static_assert(std::is_arithmetic<T>::value,
                  "ReadFixed takes arithmetic types");
    internal::CheckEncodableArithmetic<T>();
    if (ABSL_PREDICT_FALSE(remaining() < sizeof(T))) {
      return internal::TruncatedError(sizeof(T), remaining(),
                                      internal::ArithmeticName<T>());
    }
    if constexpr (std::is_same<T, bool>::value) {
      const uint8_t byte = static_cast<uint8_t>(*pos_);
      if (ABSL_PREDICT_FALSE(byte > 1)) return internal::InvalidBoolError(byte);
      *v = byte != 0;
    } else if constexpr (internal::kLittleEndian) {
      std::memcpy(v, pos_, sizeof(T));
    } else {
      char bytes[sizeof(T)];
      std::reverse_copy(pos_, pos_ + sizeof(T), bytes);
      std::memcpy(v, bytes, sizeof(T));
    }
    pos_ += sizeof(T);
    return absl::OkStatus();
  }

  // The next `n` bytes, without copying; valid as long as the input is.
  absl::StatusOr<absl::string_view> ReadView(size_t n) {
    if (ABSL_PREDICT_FALSE(n > remaining())) {
      return internal::TruncatedError(n, remaining(), "bytes");
    }
    absl::string_view view(pos_, n);
    pos_ += n;
    return view;
  }

  // Bytes left to read.
  size_t remaining() const { return static_cast<size_t>(end_ - pos_); }
  // Bytes consumed so far.
  size_t position() const { return static_cast<size_t>(pos_ - begin_); }

  // Used by the container codecs (user codecs need not call these).
  // Accounts for one element of `memory_bytes` that decoded from zero bytes;
  // kDataLoss once kEmptyElementBudgetBytes is exceeded.
  absl::Status ChargeEmptyElement(size_t memory_bytes) {
    const size_t charge = std::max(memory_bytes, kEmptyElementMinCharge);
    if (ABSL_PREDICT_FALSE(charge > empty_budget_)) return EmptyBudgetError();
    empty_budget_ -= charge;
    return absl::OkStatus();
  }
  // Brackets the decoding of a nested user value; EnterNested fails beyond
  // kMaxNestingDepth, and then ExitNested must not be called.
  absl::Status EnterNested() {
    if (ABSL_PREDICT_FALSE(depth_ >= kMaxNestingDepth)) return NestingError();
    ++depth_;
    return absl::OkStatus();
  }
  void ExitNested() { --depth_; }

 private:
  absl::Status ReadVarintSlow(uint64_t* v);
  absl::Status EmptyBudgetError() const;
  absl::Status NestingError() const;

  const char* begin_;
  const char* pos_;
  const char* end_;
  size_t empty_budget_ = kEmptyElementBudgetBytes;
  int depth_ = 0;
};

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

namespace internal {

// When `*bytes` is exactly the encoding of one std::string of 64 KiB or more,
// turns it into that string in place (the bytes move down past the length
// prefix, in memory already mapped) and returns true; else leaves it alone.
inline bool TakeOverString(std::string* bytes) {
  constexpr size_t kTakeOverBytes = size_t{64} << 10;
  if (bytes->size() < kTakeOverBytes) return false;
  Reader r(*bytes);
  uint64_t n = 0;
  if (!r.ReadVarint(&n).ok() || n != r.remaining()) return false;
  const size_t prefix = r.position();
  std::memmove(&(*bytes)[0], bytes->data() + prefix, n);
  bytes->resize(n);
  return true;
}

}  // namespace internal

// DecodeValue for bytes the caller gives up. A std::string (or a
// std::tuple<std::string>, a task's argument tuple) of 64 KiB or more takes
// over the buffer of `bytes` instead of being copied into new memory; any
// other T, and any error, is exactly DecodeValue<T>(bytes).
template <typename T>
absl::StatusOr<T> DecodeOwnedValue(std::string bytes) {
  if constexpr (std::is_same<T, std::string>::value) {
    if (internal::TakeOverString(&bytes)) return bytes;
  } else if constexpr (std::is_same<T, std::tuple<std::string>>::value) {
    if (internal::TakeOverString(&bytes)) return T(std::move(bytes));
  }
  return DecodeValue<T>(bytes);
}

// How a task's argument tuple and its result travel (the blobs of wire::Call
// and wire::Outcome): as their codec encoding, except a lone std::string (a
// result of type std::string, or the argument tuple std::tuple<std::string>
// of a task with one std::string parameter), which is its bytes as they are,
// with no length prefix. Both ends know T from the task's signature (the
// worker's Hello lists them), so nothing marks which rule a blob follows. A
// big string then moves through the pool without being copied to add or
// strip a prefix: the worker sends the string its task returned, and the
// receiver's string takes over the received buffer (64 MiB echo: three
// copies fewer).
template <typename T>
inline constexpr bool kIsLoneString =
    std::is_same<T, std::string>::value ||
    std::is_same<T, std::tuple<std::string>>::value;

// Decodes a task's argument tuple or result (above) from bytes the caller
// gives up. Any bytes are a valid lone string.
template <typename T>
absl::StatusOr<T> DecodeTaskValue(std::string bytes) {
  if constexpr (kIsLoneString<T>) {
    return T(std::move(bytes));
  } else {
    return DecodeOwnedValue<T>(std::move(bytes));
  }
}

// DecodeTaskValue for bytes the caller keeps (an element of a packed Map
// chunk: serialization/packed.h).
template <typename T>
absl::StatusOr<T> DecodeTaskValueView(absl::string_view bytes) {
  if constexpr (kIsLoneString<T>) {
    return T(std::string(bytes));
  } else {
    return DecodeValue<T>(bytes);
  }
}

// The encoding of a task's result `v` (above). A result of type
// std::tuple<std::string> is a lone string too: its string's bytes.
template <typename T>
std::string EncodeTaskValue(T&& v) {
  using D = std::decay_t<T>;
  if constexpr (std::is_same<D, std::tuple<std::string>>::value) {
    return EncodeTaskValue(std::get<0>(std::forward<T>(v)));
  } else if constexpr (std::is_same<D, std::string>::value) {
    if constexpr (std::is_rvalue_reference<T&&>::value) {
      return std::move(v);
    } else {
      std::string out;
      internal::ReserveBig(&out, v.size());
      out.append(v);
      return out;
    }
  } else {
    return EncodeValue<D>(v);
  }
}

// The encoding of a task's argument tuple (above), for code that builds a
// wire::Call by hand (tests; executor/task.h's EncodeArgs is the pool's).
template <typename... A>
std::string EncodeTaskArgs(const std::tuple<A...>& args) {
  if constexpr (kIsLoneString<std::tuple<A...>>) {
    return std::get<0>(args);
  } else {
    return EncodeValue(args);
  }
}

}  // namespace procpool

// Codecs for the standard containers.
#include "serialization/codec_std.h"  // IWYU pragma: export

#endif  // PROCPOOL_SERIALIZATION_CODEC_H_
