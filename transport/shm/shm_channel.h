// One end of an shm channel: the Channel (transport.h) over a mapped
// ShmSegment (shm_segment.h), its two eventfds and its liveness socket. The
// same code serves the parent's end and the child's; shm_transport.h
// documents the memory ordering, the wake-up protocol, how each side waits
// and how it sees the other's death. Frames are FrameAssembler's
// (transport/frame_assembler.h) with the "PPS1" magic.
//
// Example (what the transport's CreatePair() does for the parent):
//   ChannelFds fds;  // socket, wake_self, wake_peer; then:
//   ASSIGN_OR_RETURN(fds.epoll, MakeChannelEpoll(fds.wake_self.get(),
//                                                fds.socket.get()));
//   std::unique_ptr<Channel> parent = NewShmChannel(
//       Side::kParent, std::move(segment), std::move(fds), options);
//
// Thread safety: as transport.h says for a Channel (used by one thread at a
// time). The channel owns its segment and descriptors; its destructor tells
// the peer (the closed word and a wake-up) before closing them.
#ifndef PROCPOOL_TRANSPORT_SHM_SHM_CHANNEL_H_
#define PROCPOOL_TRANSPORT_SHM_SHM_CHANNEL_H_

#include <memory>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "transport/shm/shm_options.h"
#include "transport/shm/shm_segment.h"
#include "transport/transport.h"

namespace procpool {
namespace shm_internal {

enum class Side { kParent, kChild };

// What a channel owns besides its segment.
struct ChannelFds {
  UniqueFd socket;     // liveness only: no data ever travels on it
  UniqueFd wake_self;  // the eventfd the peer writes to wake this side
  UniqueFd wake_peer;  // the eventfd this side writes to wake the peer
  UniqueFd epoll;      // PollFd(): wake_self and socket
  // An AF_UNIX SOCK_SEQPACKET socket that carries the frames' descriptors:
  // one message per frame that has some (one byte 'D' and SCM_RIGHTS), sent
  // just before the frame's first byte enters the ring, read when the frame
  // is complete. Not watched for readability (so that it never disturbs
  // PollFd()); in the epoll set only while the parent waits for room in it.
  UniqueFd descriptors;
};

// An epoll descriptor (close-on-exec) watching `wake_self` (EPOLLIN) and
// `socket` (EPOLLIN | EPOLLRDHUP): the channel's PollFd().
absl::StatusOr<UniqueFd> MakeChannelEpoll(int wake_self, int socket);

// The `side` end over `segment` (mapped, its control page valid) and `fds`
// (all five set), both taken. `options.spin_ns` and
// `options.spin_only_with_idle_cpu` say how blocking calls spin before they
// sleep (spin_gate.h).
std::unique_ptr<Channel> NewShmChannel(Side side, ShmSegment segment,
                                       ChannelFds fds,
                                       const ShmTransportOptions& options);

}  // namespace shm_internal
}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_SHM_SHM_CHANNEL_H_
