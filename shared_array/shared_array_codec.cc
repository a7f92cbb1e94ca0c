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
  if (transfer->way() != ArrayTransfer::Way::kByReference) return false;
  absl::StatusOr<SharedArrayHandle> handle = buffer.Share();
  if (!handle.ok()) return false;  // by value: same values, one more copy
  w.WriteFixed(static_cast<uint8_t>(kByReference));
  w.WriteVarint(transfer->Add(buffer));
  const std::string bytes = EncodeHandle(*handle);
  w.WriteVarint(bytes.size());
  w.WriteBytes(bytes.data(), bytes.size());
  return true;
}

bool EncodeOutputCopy(Writer& w, const SharedBuffer& buffer) {
  ArrayTransfer* transfer = CurrentArrayTransfer();
  if (transfer == nullptr || !transfer->copies_outputs_back() ||
      buffer.mode() != SharedArrayMode::kOutput) {
    return false;
  }
  bool first = false;
  const size_t index = transfer->AddOutputCopy(buffer, &first);
  w.WriteFixed(static_cast<uint8_t>(kOutputCopy));
  w.WriteVarint(index);
  w.WriteFixed(static_cast<uint8_t>(first ? 1 : 0));
  if (first) {
    w.WriteVarint(buffer.byte_size() / buffer.element_size());
    w.WriteBytes(buffer.address(), buffer.byte_size());
  }
  return true;
}

absl::StatusOr<SharedBuffer> DecodeOutputCopy(Reader& r, size_t element_size,
                                              const std::string& type_name) {
  uint64_t index;
  RETURN_IF_ERROR(r.ReadVarint(&index));
  bool first = false;
  RETURN_IF_ERROR(r.ReadFixed(&first));
  ArrayTransfer* transfer = CurrentArrayTransfer();
  if (!first) {
    if (transfer == nullptr) {
      return absl::DataLossError(absl::StrCat(
          "output array ", index, " is named again outside a frame"));
    }
    return transfer->OutputCopy(index);
  }
  uint64_t count;
  RETURN_IF_ERROR(r.ReadVarint(&count));
  if (element_size == 0 || count > r.remaining() / element_size) {
    return absl::DataLossError(absl::StrCat(
        "truncated: an output array of ", count, " elements of ",
        element_size, " bytes, ", r.remaining(), " bytes left"));
  }
  absl::StatusOr<SharedBuffer> copy = SharedBuffer::Create(
      count, element_size, type_name, SharedArrayMode::kOutput);
  if (!copy.ok()) return copy.status();
  RETURN_IF_ERROR(
      r.ReadBytes(copy->address(), count * element_size, "output array"));
  if (transfer != nullptr) transfer->KeepOutputCopy(index, *copy);
  return copy;
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
