// The "unix" transport: one AF_UNIX stream socket pair per worker.
//
// Link //transport/unix and GetTransport("unix") finds it (the package
// registers itself with PROCPOOL_REGISTER_TRANSPORT at static-initialization
// time; the target is alwayslink so the registration survives linking).
//
// Example:
//   ASSIGN_OR_RETURN(Transport* unix_transport,
//   GetTransport(kUnixTransportName)); ASSIGN_OR_RETURN(ChannelPair pair,
//   unix_transport->CreatePair());
//
// Wire format, both directions: every frame is a 16-byte header followed by
// the payload.
//   bytes 0..3   magic "PPU1" (procpool, unix transport, version 1)
//   bytes 4..7   flags: bits 0..7 the number of descriptors that travel with
//                the frame (0..64), the rest reserved: must be zero
//   bytes 8..15  payload length, unsigned 64-bit little-endian
// A header with another magic, unknown flags, more than 64 descriptors or a
// length above kUnixMaxFrameLength is kDataLoss.
//
// Descriptors (Channel::CarriesDescriptors() is true): a frame's descriptors
// travel as SCM_RIGHTS on the sendmsg() that writes the frame's first byte
// (a frame that carries some always starts a sendmsg() of its own; the
// parent's side keeps duplicates until then, so the caller may close its
// own at once). Every read is a recvmsg() with room for SCM_MAX_FD
// descriptors and MSG_CMSG_CLOEXEC; what arrives is queued in order and
// checked against the headers: a header whose descriptors did not come with
// its first byte, descriptors no header announced, or MSG_CTRUNC is
// kDataLoss (all queued descriptors are closed then). A frame that carries
// none costs what it did before (one recvmsg() instead of a recv()).
// Descriptors not taken are closed with the channel, or at once when the
// frame they came with was cut short. A reader never allocates more than about
// twice the bytes that really arrived, so a corrupt length cannot make it
// allocate a huge buffer up front.
//
// Socket buffers: CreatePair() asks for SO_SNDBUF = kUnixSocketBufferBytes on
// both ends (an AF_UNIX stream socket's send buffer bounds the bytes in flight
// towards the peer). The kernel caps the request at net.core.wmem_max; where
// that allows 4 MiB, a big frame crosses in 16 times fewer wake-ups than with
// the usual 208 KiB default: the 64 MiB echo went from ~2.5 to ~3 GB/s
// (tools/BENCHMARKS.md, "The copying path"). Memory is taken only while bytes
// are in flight.
//
// Descriptors: CreatePair() returns ChildEndpoint{fds = {child socket},
// spec = kUnixEndpointSpec}; both sockets are close-on-exec. The parent's end
// is O_NONBLOCK, the child's end blocking. Writes use MSG_NOSIGNAL, so a dead
// peer is kUnavailable and never SIGPIPE.
//
// Thread safety: as transport.h says (a Channel is used by one thread at a
// time; the Transport object is stateless and thread-safe).
#ifndef PROCPOOL_TRANSPORT_UNIX_UNIX_TRANSPORT_H_
#define PROCPOOL_TRANSPORT_UNIX_UNIX_TRANSPORT_H_

#include <cstddef>
#include <cstdint>

namespace procpool {

// The name the transport is registered under.
inline constexpr char kUnixTransportName[] = "unix";

// ChildEndpoint::spec written by CreatePair(). OpenChild() accepts this or an
// empty spec.
inline constexpr char kUnixEndpointSpec[] = "unix/1";

// Frame layout (see above).
inline constexpr char kUnixFrameMagic[4] = {'P', 'P', 'U', '1'};
inline constexpr size_t kUnixFrameHeaderSize = 16;

// The send buffer CreatePair() asks for on each socket (see above).
inline constexpr int kUnixSocketBufferBytes = 4 << 20;

// Longest payload accepted on the wire (1 TiB); a longer length is treated as
// corruption.
inline constexpr uint64_t kUnixMaxFrameLength = uint64_t{1} << 40;

}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_UNIX_UNIX_TRANSPORT_H_
