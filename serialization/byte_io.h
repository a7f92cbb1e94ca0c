// The byte writer and reader under the value codec (codec.h): Writer appends
// bytes to a string it owns, Reader is a bounds-checked cursor over bytes it
// does not own. Codec<T> and the user codecs write and read through them.
//
// The primitives of the wire format (codec.h has the encoding of each type):
//   WriteVarint/ReadVarint  unsigned LEB128: 1 to 10 bytes, minimal (never
//                           ending in a 0x00 continuation byte)
//   WriteFixed/ReadFixed    an arithmetic value as sizeof(T) little-endian
//                           bytes (two's complement / IEEE 754); a bool is
//                           one byte, 0 or 1
//   WriteBytes/ReadBytes    raw bytes
//
// Bad input. A Reader never reads past its end and never crashes: a read that
// fails returns kDataLoss saying what was wanted and what was left
// ("truncated: need 8 bytes for f64, 3 left", "invalid bool byte 0x07",
// "overlong varint") and leaves the cursor where it was. It also carries the
// two budgets decoders use against crafted input: memory for elements that
// decode from zero bytes (kEmptyElementBudgetBytes) and the nesting depth of
// user types (kMaxNestingDepth).
//
// Example:
//   procpool::Writer w;
//   w.WriteVarint(300);
//   w.WriteFixed(int32_t{-1});
//   std::string bytes = w.Release();  // "\xac\x02\xff\xff\xff\xff"
//
//   procpool::Reader r(bytes);
//   uint64_t n;
//   int32_t i;
//   RETURN_IF_ERROR(r.ReadVarint(&n));
//   RETURN_IF_ERROR(r.ReadFixed(&i));
//
// Thread safety: a Writer or a Reader is used by one thread at a time.
#ifndef PROCPOOL_SERIALIZATION_BYTE_IO_H_
#define PROCPOOL_SERIALIZATION_BYTE_IO_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/base/config.h"
#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

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
// kBigBufferBytes or more comes from common/big_buffers.h's recycled buffers
// when `*s` holds little yet, and is otherwise advised for transparent huge
// pages before any byte of it is touched (tools/BENCHMARKS.md, "Large
// payloads", says why).
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

}  // namespace procpool

#endif  // PROCPOOL_SERIALIZATION_BYTE_IO_H_
