// How a task's argument tuple and its result travel (the blobs of wire::Call
// and wire::Outcome), on top of the value codec (codec.h).
//
// The lone-string rule: a task value is its codec encoding, except a lone
// std::string (a result of type std::string, or the argument tuple
// std::tuple<std::string> of a task with one std::string parameter), which is
// its bytes as they are, with no length prefix (protocol 3, wire.h). Both ends
// know T from the task's signature (the worker's Hello lists them), so nothing
// marks which rule a blob follows. A big string then moves through the pool
// without being copied to add or strip a prefix: the worker sends the string
// its task returned, and the receiver's string takes over the received buffer.
//
// Owned decoding: the decoders that take `std::string bytes` by value are for
// bytes the caller gives up; a big string decoded from them takes over their
// buffer (its bytes moved down in memory already mapped) instead of being
// copied into new memory. Their results are otherwise those of DecodeValue.
//
// Example:
//   std::string blob = procpool::EncodeTaskValue(std::string(1 << 20, 'x'));
//   // blob is the string itself (moved, not copied, from an rvalue)
//   ASSIGN_OR_RETURN(std::string back,
//                    procpool::DecodeTaskValue<std::string>(std::move(blob)));
//
// Thread safety: the functions are thread-safe (they share nothing).
#ifndef PROCPOOL_SERIALIZATION_TASK_VALUE_H_
#define PROCPOOL_SERIALIZATION_TASK_VALUE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "serialization/codec.h"

namespace procpool {

// Whether a task value of type T follows the lone-string rule (above).
template <typename T>
inline constexpr bool kIsLoneString =
    std::is_same<T, std::string>::value ||
    std::is_same<T, std::tuple<std::string>>::value;

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

// Decodes a task's argument tuple or result (the lone-string rule) from bytes
// the caller gives up. Any bytes are a valid lone string.
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

// The encoding of a task's result `v` (the lone-string rule). A result of type
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

// The encoding of a task's argument tuple (the lone-string rule), for code that
// builds a wire::Call by hand (tests; core/task.h's EncodeArgs is the
// pool's).
template <typename... A>
std::string EncodeTaskArgs(const std::tuple<A...>& args) {
  if constexpr (kIsLoneString<std::tuple<A...>>) {
    return std::get<0>(args);
  } else {
    return EncodeValue(args);
  }
}

}  // namespace procpool

#endif  // PROCPOOL_SERIALIZATION_TASK_VALUE_H_
