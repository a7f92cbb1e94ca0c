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
//   parent: the pool's I/O thread of the moment (a caller or the manager)
//   Send(frame): push() calls, written to the socket at once, no waiting
//   Poll()/Pump(): one non-blocking turn of the channel's KJ loop: reads,
//                  answers the worker's push() calls, hands out frames
//   parent: the channel's loop thread (the bridge to the manager)
//   turns the loop when the worker sent something and no caller is polling
//   for it, and signals PollFd() (an eventfd) once frames wait
//
//   child (the worker's only thread; it drives its own KJ loop synchronously)
//   SendBlocking(frame): push() calls; returns once they are written
//   ReceiveBlocking():   runs the loop until FrameSink::push() completes one
//
// The parent's end is a DrivenChannel (driven_channel.h): its KJ event loop
// runs on a thread of its own, and a caller of the channel drives it too, on
// its own thread, under the channel's mutex. So a caller's frame is written by
// the caller, and a caller polling for its result reads it itself: a round
// trip crosses only the caller's thread and the worker's, as with "unix".
// PollFd() is readable exactly while frames (or an error) wait for Pump(): the
// RPC's own Return/Finish traffic wakes the loop thread only. PollEvents() is
// always EPOLLIN. SendBlocking() in the child returns once the frame is in the
// socket, like a plain socket's send: the parent need not be pumping, and a
// worker that sends its result and exits at once cannot lose it, because the
// parent's end hands the RPC system the end of stream only after every call
// read before it was dispatched (and a write that meets the closed socket
// fails only after everything the worker sent was read).
//
// Errors: the peer closing or dying (KJ DISCONNECTED) is kUnavailable; a
// stream that is not Cap'n Proto RPC (KJ FAILED) is kDataLoss. Every KJ
// exception becomes an absl::Status in one helper in capnp_transport.cc.
//
// fork(): the parent's loop threads and event loops stay in the parent. A
// child forked without exec must not touch inherited Channel objects
// (transport.h says so); OpenChild() makes the child's own event loop, on the
// calling thread, after the fork. A thread can have only one KJ event loop
// current, so a process opens at most one child end per thread at a time,
// and a thread that runs a KJ loop of its own cannot use a parent's end.
// Making an event loop sets SIGPIPE to be ignored in the process (KJ does so;
// writes to a dead peer then fail with EPIPE, which is kUnavailable).
//
// Descriptors: CreatePair() returns ChildEndpoint{fds = {child socket},
// spec = kCapnpEndpointSpec}; everything is close-on-exec. Per parent channel:
// the socket, two eventfds (PollFd() and the loop thread's wake-up) and the
// event loop's epoll, eventfd and signalfd, all closed when the channel is
// destroyed.
//
// Cost: each frame is three RPC messages (Call, Return, Finish), read with
// two or three read() calls each. The worker spins on its event loop for
// kSpinBeforeSleep after each frame (rpc_common.h) before it sleeps in epoll.
//
// History (tools/BENCHMARKS.md, "capnp"): until 2026-11-27 only the loop
// thread ran the parent's connection (ThreadedChannel, still used by remote
// workers). A round trip then crossed it twice and cost ~5 sleeping
// wake-ups; perf sched showed the loop thread and the worker taking turns on
// one CPU while the caller spun on the other (~20-90 us of scheduling delay
// per hop), and spinning more threads only made three spinners for two
// CPUs. Letting the caller drive the connection took the round trip p50 from
// ~65-120 us to ~35-55 us on the 2-core VM.
//
// Remote workers (a parent's channel to a worker daemon on another host, TCP,
// TLS, authentication, heartbeats) are in remote.h, target :remote; they use
// a ThreadedChannel (threaded_channel.h) and the same FrameSink protocol.
//
// Thread safety: as transport.h says; the Transport object is stateless.
#ifndef PROCPOOL_TRANSPORT_CAPNP_CAPNP_TRANSPORT_H_
#define PROCPOOL_TRANSPORT_CAPNP_CAPNP_TRANSPORT_H_

#include "transport/capnp/chunk_size.h"  // kCapnpChunkSize, part of this API

namespace procpool {

// The name the transport is registered under.
inline constexpr char kCapnpTransportName[] = "capnp";

// ChildEndpoint::spec written by CreatePair(). OpenChild() accepts this or an
// empty spec.
inline constexpr char kCapnpEndpointSpec[] = "capnp/1";

}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_CAPNP_CAPNP_TRANSPORT_H_
