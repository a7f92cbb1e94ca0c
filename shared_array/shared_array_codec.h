// The value codec's Codec<SharedArray<T>> (serialization/codec.h): a shared
// array as a task argument, a task result, or inside either (a vector of
// arrays, a struct's field).
//
// Wire format (after codec.h's conventions):
//   u8 0                      an empty SharedArray (default-constructed)
//   u8 1, varint index, string handle
//                             by reference: shared_array/handle.h's encoding,
//                             and the index of its memfd among the
//                             descriptors beside the frame (transfer.h)
//   u8 2, u8 mode, varint count, count * sizeof(T) bytes
//                             by value: the elements as they are in memory
//   u8 3, varint index, u8 first, (if first) varint count, the bytes
//                             an output array by value whose writes come
//                             back (ArrayTransfer::CopyOutputsBack): its
//                             index among the frame's output arrays; its
//                             bytes at its first mention in the frame
// Which one the encoder writes is CurrentArrayTransfer()'s way. By reference,
// the array is shared first (an immutable array is sealed: shared_array.h's
// write rules); if it cannot be (no descriptor left to reopen it read-only),
// it goes by value. By value, the receiver gets a new array of the same type,
// mode and elements (a copy). An output array sent by value as an argument
// (tag 3) is one copy per frame in the receiver, whatever the times it is
// named, and the transfer keeps it to send its changes back.
//
// Decoding checks what it is given: a forged, stale or mismatched handle, a
// descriptor index that did not come with the frame, another element type,
// or a count the remaining bytes cannot hold is an error that fails the one
// task (kDataLoss or kInvalidArgument), never a crash.
#ifndef PROCPOOL_SHARED_ARRAY_SHARED_ARRAY_CODEC_H_
#define PROCPOOL_SHARED_ARRAY_SHARED_ARRAY_CODEC_H_

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "serialization/codec.h"
#include "shared_array/handle.h"
#include "shared_array/shared_array.h"
#include "shared_array/transfer.h"

namespace procpool {

namespace shared_array_internal {

enum WireTag : uint8_t {
  kEmpty = 0,
  kByReference = 1,
  kByValue = 2,
  kOutputCopy = 3,
};

// By reference if the current transfer says so and the buffer can be
// shared: writes tag 1 and returns true.
bool EncodeByReference(Writer& w, const SharedBuffer& buffer);
// An output array whose writes come back, if the current transfer says so
// (by value, CopyOutputsBack): writes tag 3 and returns true.
bool EncodeOutputCopy(Writer& w, const SharedBuffer& buffer);
// Decodes tag 3: the receiver's copy of the frame's output array (made and
// kept at its first mention; without a transfer, a plain copy).
absl::StatusOr<SharedBuffer> DecodeOutputCopy(Reader& r, size_t element_size,
                                              const std::string& type_name);
// Decodes tag 1's index and handle and resolves them through the current
// transfer.
absl::StatusOr<SharedBuffer> DecodeByReference(Reader& r);
// Notes `error` with the current transfer (ArrayTransfer::NoteArrayError),
// if any, and returns it.
absl::Status NoteArrayError(absl::Status error);
// Reads tag 2's mode and count, checking that count elements of
// `element_size` bytes remain.
absl::Status DecodeByValueHeader(Reader& r, size_t element_size,
                                 SharedArrayMode* mode, size_t* count);

}  // namespace shared_array_internal

template <typename T>
struct Codec<SharedArray<T>> {
  static constexpr size_t kMinWireSize = 1;

  static void Encode(Writer& w, const SharedArray<T>& a) {
    using namespace shared_array_internal;  // NOLINT: the tags
    if (!a.buffer()) {
      w.WriteFixed(static_cast<uint8_t>(kEmpty));
      return;
    }
    if (EncodeByReference(w, a.buffer())) return;
    if (EncodeOutputCopy(w, a.buffer())) return;
    w.WriteFixed(static_cast<uint8_t>(kByValue));
    w.WriteFixed(static_cast<uint8_t>(a.mode()));
    w.WriteVarint(a.size());
    w.WriteBytes(a.data(), a.size() * sizeof(T));
  }

  static absl::Status Decode(Reader& r, SharedArray<T>* a) {
    using namespace shared_array_internal;  // NOLINT: the tags
    uint8_t tag = 0;
    RETURN_IF_ERROR(r.ReadFixed(&tag));
    switch (tag) {
      case kEmpty:
        *a = SharedArray<T>();
        return absl::OkStatus();
      case kByReference:
      case kOutputCopy: {
        absl::StatusOr<SharedBuffer> buffer =
            tag == kByReference
                ? DecodeByReference(r)
                : DecodeOutputCopy(r, sizeof(T), SharedArrayTypeName<T>());
        absl::StatusOr<SharedArray<T>> array =
            buffer.ok() ? SharedArray<T>::FromBuffer(*std::move(buffer))
                        : absl::StatusOr<SharedArray<T>>(buffer.status());
        if (!array.ok()) return NoteArrayError(array.status());
        *a = *std::move(array);
        return absl::OkStatus();
      }
      case kByValue: {
        SharedArrayMode mode;
        size_t count;
        RETURN_IF_ERROR(DecodeByValueHeader(r, sizeof(T), &mode, &count));
        absl::StatusOr<SharedArray<T>> array =
            SharedArray<T>::Create(count, mode);
        if (!array.ok()) return array.status();
        RETURN_IF_ERROR(
            r.ReadBytes(array->data(), count * sizeof(T), "shared array"));
        *a = *std::move(array);
        return absl::OkStatus();
      }
      default:
        return absl::DataLossError(
            absl::StrCat("invalid shared array tag ", tag));
    }
  }

  static std::string Signature() {
    return absl::StrCat("shared_array<", SharedArrayTypeName<T>(), ">");
  }
};

}  // namespace procpool

#endif  // PROCPOOL_SHARED_ARRAY_SHARED_ARRAY_CODEC_H_
