// HMAC-SHA256 (RFC 2104); see hmac.h.
#include "common/auth/hmac.h"

#include <cstdint>

#include "common/auth/sha256.h"

namespace procpool {
namespace auth {

std::string HmacSha256(absl::string_view key, absl::string_view message) {
  std::string block_key = key.size() > Sha256::kBlockSize
                              ? Sha256::Hash(key)
                              : std::string(key);
  block_key.resize(Sha256::kBlockSize, '\0');
  std::string inner_pad(Sha256::kBlockSize, '\0');
  std::string outer_pad(Sha256::kBlockSize, '\0');
  for (size_t i = 0; i < Sha256::kBlockSize; ++i) {
    inner_pad[i] = static_cast<char>(block_key[i] ^ 0x36);
    outer_pad[i] = static_cast<char>(block_key[i] ^ 0x5c);
  }
  Sha256 inner;
  inner.Update(inner_pad);
  inner.Update(message);
  const std::string inner_digest = inner.Finish();
  Sha256 outer;
  outer.Update(outer_pad);
  outer.Update(inner_digest);
  return outer.Finish();
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  volatile uint8_t difference = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    difference |= static_cast<uint8_t>(a[i] ^ b[i]);
  }
  return difference == 0;
}

}  // namespace auth
}  // namespace procpool
