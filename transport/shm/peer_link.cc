// PeerLink (see peer_link.h).
#include "transport/shm/peer_link.h"

#include <errno.h>
#include <sys/socket.h>

#include <atomic>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/event_fd.h"

namespace procpool {
namespace shm_internal {

PeerLink::PeerLink(absl::string_view peer, AtomicLine* my_closed,
                   AtomicLine* peer_closed, int socket, int wake_self,
                   int wake_peer, const ShmTransportOptions& options)
    : peer_(peer),
      my_closed_(my_closed),
      peer_closed_(peer_closed),
      socket_(socket),
      wake_self_(wake_self),
      wake_peer_(wake_peer),
      spin_ns_(options.spin_ns),
      spin_gate_(options.spin_only_with_idle_cpu) {}

void PeerLink::CloseMine() {
  my_closed_->value.store(1, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  SignalEventFd(wake_peer_);
}

void PeerLink::ProbeSocket() {
  char byte;
  for (;;) {
    const ssize_t n = recv(socket_, &byte, 1, MSG_DONTWAIT);
    if (n == 0) {
      gone_ = true;
    } else if (n > 0) {
      garbage_ = true;
    } else if (errno == EINTR) {
      continue;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
      gone_ = true;
    }
    return;
  }
}

absl::Status PeerLink::GarbageError() const {
  return absl::DataLossError(absl::StrCat(
      "shm transport: bytes arrived on the liveness socket, which carries "
      "none: the ", peer_, "'s end is corrupt"));
}

absl::Status PeerLink::ClosedError() const {
  return absl::UnavailableError(
      absl::StrCat("shm transport: the ", peer_, " closed the channel"));
}

absl::Status PeerLink::CorruptRingError(absl::string_view which) const {
  return absl::DataLossError(absl::StrCat(
      "shm transport: the ", peer_, "'s ring ", which,
      " is impossible: the shared memory is corrupt"));
}

}  // namespace shm_internal
}  // namespace procpool
