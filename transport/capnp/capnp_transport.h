// The "capnp" transport: Cap'n Proto RPC (frame_sink.capnp) over one AF_UNIX
// stream socket pair per worker.
//
// Link //transport/capnp and GetTransport("capnp") finds it (the package
// registers itself with PROCPOOL_REGISTER_TRANSPORT; the target is
// alwayslink). No KJ or Cap'n Proto type appears in this header: they stay in
// capnp_transport.cc.
//
// Design. Each side of a channel runs a Cap'n Proto two-party RPC connection
// over the socket and exports one `FrameSink` capability as its bootstrap;
// the other side pushes its frames into it with `push(chunk, last)`, a frame
// being split into chunks of at most kCapnpChunkSize bytes (a Data field is
// limited to 512 MiB, and big messages would hit the reader's traversal
// limit). Calls on one capability arrive in order, so frames do too. Frames
// are opaque bytes: the executor's own wire messages.
//
//   parent (manager thread)        parent (KJ thread, one per channel)
//   Send(frame) -> outgoing queue -> wake eventfd -> push() calls, no waiting
//   Pump() <- incoming queue <- ready eventfd (PollFd) <- FrameSink::push()
//
//   child (the worker's only thread; it drives its own KJ loop synchronously)
//   SendBlocking(frame): push() calls, then waits for their answers
//   ReceiveBlocking():   runs the loop until FrameSink::push() completes one
//
// SendBlocking() returns only once the parent's KJ thread has queued the frame
// for the manager: a worker that sends its result and exits at once cannot
// lose it, since the manager pumps its channel once when it sees the exit.
// Send() in the parent never blocks: it queues under a mutex and writes the
// KJ thread's wake eventfd when the queue was empty. PollFd() is an eventfd
// the KJ thread makes readable when a frame completes or the channel fails,
// and Pump() reads it back to zero under the same mutex, so it is readable
// exactly when Pump() has something to hand out. PollEvents() is always
// EPOLLIN (output is written by the KJ thread).
//
// Errors: the peer closing or dying (KJ DISCONNECTED) is kUnavailable; a
// stream that is not Cap'n Proto RPC (KJ FAILED) is kDataLoss. Every KJ
// exception becomes an absl::Status in one helper in capnp_transport.cc.
//
// fork(): the parent's KJ threads and event loops stay in the parent. A child
// forked without exec must not touch inherited Channel objects (transport.h
// says so); OpenChild() makes the child's own event loop, on the calling
// thread, after the fork. A thread can have only one KJ event loop, so a
// process opens at most one child end per thread at a time. Making an event
// loop sets SIGPIPE to be ignored in the process (KJ does so; writes to a dead
// peer then fail with EPIPE, which is kUnavailable).
//
// Descriptors: CreatePair() returns ChildEndpoint{fds = {child socket},
// spec = kCapnpEndpointSpec}; everything is close-on-exec. Per parent channel:
// the socket, two eventfds and the KJ thread's event loop (epoll, eventfd,
// signalfd), all closed when the channel is destroyed.
//
// Cost: a frame from the manager to a worker crosses one more thread (the KJ
// thread) than with "unix", and so does its answer; each frame is three RPC
// messages (Call, Return, Finish), each read with two or three read() calls,
// and the worker waits for the parent's Return before SendBlocking() returns.
// perf on the 2-core VM: the round trip is dominated by context switches
// (finish_task_switch and the irq-restore around wake-ups, ~70% of samples),
// not by Cap'n Proto's own code (a few percent): about nine sleeping
// wake-ups per round trip at ~15 us each.
//
// What pays (kept): a caller's Poll() (pool.h's fast path) costs no system
// call and no lock when nothing arrived (an atomic says so), so
// PollIsCheap() is true and Submit() takes results on its way; while a
// caller polls with `stay`, OnFrame() does not write the ready eventfd (nor
// does Poll() read it back). Measured on top of 83696a3, median of 3 runs,
// bench --only=roundtrip,submit: on this loaded 2-core VM round trip p50
// 276 -> 189 us and Submit 6.5k -> 8.7k tasks/s; on an idle 16-core host
// Submit 19.6k -> 28.1k tasks/s.
//
// What did not pay (tried, measured, removed): letting the parent's KJ thread
// and the worker poll their event loops (WaitScope::poll(), epoll_wait with
// timeout 0) for up to 50 us before sleeping, gated like shm's SpinGate. On
// two CPUs the caller already spins (Help), so a spinning KJ thread and a
// spinning worker make three spinners for two CPUs: round trip p50 got worse
// (idle host pinned to 2 CPUs: ~130-195 us spinning on both sides vs ~55-130
// us without; with sched_yield in the loop ~105-120 us), and on the loaded VM
// the gate forbade spinning most of the time anyway. Spinning only in the
// parent's KJ thread was within noise of not spinning.
//
// And in the pool (executor/internal/pool.cc, kHelpBudgetCapnp): a waiter on
// a capnp pool polls for up to 250 us instead of 50, so that a round trip of
// ~70-100 us is taken by the waiter itself instead of through the manager
// and a condition variable: p50 ~95 -> ~64 us, 3.2x-4.0x CPython's (three
// bench_compare runs at dc329b4; CPython measured 204-255 us in them).
//
// What remains (the margin over 3x is thin when CPython is fast): the extra
// thread hop and the per-frame Return/Finish messages, each a possible
// wake-up. The promising ways: one-way delivery that does not need the
// Return (read push() calls off the message stream as they arrive, so that a
// worker's frame written before it exits is never lost, then stop waiting
// for the Return in SendBlocking()); batching several frames per push(); or
// letting the caller thread run the parent's side of the connection instead
// of a KJ thread (KJ loops are thread-bound, so this means a channel whose
// event loop is driven by whoever holds pool's io_mu_).
//
// Remote workers (a parent's channel to a worker daemon on another host, TCP,
// TLS, authentication, heartbeats) are in remote.h, target :remote; they share
// the parent's channel (threaded_channel.h) and the FrameSink protocol.
//
// Thread safety: as transport.h says; the Transport object is stateless.
#ifndef PROCPOOL_TRANSPORT_CAPNP_CAPNP_TRANSPORT_H_
#define PROCPOOL_TRANSPORT_CAPNP_CAPNP_TRANSPORT_H_

#include <cstddef>

namespace procpool {

// The name the transport is registered under.
inline constexpr char kCapnpTransportName[] = "capnp";

// ChildEndpoint::spec written by CreatePair(). OpenChild() accepts this or an
// empty spec.
inline constexpr char kCapnpEndpointSpec[] = "capnp/1";

// Largest chunk of a frame in one push() call.
inline constexpr size_t kCapnpChunkSize = size_t{4} << 20;

}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_CAPNP_CAPNP_TRANSPORT_H_
