// The challenge-response handshake that authenticates a parent and a remote
// worker to each other over a shared key, in the spirit of Python
// multiprocessing's authkey: the key never crosses the wire, and each side
// proves it holds the key by answering a fresh random challenge of the other.
//
// Both sides run the same four steps, and neither waits for the other to
// speak first (so a peer that speaks first cannot deadlock it):
//
//   1. send Hello   = kMagic ("PPAUTH01") + 32-byte nonce from getrandom()
//   2. read the peer's Hello;
//      send Proof   = HMAC-SHA256(key, peer_nonce || our role's label)
//   3. read the peer's Proof; compare it (ConstantTimeEquals) with
//                    HMAC-SHA256(key, our_nonce || the peer role's label);
//      send Verdict = 'Y' (accepted) or 'N' (refused), one byte
//   4. read the peer's Verdict.
//
// Authenticated iff we accepted the peer's proof and it accepted ours. The
// labels ("procpool-auth/1 parent", "procpool-auth/1 worker") make a proof
// valid for one direction only: a peer that reflects our own challenge back
// (or a parent connected to another parent) cannot pass our proof off as its
// own; a Hello that repeats our nonce is refused outright. The verdict byte
// lets the side whose key is wrong say so ("the worker daemon rejected our
// key") instead of only "the connection closed".
//
// What it does not do: protect the bytes that follow. On a plain TCP
// connection an active man in the middle can relay a handshake and then
// inject frames; use TLS (the capnp remote channel's use_tls) on networks you
// do not trust. The key should be long and random (key_file.h).
//
// The class does no I/O: a driver (transport/capnp's remote channel) moves the
// bytes, which keeps it testable in memory and usable over TLS streams.
//
// Example (one side; the other is the same with the other role):
//   ASSIGN_OR_RETURN(Handshake h, Handshake::Start(AuthRole::kParent, key,
//                                                  "the worker daemon"));
//   Write(h.hello());
//   ASSIGN_OR_RETURN(std::string proof, h.Prove(Read(Handshake::kHelloSize)));
//   Write(proof);
//   Write(h.Judge(Read(Handshake::kProofSize)));
//   RETURN_IF_ERROR(h.Finish(Read(Handshake::kVerdictSize)));
#ifndef PROCPOOL_COMMON_AUTH_HANDSHAKE_H_
#define PROCPOOL_COMMON_AUTH_HANDSHAKE_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace procpool {
namespace auth {

// Which end of a connection we are. The parent connects; the worker (a child
// of the worker daemon) accepts.
enum class AuthRole { kParent, kWorker };

class Handshake {
 public:
  static constexpr char kMagic[] = "PPAUTH01";  // 8 bytes on the wire
  static constexpr size_t kMagicSize = 8;
  static constexpr size_t kNonceSize = 32;
  static constexpr size_t kHelloSize = kMagicSize + kNonceSize;
  static constexpr size_t kProofSize = 32;
  static constexpr size_t kVerdictSize = 1;

  // Begins a handshake as `role` with `key`. `peer_name` names the other side
  // in error messages ("the worker daemon", "the parent 10.0.0.1:5123").
  // kInvalidArgument if `key` is empty; kInternal if getrandom() fails.
  static absl::StatusOr<Handshake> Start(AuthRole role, std::string key,
                                         std::string peer_name);

  // Step 1: the bytes to send first (kHelloSize).
  const std::string& hello() const { return hello_; }

  // Step 2: takes the peer's Hello (kHelloSize bytes) and returns our Proof
  // (kProofSize bytes) to send. kPermissionDenied if it is not a procpool
  // Hello or repeats our own nonce.
  absl::StatusOr<std::string> Prove(absl::string_view peer_hello);

  // Step 3: takes the peer's Proof and returns our Verdict (kVerdictSize
  // bytes) to send. Call after Prove().
  std::string Judge(absl::string_view peer_proof);

  // Step 4: takes the peer's Verdict. OK if both sides accepted; otherwise
  // kPermissionDenied saying who refused whom ("the worker daemon rejected our
  // key, and its proof does not match our key: the two keys differ").
  absl::Status Finish(absl::string_view peer_verdict) const;

 private:
  Handshake(AuthRole role, std::string key, std::string peer_name,
            std::string nonce);

  AuthRole role_;
  std::string key_;
  std::string peer_name_;
  std::string hello_;        // kMagic + our nonce
  std::string peer_nonce_;   // set by Prove()
  bool accepted_peer_ = false;  // set by Judge()
};

}  // namespace auth
}  // namespace procpool

#endif  // PROCPOOL_COMMON_AUTH_HANDSHAKE_H_
