// A Channel over a connected stream socket, frames delimited by the stream
// transports' 16-byte header (frame_header.h) with the caller's magic: the
// unix transport's channels (an AF_UNIX socket pair, "PPU1"), and the
// capnp transport's framed remote channels (TCP after authentication,
// "PPT1"; transport/capnp/framed_remote.h).
//
// Both ways of driving a Channel (transport.h) work on one:
//   * non-blocking (the parent): `fd` O_NONBLOCK; Send() queues and writes
//     what the socket takes, Pump() writes the rest (PollEvents() asks for
//     EPOLLOUT while output is queued) and reads what arrived; PollFd() is
//     the socket itself;
//   * blocking (a worker): SendBlocking() writes the whole frame with one
//     sendmsg() per 128 pieces; ReceiveBlocking() polls the socket for
//     ~20 us (recv with MSG_DONTWAIT) before it sleeps in recv(), so that a
//     worker sent its next call within that window costs no wake-up; the
//     window counts from when the peer read this end's last frame
//     (SIOCOUTQ), up to 200 us after the receive began.
// Writes use MSG_NOSIGNAL: a dead peer is kUnavailable ("<format.name>: the
// <peer> closed the channel"), never SIGPIPE. A corrupt header is kDataLoss;
// a reader never allocates much more than the bytes that really arrived.
//
// Internal to the transport implementations. Thread safety: as a Channel
// (one thread at a time).
#ifndef PROCPOOL_TRANSPORT_STREAM_CHANNEL_H_
#define PROCPOOL_TRANSPORT_STREAM_CHANNEL_H_

#include <cstdint>
#include <memory>

#include "absl/strings/string_view.h"
#include "common/unique_fd.h"
#include "transport/frame_header.h"
#include "transport/transport.h"

namespace procpool {

class StreamChannel : public Channel {
 public:
  // Takes the connected stream socket `fd`. `format` (static storage) names
  // the magic and the words of errors; `peer` names the other end in them:
  // "worker", "parent", "worker daemon at 10.0.0.2:7000".
  static std::unique_ptr<StreamChannel> Make(UniqueFd fd,
                                             const FrameFormat& format,
                                             absl::string_view peer);

  // Bytes read from the socket so far, whole frames or not: a sign of life
  // while a big frame is still arriving.
  virtual uint64_t bytes_received() const = 0;
};

}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_STREAM_CHANNEL_H_
