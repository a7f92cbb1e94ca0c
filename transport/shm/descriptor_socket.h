// DescriptorSocket: how an shm channel's frames carry descriptors
// (ChannelFds::descriptors in shm_channel.h: an AF_UNIX SOCK_SEQPACKET pair of
// the channel's own). Each frame that has some is one message on it: one
// byte 'D' and the descriptors as SCM_RIGHTS (scm_rights.h).
//   send:    just before the frame's first byte enters the ring. Queued
//            output (the parent) sends with MSG_DONTWAIT: a full socket
//            leaves the frame queued, and WaitForRoom() puts the socket in
//            the channel's epoll set (PollFd()) for EPOLLOUT until it has
//            room; a blocking send (a worker) polls for room, and for the
//            peer's hang-up on the liveness socket.
//   receive: once the frame is complete, one recvmsg() (MSG_DONTWAIT,
//            MSG_CMSG_CLOEXEC): the message is there already (it was sent
//            before the frame's bytes). Missing, short, long or not 'D' is
//            kDataLoss.
// Why a socket of its own: descriptor messages waiting on the liveness
// socket would keep PollFd() readable (the manager would spin between a
// message and its frame, or forever for a frame never read) and could not
// be told from garbage. A peer that dies mid-frame leaves its message in the
// socket, where the kernel drops it with the socket.
//
// Example (the parent's Flush of a frame `f` with descriptors):
//   absl::Status s = descriptors.Send(f.fds, /*blocking=*/false);
//   if (absl::IsUnavailable(s) && !peer.gone()) {
//     RETURN_IF_ERROR(descriptors.WaitForRoom());  // EPOLLOUT wakes us
//     return absl::OkStatus();                    // try again then
//   }
//   RETURN_IF_ERROR(s);
//   descriptors.StopWaiting();
//   ... then the frame's bytes into the ring ...
//
// Thread safety: none; used by the one thread that uses its channel.
#ifndef PROCPOOL_TRANSPORT_SHM_DESCRIPTOR_SOCKET_H_
#define PROCPOOL_TRANSPORT_SHM_DESCRIPTOR_SOCKET_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/unique_fd.h"
#include "transport/shm/peer_link.h"

namespace procpool {
namespace shm_internal {

class DescriptorSocket {
 public:
  // `socket`: this end of the pair; `epoll`: the channel's PollFd() set;
  // `peer`: the other end (its name for errors, its liveness socket for a
  // blocking send, and gone() set when a send finds it gone). None is
  // owned; all must outlive this object.
  DescriptorSocket(int socket, int epoll, PeerLink* peer);

  DescriptorSocket(const DescriptorSocket&) = delete;
  DescriptorSocket& operator=(const DescriptorSocket&) = delete;

  // ~DescriptorSocket leaves the epoll set as it is (the channel closes both).

  // Sends the message of a frame that carries `fds` (1..kMaxFrameDescriptors).
  // OK; kUnavailable "descriptor socket full" when there is no room and not
  // `blocking` (a blocking send waits instead); the peer's ClosedError() when
  // it is gone (then peer->gone()); else the error.
  absl::Status Send(absl::Span<const int> fds, bool blocking);
  absl::Status Send(const std::vector<UniqueFd>& fds, bool blocking);

  // A non-blocking Send() found no room: full() from now on, and the socket
  // is in the epoll set for EPOLLOUT (PollFd() becomes readable when it has
  // room). StopWaiting() undoes both.
  absl::Status WaitForRoom();
  void StopWaiting();
  bool full() const { return full_; }

  // Reads the message of a completed frame that announced `n` (> 0)
  // descriptors: them, in order (close-on-exec); kDataLoss if the message
  // is not there or not what was announced (any descriptors that did come
  // are closed).
  absl::StatusOr<std::vector<UniqueFd>> Receive(uint32_t n);

 private:
  // Constant after construction.
  const int socket_;
  const int epoll_;
  PeerLink* const peer_;

  // A message could not go (the socket was full).
  bool full_ = false;
  // The socket is in the epoll set for EPOLLOUT.
  bool armed_ = false;
};

}  // namespace shm_internal
}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_SHM_DESCRIPTOR_SOCKET_H_
