#include "shared_array/shared_array.h"

#include <cstring>

namespace procpool {
namespace shared_array_internal {

std::string StableTypeName(const char* mangled) {
  const size_t n = std::strlen(mangled);
  if (n > 0 && n <= kMaxTypeNameBytes) return std::string(mangled, n);
  uint64_t hash = 14695981039346656037ull;  // FNV-1a, 64 bits
  for (size_t i = 0; i < n; ++i) {
    hash ^= static_cast<uint8_t>(mangled[i]);
    hash *= 1099511628211ull;
  }
  return absl::StrCat("h:", absl::Hex(hash, absl::kZeroPad16));
}

void ThrowCreateError(const absl::Status& status) {
  throw Error(std::string(status.message()));
}

}  // namespace shared_array_internal
}  // namespace procpool
