// libFuzzer target for the worker daemon's side of the authentication
// handshake (common/auth/handshake.h), played by an unauthenticated peer.
//
// Input: a mode byte, then bytes for that mode.
//
//   mode 0 (even): the peer's raw byte stream, as the daemon's child reads
//     it: its Hello (40 bytes), its Proof (32), its Verdict (1), then
//     whatever it sends next (its "first frames"). The worker side runs the
//     steps in the order the KJ driver (transport/capnp/kj_handshake.cc) does,
//     stopping where the stream ends or a step refuses. Checks: Prove() fails
//     only with kPermissionDenied, answers only a Hello with procpool's magic
//     and another nonce than ours, and then returns 32 bytes; Judge()
//     returns one byte, and never 'Y' (a peer without the key cannot answer a
//     fresh random nonce); Finish() is never OK, so nothing the peer sends
//     after the Verdict is ever read as a frame (the driver stops there).
//   mode 1 (odd): a real parent holding the key runs the handshake with the
//     worker side, and the input is XORed over what the parent sends (its
//     Hello, Proof and Verdict, in that order; a short input leaves the rest
//     as sent). Checks: a changed magic is refused (kPermissionDenied); the
//     worker side authenticates the parent iff the parent's Proof arrived
//     unchanged and the Verdict it reads is 'Y' (so never on a proof not made
//     with the key, and always when nothing was changed); the parent side
//     accepts the worker iff the nonce arrived unchanged (the worker's proof
//     answers the nonce it saw); every refusal is kPermissionDenied. Bytes past
//     the 73 of the masks are ignored.
//
// The frames that follow an authentication go through
// procpool::wire::DecodeMessage, which the wire target fuzzes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/auth/handshake.h"
#include "fuzz/fuzz_check.h"

