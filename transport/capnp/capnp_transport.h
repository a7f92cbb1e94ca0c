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
// messages (Call, Return, Finish), and the worker waits for the parent's
// Return before SendBlocking() returns. A tiny round trip is therefore several
// times slower than "unix" (tools/bench --transport=capnp measures it). Ways
// to cut it, not done yet: one KJ thread for all channels, a short spin in the
// KJ thread before it sleeps, and acknowledging frames in batches.
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
