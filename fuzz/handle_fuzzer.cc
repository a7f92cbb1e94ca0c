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
//
// The same bytes also go to the other decoder of shared-array bytes that a
// peer writes: OutputWrites::Apply (the changes a worker sends back for the
// copies of output arrays), over two output arrays of 16 and 64 bytes. It
// fails only with kDataLoss, and then writes nothing.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fuzz/fuzz_check.h"
#include "shared_array/handle.h"
#include "shared_array/output_writes.h"
#include "shared_array/shared_array.h"

namespace {

void CheckOutputWrites(absl::string_view bytes) {
  using procpool::SharedArray;
  using procpool::SharedArrayMode;
  static SharedArray<uint8_t>* const small =
      new SharedArray<uint8_t>(16, SharedArrayMode::kOutput);
  static SharedArray<uint8_t>* const big =
      new SharedArray<uint8_t>(64, SharedArrayMode::kOutput);
  for (auto* a : {small, big}) {
    for (uint8_t& b : *a) b = 0xAB;
  }
  const absl::Status s =
      procpool::OutputWrites::Apply(bytes, {small->buffer(), big->buffer()});
  if (s.ok()) return;
  FUZZ_CHECK(s.code() == absl::StatusCode::kDataLoss, s.ToString());
  for (auto* a : {small, big}) {
    for (uint8_t b : *a) FUZZ_CHECK(b == 0xAB, "written before refused");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  CheckOutputWrites(bytes);
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
