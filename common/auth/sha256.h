// SHA-256 (FIPS 180-4), written here so that procpool's authentication needs
// no crypto library: the project's dependencies are Abseil, Cap'n Proto, glog
// and GoogleTest only.
//
// Example:
//   std::string digest = Sha256::Hash("abc");  // 32 raw bytes
//   Sha256 h;
//   h.Update("a");
//   h.Update("bc");
//   std::string same = h.Finish();
//
// Checked against the FIPS 180-4 / NIST CAVP vectors in sha256_test.cc. Not
// hardened against side channels beyond what SHA-256 needs (it has no
// secret-dependent branches or table lookups); the constant-time comparison
// of MACs is ConstantTimeEquals() in hmac.h.
//
// Thread safety: a Sha256 object is used by one thread at a time.
#ifndef PROCPOOL_COMMON_AUTH_SHA256_H_
#define PROCPOOL_COMMON_AUTH_SHA256_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace procpool {
namespace auth {

class Sha256 {
 public:
  static constexpr size_t kDigestSize = 32;
  static constexpr size_t kBlockSize = 64;

  Sha256();

  // Appends `data` to the message.
  void Update(absl::string_view data);

  // The digest (kDigestSize raw bytes) of everything appended. The object is
  // then reset to hash a new message.
  std::string Finish();

  // The digest of `data`.
  static std::string Hash(absl::string_view data);

 private:
  void Reset();
  void Compress(const uint8_t* block);

  uint32_t state_[8];
  uint8_t buffer_[kBlockSize];
  size_t buffered_ = 0;     // bytes in buffer_
  uint64_t length_ = 0;     // message length in bytes
};

}  // namespace auth
}  // namespace procpool

#endif  // PROCPOOL_COMMON_AUTH_SHA256_H_
