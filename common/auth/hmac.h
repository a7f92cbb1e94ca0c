// HMAC-SHA256 (RFC 2104 over FIPS 180-4 SHA-256) and a constant-time
// comparison, for procpool's challenge-response authentication (handshake.h),
// both from OpenSSL (HMAC with EVP_sha256, CRYPTO_memcmp): no cryptography
// is written here.
//
// Example:
//   std::string mac = HmacSha256(key, message);  // 32 raw bytes
//   if (!ConstantTimeEquals(mac, received)) ...
//
// Checked against the RFC 4231 vectors in hmac_test.cc.
#ifndef PROCPOOL_COMMON_AUTH_HMAC_H_
#define PROCPOOL_COMMON_AUTH_HMAC_H_

#include <string>

#include "absl/strings/string_view.h"

namespace procpool {
namespace auth {

// HMAC-SHA256 of `message` under `key` (any length; keys longer than a SHA-256
// block are hashed first, as RFC 2104 says). Returns 32 raw bytes.
std::string HmacSha256(absl::string_view key, absl::string_view message);

// True if `a` and `b` hold the same bytes. Its running time depends on the
// lengths only, never on where the contents differ (a MAC must not be compared
// with memcmp, whose early exit leaks how many leading bytes matched):
// OpenSSL's CRYPTO_memcmp.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace auth
}  // namespace procpool

#endif  // PROCPOOL_COMMON_AUTH_HMAC_H_