namespace {

using procpool::auth::AuthRole;
using procpool::auth::Handshake;

constexpr char kKey[] = "the handshake fuzzer's key";

// The next `n` bytes of `stream` into `*out`; false if it ends first.
bool Take(absl::string_view* stream, size_t n, absl::string_view* out) {
  if (stream->size() < n) return false;
  *out = stream->substr(0, n);
  stream->remove_prefix(n);
  return true;
}

void RawPeer(absl::string_view stream) {
  absl::StatusOr<Handshake> worker =
      Handshake::Start(AuthRole::kWorker, kKey, "the parent at fuzz");
  FUZZ_CHECK(worker.ok(), worker.status().ToString());
  FUZZ_CHECK(worker->hello().size() == Handshake::kHelloSize);
  absl::string_view hello, proof, verdict;
  if (!Take(&stream, Handshake::kHelloSize, &hello)) return;  // hung up
  absl::StatusOr<std::string> our_proof = worker->Prove(hello);
  if (!our_proof.ok()) {
    FUZZ_CHECK(absl::IsPermissionDenied(our_proof.status()),
               our_proof.status().ToString());
    return;  // refused: nothing more is read
  }
  FUZZ_CHECK(our_proof->size() == Handshake::kProofSize);
  FUZZ_CHECK(hello.substr(0, Handshake::kMagicSize) ==
                 absl::string_view(Handshake::kMagic, Handshake::kMagicSize),
             "a Hello without procpool's magic was answered");
  FUZZ_CHECK(hello.substr(Handshake::kMagicSize) !=
                 worker->hello().substr(Handshake::kMagicSize),
             "our own nonce was answered (reflection)");
  if (!Take(&stream, Handshake::kProofSize, &proof)) return;
  const std::string our_verdict = worker->Judge(proof);
  FUZZ_CHECK(our_verdict.size() == Handshake::kVerdictSize);
  FUZZ_CHECK(our_verdict == "N", "a proof without the key was accepted");
  if (!Take(&stream, Handshake::kVerdictSize, &verdict)) return;
  const absl::Status finished = worker->Finish(verdict);
  FUZZ_CHECK(!finished.ok(), "a peer without the key was authenticated");
  FUZZ_CHECK(absl::IsPermissionDenied(finished), finished.ToString());
  // The driver stops here: `stream`'s rest (the peer's first frames) is
  // never read.
}

// `bytes` XOR the next bytes of `masks` (consumed); true if any was nonzero.
bool Mask(absl::string_view* masks, std::string* bytes) {
  bool changed = false;
  for (size_t i = 0; i < bytes->size() && !masks->empty(); ++i) {
    const char m = masks->front();
    masks->remove_prefix(1);
    (*bytes)[i] = static_cast<char>((*bytes)[i] ^ m);
    changed = changed || m != 0;
  }
  return changed;
}

void TamperedParent(absl::string_view masks) {
  absl::StatusOr<Handshake> worker =
      Handshake::Start(AuthRole::kWorker, kKey, "the parent at fuzz");
  absl::StatusOr<Handshake> parent =
      Handshake::Start(AuthRole::kParent, kKey, "the worker daemon");
  FUZZ_CHECK(worker.ok() && parent.ok());

  std::string magic = parent->hello().substr(0, Handshake::kMagicSize);
  std::string nonce = parent->hello().substr(Handshake::kMagicSize);
  const bool magic_changed = Mask(&masks, &magic);
  const bool nonce_changed = Mask(&masks, &nonce);
  const std::string parent_hello = magic + nonce;

  // Each side's step 2.
  absl::StatusOr<std::string> worker_proof = worker->Prove(parent_hello);
  absl::StatusOr<std::string> parent_proof = parent->Prove(worker->hello());
  FUZZ_CHECK(parent_proof.ok(), parent_proof.status().ToString());
  if (!worker_proof.ok()) {
    FUZZ_CHECK(magic_changed || nonce_changed,
               "the parent's own Hello was refused");
    FUZZ_CHECK(absl::IsPermissionDenied(worker_proof.status()),
               worker_proof.status().ToString());
    return;
  }
  FUZZ_CHECK(!magic_changed, "a Hello with another magic was answered");
  std::string sent_proof = *parent_proof;
  const bool proof_changed = Mask(&masks, &sent_proof);

  // Step 3.
  const std::string worker_verdict = worker->Judge(sent_proof);
  const std::string parent_verdict = parent->Judge(*worker_proof);
  FUZZ_CHECK((worker_verdict == "Y") == !proof_changed,
             "the worker judged the parent's proof wrongly");
  FUZZ_CHECK((parent_verdict == "Y") == !nonce_changed,
             "the parent judged the worker's proof wrongly");
  std::string sent_verdict = parent_verdict;
  const bool verdict_changed = Mask(&masks, &sent_verdict);

  // Step 4.
  const absl::Status worker_done = worker->Finish(sent_verdict);
  const absl::Status parent_done = parent->Finish(worker_verdict);
  // The worker authenticates the parent iff the proof made with the key
  // arrived as made and the verdict it read says yes.
  FUZZ_CHECK(worker_done.ok() == (!proof_changed && sent_verdict == "Y"),
             worker_done.ToString());
  if (!magic_changed && !nonce_changed && !proof_changed && !verdict_changed) {
    FUZZ_CHECK(worker_done.ok(), worker_done.ToString());
  }
  FUZZ_CHECK(parent_done.ok() == (!nonce_changed && !proof_changed),
             parent_done.ToString());
  if (!worker_done.ok()) {
    FUZZ_CHECK(absl::IsPermissionDenied(worker_done), worker_done.ToString());
  }
  if (!parent_done.ok()) {
    FUZZ_CHECK(absl::IsPermissionDenied(parent_done), parent_done.ToString());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view rest(reinterpret_cast<const char*>(data) + 1,
                               size - 1);
  if (data[0] % 2 == 0) {
    RawPeer(rest);
  } else {
    TamperedParent(rest);
  }
  return 0;
}
