// kCapnpChunkSize: the largest chunk of a frame in one FrameSink.push() call
// (frame_sink.capnp), for both ends of a "capnp" channel, local or remote.
//
// A frame is split into chunks because a Data field is limited to 512 MiB and
// big messages would hit the reader's traversal limit. The receiving
// FrameSink reassembles chunks of any size, so the value is the sender's
// choice only.
//
// A header of its own so that rpc_common.cc (which splits frames) and
// capnp_transport.h (which publishes the constant) both point down at it
// instead of at each other. No KJ or Cap'n Proto type here.
#ifndef PROCPOOL_TRANSPORT_CAPNP_CHUNK_SIZE_H_
#define PROCPOOL_TRANSPORT_CAPNP_CHUNK_SIZE_H_

#include <cstddef>

namespace procpool {

// Largest chunk of a frame in one push() call.
inline constexpr size_t kCapnpChunkSize = size_t{4} << 20;

}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_CAPNP_CHUNK_SIZE_H_
