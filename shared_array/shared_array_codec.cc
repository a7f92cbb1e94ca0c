#include "shared_array/shared_array_codec.h"

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace procpool {
namespace shared_array_internal {

bool EncodeByReference(Writer& w, const SharedBuffer& buffer) {
  ArrayTransfer* transfer = CurrentArrayTransfer();
  if (transfer == nullptr) return false;
  if (transfer->way() != ArrayTransfer::Way::kByReference) {
    // A copy's writes would stay where it goes.
    if (buffer.mode() == SharedArrayMode::kOutput) transfer->NoteOutputByValue();
    return false;
  }
  absl::StatusOr<SharedArrayHandle> handle = buffer.Share();
  if (!handle.ok()) return false;  // by value: same values, one more copy
  w.WriteFixed(static_cast<uint8_t>(kByReference));
  w.WriteVarint(transfer->Add(buffer));
  const std::string bytes = EncodeHandle(*handle);
  w.WriteVarint(bytes.size());
  w.WriteBytes(bytes.data(), bytes.size());
  return true;
}

absl::StatusOr<SharedBuffer> DecodeByReference(Reader& r) {
  uint64_t index;
  RETURN_IF_ERROR(r.ReadVarint(&index));
  std::string bytes;
  RETURN_IF_ERROR(Codec<std::string>::Decode(r, &bytes));
  absl::StatusOr<SharedArrayHandle> handle = DecodeHandle(bytes);
  if (!handle.ok()) return handle.status();
  ArrayTransfer* transfer = CurrentArrayTransfer();
  if (transfer == nullptr) {
    return absl::DataLossError(
        "a shared array was sent by reference, but no descriptors came with "
        "its frame");
  }
  return transfer->Resolve(*handle, index);
}

absl::Status NoteArrayError(absl::Status error) {
  if (ArrayTransfer* transfer = CurrentArrayTransfer()) {
    transfer->NoteArrayError(error);
  }
  return error;
}

absl::Status DecodeByValueHeader(Reader& r, size_t element_size,
                                 SharedArrayMode* mode, size_t* count) {
  uint8_t m = 0;
  RETURN_IF_ERROR(r.ReadFixed(&m));
  if (m != static_cast<uint8_t>(SharedArrayMode::kImmutable) &&
      m != static_cast<uint8_t>(SharedArrayMode::kOutput)) {
    return absl::DataLossError(
        absl::StrCat("invalid shared array mode ", m));
  }
  uint64_t n;
  RETURN_IF_ERROR(r.ReadVarint(&n));
  if (element_size != 0 && n > r.remaining() / element_size) {
    return absl::DataLossError(absl::StrCat(
        "truncated: a shared array of ", n, " elements of ", element_size,
        " bytes, ", r.remaining(), " bytes left"));
  }
  *mode = static_cast<SharedArrayMode>(m);
  *count = static_cast<size_t>(n);
  return absl::OkStatus();
}

}  // namespace shared_array_internal
}  // namespace procpool
