// libFuzzer target for the shared-array handle decoder (shared_array/
// handle.h), which a worker runs on bytes from its parent and the parent on
// bytes from a worker.
//
// Input: the bytes of a handle as they travel (shared_array_codec.h carries
// them inside a value). Checks: DecodeHandle never crashes and fails only with
// kDataLoss; what it accepts is canonical (EncodeHandle of it gives the input
// back) and obeys the format's bounds (a whole number of elements, a size at
// most kMaxHandleBytes, a pid and serial > 0); CheckHandleType refuses every
// type name but its own, with kInvalidArgument.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fuzz/fuzz_check.h"
#include "shared_array/handle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<procpool::SharedArrayHandle> h =
      procpool::DecodeHandle(bytes);
  if (!h.ok()) {
    FUZZ_CHECK(h.status().code() == absl::StatusCode::kDataLoss,
               h.status().ToString());
    return 0;
  }
  FUZZ_CHECK(procpool::EncodeHandle(*h) == bytes, "not canonical");
  FUZZ_CHECK(h->element_size > 0 && h->byte_size % h->element_size == 0);
  FUZZ_CHECK(h->byte_size <= procpool::kMaxHandleBytes);
  FUZZ_CHECK(h->id.pid > 0 && h->id.serial > 0);
  FUZZ_CHECK(procpool::CheckHandleType(*h, h->type_name, h->element_size).ok());
  const absl::Status other =
      procpool::CheckHandleType(*h, h->type_name + "x", h->element_size);
  FUZZ_CHECK(other.code() == absl::StatusCode::kInvalidArgument,
             other.ToString());
  return 0;
}
