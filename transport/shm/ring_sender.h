// RingSender: the sending half of an shm channel (shm_channel.cc): the
// frames queued for the out ring and the copies that move frames into it,
// in chunks of at most `chunk` bytes (a quarter ring), each published at
// once so that the peer copies while this side does; a Publish() that finds
// the peer asleep wakes it (PeerLink::WakePeer). A frame that carries
// descriptors has them sent on the descriptor socket (descriptor_socket.h)
// just before its first byte enters the ring.
//
// Two ways to send, as a Channel's two sides:
//   * queued (the parent): Push() a frame, Flush() what fits now; the rest
//     stays queued (the ring or the descriptor socket is full, or the
//     caller's byte budget is spent) for a later Flush();
//   * blocking (a worker): PutBlocking() copies one frame straight from the
//     caller's parts, calling the caller's wait whenever the ring is full.
// The sender keeps no error state: its owner decides that an error ends the
// channel.
//
// Example (a channel's Send):
//   RingSender sender(kShmFrameFormat, &out_ring, chunk, &peer,
//                     &descriptors);
//   sender.Push(size, {}, std::move(frame), nullptr, {});
//   uint64_t budget = kShmMaxReadPerPump;
//   RETURN_IF_ERROR(sender.Flush(&budget));
//   if (!sender.empty()) ... arm the wait for space (shm_transport.h) ...
//
// Thread safety: none; used by the one thread that uses its channel.
#ifndef PROCPOOL_TRANSPORT_SHM_RING_SENDER_H_
#define PROCPOOL_TRANSPORT_SHM_RING_SENDER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/unique_fd.h"
#include "transport/frame_header.h"
#include "transport/out_frame.h"
#include "transport/shm/descriptor_socket.h"
#include "transport/shm/peer_link.h"
#include "transport/shm/shm_options.h"
#include "transport/shm/shm_ring.h"

namespace procpool {
namespace shm_internal {

class RingSender {
 public:
  // Writes frames with `format`'s header (static storage) into `ring`;
  // `peer` is woken and names the peer in errors; `descriptors` carries the
  // frames' descriptors. None is owned; all must outlive the sender.
  RingSender(const FrameFormat& format, RingWriter* ring, uint64_t chunk,
             PeerLink* peer, DescriptorSocket* descriptors);

  RingSender(const RingSender&) = delete;
  RingSender& operator=(const RingSender&) = delete;

  // Nothing is queued.
  bool empty() const { return out_.empty(); }

  // Queues the `size`-byte frame made of `parts` kept alive by `owner` (no
  // payload) or of `payload` (no parts), with `fds` (duplicates, closed once
  // sent). The caller checked `size` and the number of `fds`. Moves nothing.
  void Push(uint64_t size, std::vector<absl::string_view> parts,
            std::string payload, std::shared_ptr<const void> owner,
            std::vector<UniqueFd> fds);

  // Moves queued output into the ring until it is all there, the ring is
  // full, the descriptor socket is full (then descriptors->full(), and it
  // waits for room: DescriptorSocket::WaitForRoom) or `*budget` is spent
  // (bytes moved are taken from it); publishes what it wrote. Returns the
  // error that stopped it: a corrupt ring, the descriptor socket's.
  absl::Status Flush(uint64_t* budget);

  // Sends the front frame's descriptors blocking (a Flush() found the
  // descriptor socket full; the caller stopped its wait for room first).
  absl::Status SendFrontDescriptorsBlocking();

  // Copies the `size`-byte frame made of `parts`, after its `header`, into
  // the ring (its descriptors are the caller's business), calling
  // `wait_for_space` whenever the ring is full; returns its error, or a
  // corrupt ring's.
  absl::Status PutBlocking(const char* header,
                           absl::Span<const absl::string_view> parts,
                           uint64_t size,
                           absl::FunctionRef<absl::Status()> wait_for_space);

  // Drops the queued output (closing its descriptors).
  void Clear();

 private:
  using OutFrame = procpool::OutFrame<kShmFrameHeaderSize>;

  // Copies bytes [offset, offset + n) of header ++ parts into the ring.
  void PutFrameBytes(const char* header,
                     absl::Span<const absl::string_view> parts,
                     uint64_t offset, uint64_t n);

  // Constant after construction.
  const FrameFormat& format_;
  RingWriter* const ring_;
  const uint64_t chunk_;
  PeerLink* const peer_;
  DescriptorSocket* const descriptors_;

  // Output not yet in the ring; out_offset_ bytes of the front frame are.
  std::deque<OutFrame> out_;
  uint64_t out_offset_ = 0;
};

}  // namespace shm_internal
}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_SHM_RING_SENDER_H_
