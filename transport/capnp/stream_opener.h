// How a remote channel's connection is made: the interface between the
// openers in remote.cc (connect or accept, TLS, authentication) and the
// channels that run over what they open (threaded_channel.h: Cap'n Proto RPC;
// framed_remote.h: frames on the bare socket). Package-internal (KJ types).
#ifndef PROCPOOL_TRANSPORT_CAPNP_STREAM_OPENER_H_
#define PROCPOOL_TRANSPORT_CAPNP_STREAM_OPENER_H_

#include <kj/async-io.h>

#include "absl/status/status.h"

namespace procpool {
namespace capnp_internal {

// The connection a remote channel runs over (RPC or frames), with its error
// if it could not be made.
struct OpenedStream {
  absl::Status status;
  kj::Own<kj::AsyncIoStream> stream;
  int socket_fd = -1;  // the stream's socket if known (owned by `stream`)
};

// Makes the connection (TCP connect or an accepted socket, TLS,
// authentication), on a thread that runs a KJ event loop: a ThreadedChannel's,
// a framed parent channel's set-up thread, or the daemon child's.
class StreamOpener {
 public:
  virtual ~StreamOpener() = default;
  // Called once. Resolves to the stream or to a status saying why not; an
  // exception is turned into a status by the channel.
  virtual kj::Promise<OpenedStream> Open(kj::AsyncIoContext& io) = 0;
};

}  // namespace capnp_internal
}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_CAPNP_STREAM_OPENER_H_
