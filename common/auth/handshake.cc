// The authentication handshake's steps; the protocol is in handshake.h.
#include "common/auth/handshake.h"

#include <errno.h>
#include <sys/random.h>

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/auth/hmac.h"
#include "common/posix_error.h"

namespace procpool {
namespace auth {
namespace {

constexpr char kVerdictAccepted = 'Y';
constexpr char kVerdictRefused = 'N';

absl::string_view Label(AuthRole role) {
  return role == AuthRole::kParent ? "procpool-auth/1 parent"
                                   : "procpool-auth/1 worker";
}

AuthRole Other(AuthRole role) {
  return role == AuthRole::kParent ? AuthRole::kWorker : AuthRole::kParent;
}

// HMAC(key, nonce || label): what `responder` sends for `nonce`.
std::string ProofFor(absl::string_view key, absl::string_view nonce,
                     AuthRole responder) {
  return HmacSha256(key, absl::StrCat(nonce, Label(responder)));
}

absl::StatusOr<std::string> RandomNonce() {
  std::string nonce(Handshake::kNonceSize, '\0');
  size_t filled = 0;
  while (filled < nonce.size()) {
    const ssize_t n = getrandom(&nonce[filled], nonce.size() - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return PosixError("authentication: getrandom", errno);
    }
    filled += static_cast<size_t>(n);
  }
  return nonce;
}

}  // namespace

constexpr char Handshake::kMagic[];
constexpr size_t Handshake::kMagicSize;
constexpr size_t Handshake::kNonceSize;
constexpr size_t Handshake::kHelloSize;
constexpr size_t Handshake::kProofSize;
constexpr size_t Handshake::kVerdictSize;

absl::StatusOr<Handshake> Handshake::Start(AuthRole role, std::string key,
                                           std::string peer_name) {
  if (key.empty()) {
    return absl::InvalidArgumentError(
        "authentication: the key is empty; give both sides the same secret "
        "(a file of random bytes, e.g. `head -c 32 /dev/urandom | base64 > "
        "key; chmod 600 key`, named by --auth_key_file)");
  }
  absl::StatusOr<std::string> nonce = RandomNonce();
  if (!nonce.ok()) return nonce.status();
  return Handshake(role, std::move(key), std::move(peer_name),
                   *std::move(nonce));
}

Handshake::Handshake(AuthRole role, std::string key, std::string peer_name,
                     std::string nonce)
    : role_(role),
      key_(std::move(key)),
      peer_name_(std::move(peer_name)),
      hello_(absl::StrCat(absl::string_view(kMagic, kMagicSize), nonce)) {}

absl::StatusOr<std::string> Handshake::Prove(absl::string_view peer_hello) {
  if (peer_hello.size() != kHelloSize ||
      peer_hello.substr(0, kMagicSize) != absl::string_view(kMagic, kMagicSize)) {
    return absl::PermissionDeniedError(absl::StrCat(
        peer_name_, " did not start procpool's authentication handshake (its "
        "first bytes are \"",
        absl::CHexEscape(peer_hello.substr(0, kMagicSize)),
        "\", expected \"", kMagic,
        "\"): it is not a procpool peer of this version, or only one side "
        "uses TLS"));
  }
  peer_nonce_ = std::string(peer_hello.substr(kMagicSize));
  if (ConstantTimeEquals(peer_nonce_, hello_.substr(kMagicSize))) {
    return absl::PermissionDeniedError(absl::StrCat(
        peer_name_, " sent our own challenge back (a reflection attempt)"));
  }
  return ProofFor(key_, peer_nonce_, role_);
}

std::string Handshake::Judge(absl::string_view peer_proof) {
  const std::string expected =
      ProofFor(key_, hello_.substr(kMagicSize), Other(role_));
  accepted_peer_ = !peer_nonce_.empty() &&
                   ConstantTimeEquals(expected, peer_proof);
  return std::string(1, accepted_peer_ ? kVerdictAccepted : kVerdictRefused);
}

absl::Status Handshake::Finish(absl::string_view peer_verdict) const {
  const bool accepted_us =
      peer_verdict.size() == kVerdictSize && peer_verdict[0] == kVerdictAccepted;
  if (accepted_peer_ && accepted_us) return absl::OkStatus();
  if (!accepted_peer_ && !accepted_us) {
    return absl::PermissionDeniedError(
        absl::StrCat(peer_name_, " rejected our key, and its proof does not "
                                 "match our key: the two keys differ"));
  }
  if (!accepted_us) {
    return absl::PermissionDeniedError(
        absl::StrCat(peer_name_, " rejected our key (though its proof matches "
                                 "our key: is it of the same role as we?)"));
  }
  return absl::PermissionDeniedError(
      absl::StrCat(peer_name_, "'s proof does not match our key (though it "
                               "accepted ours: is it of the same role as we?)"));
}

}  // namespace auth
}  // namespace procpool
