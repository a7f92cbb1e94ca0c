// The handshake's driver over a KJ stream; see kj_handshake.h.
#include "transport/capnp/kj_handshake.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace procpool {
namespace capnp_internal {
namespace {

using auth::Handshake;

// What one handshake keeps alive across its steps.
struct State {
  State(kj::AsyncIoStream& s, Handshake h, std::string name)
      : stream(s), handshake(std::move(h)), peer_name(std::move(name)) {}

  kj::AsyncIoStream& stream;
  Handshake handshake;
  std::string peer_name;
  std::string out;  // the step's bytes being written
  char in[Handshake::kHelloSize];

  // Writes `bytes`, then reads exactly `size` bytes into `in`; resolves to
  // false if the peer hung up first.
  kj::Promise<bool> Exchange(std::string bytes, size_t size) {
    out = std::move(bytes);
    return stream.write(out.data(), out.size()).then([this, size] {
      return stream.tryRead(in, size, size).then(
          [size](size_t n) { return n == size; });
    });
  }

  absl::Status Closed(absl::string_view step) const {
    return absl::UnavailableError(absl::StrCat(
        peer_name, " closed the connection during authentication (", step,
        "): it refused us, or it is not a procpool peer of this version, or "
        "only one side uses TLS"));
  }
};

}  // namespace

kj::Promise<absl::Status> Authenticate(kj::AsyncIoStream& stream,
                                       Handshake handshake,
                                       std::string peer_name) {
  auto state = kj::heap<State>(stream, std::move(handshake),
                               std::move(peer_name));
  State& s = *state;
  return s.Exchange(s.handshake.hello(), Handshake::kHelloSize)
      .then([&s](bool got_hello) -> kj::Promise<absl::Status> {
        if (!got_hello) return s.Closed("before its hello");
        absl::StatusOr<std::string> proof = s.handshake.Prove(
            absl::string_view(s.in, Handshake::kHelloSize));
        if (!proof.ok()) return proof.status();
        return s.Exchange(*std::move(proof), Handshake::kProofSize)
            .then([&s](bool got_proof) -> kj::Promise<absl::Status> {
              if (!got_proof) return s.Closed("before its proof");
              std::string verdict = s.handshake.Judge(
                  absl::string_view(s.in, Handshake::kProofSize));
              return s.Exchange(std::move(verdict), Handshake::kVerdictSize)
                  .then([&s](bool got_verdict) -> absl::Status {
                    if (!got_verdict) return s.Closed("before its verdict");
                    return s.handshake.Finish(
                        absl::string_view(s.in, Handshake::kVerdictSize));
                  });
            });
      })
      .attach(kj::mv(state));
}

}  // namespace capnp_internal
}  // namespace procpool
