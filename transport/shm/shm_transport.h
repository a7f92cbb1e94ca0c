// The "shm" transport: a pair of single-producer/single-consumer byte rings
// per worker in memfd-backed shared memory. The default transport.
//
// Link //transport/shm and GetTransport("shm") finds it (the package
// registers itself with PROCPOOL_REGISTER_TRANSPORT; the target is
// alwayslink). NewShmTransport() makes an unregistered instance with other
// options (tests use a tiny ring to exercise streaming and wrap-around).
//
// Example:
//   ASSIGN_OR_RETURN(Transport* shm, GetTransport(kShmTransportName));
//   ASSIGN_OR_RETURN(ChannelPair pair, shm->CreatePair());
//
// Thread safety: as transport.h says (a Channel is used by one thread at a
// time; a Transport is thread-safe).
//
// The parts, each with its contract in its header (internal to this
// package): shm_segment.h (the memfd: create, seal, map, validate),
// shm_ring.h (the control page and the two ends of a ring), shm_channel.h
// (one end of a channel), spin_gate.h (whether a wait may spin),
// shm_options.h (the options and constants); the frames are
// transport/frame_header.h's, read by transport/frame_assembler.h.
//
// ---------------------------------------------------------------------------
// Resources
//
// CreatePair() makes, all close-on-exec:
//   * a memfd ("procpool-shm", sealed against shrinking and growing, so that
//     neither side can make the other's accesses fault) holding the control
//     page and both rings. The parent maps it (MADV_DONTFORK, so that workers
//     started with fork() do not inherit other workers' rings) and keeps no
//     descriptor for it; the endpoint carries the only one. The memory goes
//     away with its last mapping: nothing is named in /dev/shm, and nothing
//     is left when either process dies.
//   * two eventfds: "to parent" (the child writes it to wake the parent) and
//     "to child" (the parent writes it to wake the child). Both sides hold a
//     descriptor of each.
//   * an AF_UNIX stream socket pair that carries no data: it exists so that
//     each side sees the other's death as end of file / hang-up. The kernel
//     closes a dead process's descriptors, so this needs no cooperation.
//   * an AF_UNIX SOCK_SEQPACKET socket pair for the descriptors that travel
//     with frames (Channel::CarriesDescriptors() is true): one message per
//     frame that has some, one byte 'D' and SCM_RIGHTS, sent just before the
//     frame's first byte enters the ring and read (MSG_DONTWAIT,
//     MSG_CMSG_CLOEXEC) when the frame is complete, so it is always there by
//     then. It is not polled for input: a message waiting for its frame never
//     makes PollFd() readable (no spinning), and the liveness socket above
//     keeps meaning only death or garbage. A missing message, or one that
//     does not match its header's count, is kDataLoss (every queued
//     descriptor is closed then). The parent's Send() never blocks: if the
//     socket is full, the frame waits in its queue and the socket joins the
//     epoll set for EPOLLOUT until it has room.
//   * in the parent, an epoll descriptor watching the "to parent" eventfd and
//     the parent's socket. That is PollFd(): readable when the child woke the
//     parent or died (or closed its end).
// ChildEndpoint: fds = {memfd, child socket, "to parent" eventfd, "to child"
// eventfd, child descriptor socket}, spec = "shm/1;ring=<bytes>". OpenChild()
// maps the memfd, checks its size, magic and version against the spec, and
// closes the memfd; the channel owns the other four.
//
// Shared memory layout (every offset from the start of the memfd):
//   [0, 4096)                control page, struct ShmControl below:
//                              a line of constants (magic, version, ring size)
//                              then every atomic word on a 128-byte line of
//                              its own (two 64-byte lines: AMD and Intel
//                              prefetch lines in pairs), so the producer's and
//                              the consumer's words never false-share.
//   [4096, 4096 + R)         ring to child (the parent produces, the child
//                              consumes)
//   [4096 + R, 4096 + 2R)    ring to parent (the child produces, the parent
//                              consumes)
// R is a power of two, at least 4096. Per ring:
//   head      bytes ever written (uint64, never wraps in practice); written
//             only by the producer
//   tail      bytes ever read; written only by the consumer
//   consumer_sleeping, producer_waiting   the wake-up flags (below)
// Byte i of the stream lives at ring[i & (R - 1)]; head - tail <= R always.
// A side that reads a head or tail breaking that (a corrupt or hostile peer)
// reports kDataLoss; every access is masked into the ring, so no index can
// reach outside it.
// Plus two words parent_closed / child_closed, set by a side's Channel
// destructor (a clean close, seen without a system call).
//
// Frames: the ring is a byte stream; every frame is a 16-byte header, then
// the payload, laid out as the unix transport's (transport/frame_header.h):
//   bytes 0..3   magic "PPS1"
//   bytes 4..7   flags: bits 0..7 the number of descriptors that travel with
//                the frame (0..64, on the descriptor socket), the rest
//                reserved: must be zero
//   bytes 8..15  payload length, unsigned 64-bit little-endian
// Another magic, unknown flags, more than 64 descriptors or a length above
// kShmMaxFrameLength is kDataLoss. Headers and payloads may straddle the ring's end and arrive in
// pieces; a frame longer than the ring streams through it while both sides
// run, a quarter ring at a time. A reader reserves the frame's length up to
// 1 GiB before the payload arrives (address space only: pages are touched as
// bytes arrive) and grows by doubling past that, so a corrupt length costs at
// most 1 GiB of untouched address space and a real large frame is received
// without reallocating. The liveness socket carries no bytes: bytes on it are
// kDataLoss too.
//
// Memory ordering (std::atomic<uint64_t>, lock-free, in the shared mapping):
//   producer: memcpy into the ring; head.store(release)
//   consumer: head.load(acquire); memcpy out of the ring; tail.store(release)
//   producer: tail.load(acquire) before reusing the space
// The release/acquire pairs make the bytes visible before the index that
// covers them, and make the consumer's reads finish before the producer
// overwrites. Each side keeps its own index in a local variable and a cached
// copy of the other's, reloaded only when the cache says "empty" or "full".
//
// Wake-up protocol (no system call while the other side is awake):
// A side that is going to stop looking at a ring (the child before it sleeps;
// the parent at the end of every Pump()) publishes a flag first and then
// re-checks the ring, Dekker-style:
//     waiter:  flag.store(1); fence(seq_cst); if (ring changed) { flag=0; go }
//              else sleep
//     waker:   publish head (or tail); fence(seq_cst);
//              if (flag.load() && flag.exchange(0)) write the eventfd
// The two seq_cst fences guarantee that at least one side sees the other's
// store: either the waiter sees the new data, or the waker sees the flag.
// The exchange makes one waker write the eventfd once per sleep. The flags:
//   ring to child:  consumer_sleeping  the child sleeps for input
//                   producer_waiting   the parent has queued output
//   ring to parent: consumer_sleeping  the parent is not pumping (armed at the
//                                      end of every Pump(), cleared at the
//                                      start of the next)
//                   producer_waiting   the child sleeps for space
// So while the child is spinning the parent's Send() costs no system call;
// while the parent is pumping, the child's frames cost none either.
// A stale eventfd count (the waiter saw the data and went on while the waker
// wrote) only costs one spurious wake-up, which re-checks and sleeps again.
//
// Waiting:
//   * The parent never blocks. Pump() reads (resets) the "to parent" eventfd,
//     moves data both ways, and arms its flags before it returns; PollFd() is
//     then readable only once the child writes the eventfd or the socket
//     hangs up, so the manager does not spin. PollEvents() is always EPOLLIN:
//     output space is announced by the child through the same eventfd. One
//     Pump() reads at most kShmMaxReadPerPump bytes, so a streaming worker
//     cannot starve the others; if it stops early it writes its own eventfd
//     to stay readable.
//   * The child (single-threaded) spins for up to spin_ns (default
//     kShmDefaultSpinNs; counted from when the parent read the child's last
//     frame, if that came later, up to PeerLink::kSpinMaxNs in all) with a
//     pause instruction, then arms its flag and
//     sleeps in poll() on its eventfd and its socket. It spins only when a
//     CPU is to spare: the kernel counts at most one runnable thread more
//     than CPUs (/proc/loadavg, sampled at most every 2 ms; the extra one is
//     the pool's caller, which polls for our result rather than competing),
//     and not again until the next sample once a spin was preempted
//     (spin_gate.h). On a busy machine every microsecond spun is taken from
//     a thread with work.
//
// Peer death: the parent sees a dead child as a hang-up on its socket (the
// epoll descriptor becomes readable); Pump() then drains every frame the
// child completed and reports kUnavailable ("in the middle of a frame" when
// one was cut short). The child sees the parent's clean close as
// parent_closed (checked before every send and every sleep) and a dead
// parent as a hang-up in poll(); a send that fits in the ring while the
// parent is dead but unclosed succeeds (as a write to a socket buffer would
// until the kernel noticed), and the next wait reports kUnavailable. Neither
// side ever waits without also watching the socket.
//
// Where the time goes, and the measurements behind the spin, the ring size
// and the receive buffer: tools/BENCHMARKS.md, "The shm transport".
#ifndef PROCPOOL_TRANSPORT_SHM_SHM_TRANSPORT_H_
#define PROCPOOL_TRANSPORT_SHM_SHM_TRANSPORT_H_

#include <memory>

#include "transport/shm/shm_options.h"
#include "transport/transport.h"

namespace procpool {

// The name the transport is registered under.
inline constexpr char kShmTransportName[] = "shm";

// An shm transport with `options`, not registered, named "shm". Its
// endpoints open with any shm instance (the spec carries the ring size, which
// OpenChild() checks against the memfd); the opening instance's spin_ns
// applies to the child. Dies (CHECK) on a ring size that is not a power of
// two in range.
std::unique_ptr<Transport> NewShmTransport(const ShmTransportOptions& options);

}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_SHM_SHM_TRANSPORT_H_
