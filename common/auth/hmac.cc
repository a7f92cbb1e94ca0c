// HMAC-SHA256 and the constant-time comparison, both OpenSSL's (libcrypto,
// already linked for kj-tls); see hmac.h.
#include "common/auth/hmac.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "glog/logging.h"

namespace procpool {
namespace auth {

std::string HmacSha256(absl::string_view key, absl::string_view message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  // HMAC() takes a null data pointer for an empty message; a key of length 0
  // must still be a valid pointer.
  static const unsigned char kEmpty = 0;
  const unsigned char* data =
      message.empty() ? &kEmpty
                      : reinterpret_cast<const unsigned char*>(message.data());
  const void* key_data = key.empty() ? static_cast<const void*>(&kEmpty)
                                     : static_cast<const void*>(key.data());
  CHECK(HMAC(EVP_sha256(), key_data, static_cast<int>(key.size()), data,
             message.size(), mac, &length) != nullptr)
      << "OpenSSL's HMAC-SHA256 failed";
  CHECK_EQ(length, 32u);
  return std::string(reinterpret_cast<const char*>(mac), length);
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace auth
}  // namespace procpool
