// Runs the authentication handshake (common/auth/handshake.h) over a KJ
// stream: the driver that moves its four steps' bytes, on the stream's event
// loop. Package-internal (KJ types).
#ifndef PROCPOOL_TRANSPORT_CAPNP_KJ_HANDSHAKE_H_
#define PROCPOOL_TRANSPORT_CAPNP_KJ_HANDSHAKE_H_

#include <string>

#include <kj/async-io.h>

#include "absl/status/status.h"
#include "common/auth/handshake.h"

namespace procpool {
namespace capnp_internal {

// Authenticates over `stream` (which must outlive the promise) and resolves to
// OK, or to why not: the handshake's kPermissionDenied, or kUnavailable
// "<peer_name> closed the connection during authentication" when the peer
// hung up first. I/O errors of the stream reject the promise (KJ exception).
kj::Promise<absl::Status> Authenticate(kj::AsyncIoStream& stream,
                                       auth::Handshake handshake,
                                       std::string peer_name);

}  // namespace capnp_internal
}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_CAPNP_KJ_HANDSHAKE_H_
