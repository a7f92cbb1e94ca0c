// PeerLink: what one end of an shm channel (shm_channel.cc) knows of the
// other end and how it waits for it (shm_transport.h documents the protocol):
//   * liveness: the peer's closed word in the control page, and the liveness
//     socket, whose hang-up (or an error) means the peer died and whose bytes
//     (it never carries any) mean someone wrote where they should not;
//   * wake-ups: the eventfd this end sleeps on (wake_self) and the one that
//     wakes the peer (wake_peer); this end's closed word;
//   * Wait(): the blocking wait for a ring condition: spin while the
//     SpinGate allows (spin_gate.h), then arm the ring's flag, re-check (the
//     Dekker handshake) and sleep in poll() on wake_self and the socket.
//
// Example (a worker's blocking receive):
//   PeerLink peer("parent", &control->child_closed, &control->parent_closed,
//                 fds.socket.get(), fds.wake_self.get(), fds.wake_peer.get(),
//                 options);
//   absl::Status s = peer.Wait(
//       [&] { return in.Available() > 0 || in.corrupt(); },
//       [&] { in.ArmSleeping(); }, [&] { in.DisarmSleeping(); },
//       [&] { return assembler.EndOfStreamError(); },
//       [&] { return out.Free(out.size()) < out.size(); });
//   ...
//   peer.CloseMine();  // in the channel's destructor
//
// Thread safety: none; used by the one thread that uses its channel.
#ifndef PROCPOOL_TRANSPORT_SHM_PEER_LINK_H_
#define PROCPOOL_TRANSPORT_SHM_PEER_LINK_H_

#include <errno.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/event_fd.h"
#include "common/posix_error.h"
#include "common/spin.h"
#include "transport/shm/shm_options.h"
#include "transport/shm/shm_ring.h"
#include "transport/shm/spin_gate.h"

namespace procpool {
namespace shm_internal {

class PeerLink {
 public:
  // `peer` names the other end in errors ("worker" or "parent"). The closed
  // words (this end's and the peer's) and the descriptors (the liveness
  // socket, the two eventfds) are not owned and must outlive the link.
  // `options.spin_ns` and `options.spin_only_with_idle_cpu` say how Wait()
  // spins before it sleeps.
  PeerLink(absl::string_view peer, AtomicLine* my_closed,
           AtomicLine* peer_closed, int socket, int wake_self, int wake_peer,
           const ShmTransportOptions& options);

  PeerLink(const PeerLink&) = delete;
  PeerLink& operator=(const PeerLink&) = delete;

  // "worker" or "parent".
  const std::string& name() const { return peer_; }
  // The liveness socket (a blocking send elsewhere polls it for a hang-up).
  int socket() const { return socket_; }

  // The peer wrote its closed word (acquire: what it sent before is seen).
  bool PeerClosed() const {
    return peer_closed_->value.load(std::memory_order_acquire) != 0;
  }
  // The peer is known to be gone (its socket hung up, its closed word was
  // seen by Wait(), or a send found it gone: MarkGone()).
  bool gone() const { return gone_; }
  void MarkGone() { gone_ = true; }
  // Bytes arrived on the liveness socket (see GarbageError()).
  bool garbage() const { return garbage_; }

  // Tells the peer this end is closing: the closed word, then a wake-up (it
  // may sleep).
  void CloseMine();

  void WakePeer() { SignalEventFd(wake_peer_); }
  // Makes this end's PollFd() readable again (work was left for later).
  void WakeSelf() { SignalEventFd(wake_self_); }
  // Resets this end's eventfd; false if it had not been signalled.
  bool DrainWakeups() { return DrainEventFd(wake_self_); }

  // Looks at the liveness socket without blocking: end of file or an error
  // sets gone(), bytes set garbage().
  void ProbeSocket();

  // kDataLoss: bytes on the liveness socket.
  absl::Status GarbageError() const;
  // kUnavailable: "shm transport: the <peer> closed the channel".
  absl::Status ClosedError() const;
  // kDataLoss: the peer's ring index `which` ("head", "tail") is impossible.
  absl::Status CorruptRingError(absl::string_view which) const;

  // Blocks until `ready()`: OK; the peer is gone (then gone() is set): what
  // `gone_error()` says; garbage(): GarbageError(); a poll() error. `arm()`
  // and `disarm()` set and clear the ring flag that makes the peer wake this
  // end (RingReader::ArmSleeping, RingWriter::ArmWaiting). The spin is a
  // ReceiveSpin (common/spin.h) of spin_ns, at most kSpinMaxNs: `unread()`
  // says whether the peer has still to read what this end sent (a worker's
  // last result; the unix transport asks SIOCOUTQ the same).
  template <typename Ready, typename Arm, typename Disarm, typename GoneError,
            typename Unread>
  absl::Status Wait(const Ready& ready, const Arm& arm, const Disarm& disarm,
                    const GoneError& gone_error, const Unread& unread);

  // The most one Wait() spins while the peer has not read what it was sent.
  static constexpr int64_t kSpinMaxNs = 200'000;

 private:
  // Spin iterations between two reads of the clock.
  static constexpr int kSpinsPerClockRead = 64;

  // Constant after construction.
  const std::string peer_;
  AtomicLine* const my_closed_;
  AtomicLine* const peer_closed_;
  const int socket_;
  const int wake_self_;
  const int wake_peer_;
  const int64_t spin_ns_;

  SpinGate spin_gate_;
  bool gone_ = false;
  bool garbage_ = false;
};

template <typename Ready, typename Arm, typename Disarm, typename GoneError,
          typename Unread>
absl::Status PeerLink::Wait(const Ready& ready, const Arm& arm,
                            const Disarm& disarm, const GoneError& gone_error,
                            const Unread& unread) {
  // Spin: the common case when the peer answers within a few microseconds
  // (and a CPU is to spare: SpinGate).
  if (spin_ns_ > 0 && !ready()) {
    int64_t now = MonotonicNanos();
    if (spin_gate_.Allowed(now)) {
      ReceiveSpin spin(now, spin_ns_, kSpinMaxNs);
      for (int i = 1;; ++i) {
        if (ready()) return absl::OkStatus();
        if (spin.giving_way() || i % kSpinsPerClockRead == 0) {
          const int64_t before = now;
          now = MonotonicNanos();
          if (now - before > SpinGate::kPreemptedNs) {
            spin_gate_.Preempted(now);
            break;
          }
          if (PeerClosed() || !spin.GoOn(now, unread)) break;
        }
        SpinPause(spin.giving_way());
      }
    }
  }
  for (;;) {
    // Arm, then re-check (the Dekker handshake in shm_transport.h).
    arm();
    const bool closed = PeerClosed();  // before ready(): see below
    const bool is_ready = ready();
    if (is_ready || closed || gone_ || garbage_) {
      disarm();
      // The closed word is read first, so a ring that looks empty after it
      // really holds everything the peer sent before closing.
      if (is_ready) return absl::OkStatus();
      if (garbage_) return GarbageError();
      gone_ = true;
      return gone_error();
    }
    struct pollfd p[2] = {{wake_self_, POLLIN, 0},
                          {socket_, POLLIN | POLLRDHUP, 0}};
    const int n = poll(p, 2, -1);
    disarm();
    if (n < 0) {
      if (errno == EINTR) continue;
      return PosixError("shm transport: poll", errno);
    }
    if (p[0].revents & POLLIN) DrainEventFd(wake_self_);
    if (p[1].revents != 0) ProbeSocket();
    if (ready()) return absl::OkStatus();
  }
}

}  // namespace shm_internal
}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_SHM_PEER_LINK_H_
