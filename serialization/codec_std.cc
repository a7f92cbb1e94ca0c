#include "serialization/codec_std.h"

#include "absl/strings/str_cat.h"

namespace procpool {
namespace internal {

absl::Status CountError(uint64_t count, size_t min_size, size_t left,
                        absl::string_view signature) {
  return absl::DataLossError(absl::StrCat(
      "truncated or corrupt: ", signature, " of ", count,
      " elements needs at least ", min_size, " bytes each, ", left, " left"));
}

absl::Status DuplicateKeyError(absl::string_view signature) {
  return absl::DataLossError(absl::StrCat("duplicate key in ", signature));
}

absl::Status InvalidTagError(absl::string_view what, uint64_t tag,
                             uint64_t limit, absl::string_view signature) {
  return absl::DataLossError(absl::StrCat("invalid ", what, " ", tag, " for ",
                                          signature, " (want 0 to ", limit - 1,
                                          ")"));
}

absl::Status PaddingBitsError(absl::string_view signature) {
  return absl::DataLossError(
      absl::StrCat("nonzero padding bits at the end of ", signature));
}

}  // namespace internal
}  // namespace procpool
