// Framed remote channels: a remote worker's connection without TLS, once it
// is authenticated, carries the stream transports' frames on the bare TCP
// socket (StreamChannel, transport/stream_channel.h) instead of Cap'n Proto
// RPC calls. TLS connections keep RPC (threaded_channel.h) over kj-tls.
//
// Why (tools/BENCHMARKS.md, "On a cluster"; docs/DESIGN.md): RPC on a KJ
// thread at each end costs a round trip four thread hand-offs plus the RPC's
// Call/Return/Finish (~130-170 us measured between two ranks of one host,
// local capnp with a caller-driven loop still 43 us), where frames on the
// socket, written and read by the threads that want them, cost what the unix
// transport costs plus TCP's (~10-20 us). The connection is still the one
// the capnp transport connects, secures and authenticates (remote.h); only
// what follows authentication differs.
//
// On the wire (framed_link.h), after the handshake (common/auth/handshake.h):
//   parent -> worker, once: the link preamble, 16 bytes
//     bytes 0..3  "PPL1"; bytes 4..7 zero;
//     bytes 8..15 the keepalive interval the parent wants, in microseconds,
//                 unsigned little-endian (0: none)
//   then, both ways, frames: the 16-byte header (magic "PPT1", flags zero,
//   length) and a payload whose last byte says what it is: 0 a frame of the
//   channel (the bytes before it), 1 a keepalive (payload exactly that byte).
//   A trailer rather than a leading byte, so that taking it off a 1 GiB frame
//   is a pop_back(), not a move of the whole payload.
//
// Liveness, without a thread of our own in the parent:
//   * the worker's end sends a keepalive whenever it sent nothing for the
//     interval the parent asked for (or its own heartbeat_interval, if
//     shorter or the parent asked for none), from a thread of its own, so
//     that it does while a task runs;
//   * the parent's end fails the channel when no byte at all arrived for
//     heartbeat_timeout (a timerfd ticks every timeout/8 in its PollFd(), an
//     epoll set: the error comes within timeout * 9/8 of the last byte; a
//     stopped worker, a host or network gone);
//   * the worker's thread watches the socket for the parent's hang-up
//     (POLLRDHUP) and the worker sets TCP_USER_TIMEOUT to its
//     heartbeat_timeout, so that a parent whose host vanished fails the
//     keepalives' writes in that time; then on_connection_lost runs. A
//     parent that is only stopped (SIGSTOP) is not noticed: its kernel
//     still acknowledges (the RPC channels' pings did notice it).
//
// Package-internal: remote.cc makes these.
#ifndef PROCPOOL_TRANSPORT_CAPNP_FRAMED_REMOTE_H_
#define PROCPOOL_TRANSPORT_CAPNP_FRAMED_REMOTE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"
#include "transport/transport.h"

namespace procpool {
namespace capnp_internal {

class StreamOpener;

struct FramedParentOptions {
  // The peer in messages: "worker daemon at 10.0.0.2:7000".
  std::string peer_name;
  // Asked of the worker (the link preamble); zero: no keepalives.
  absl::Duration keepalive_interval = absl::ZeroDuration();
  // Zero: the parent's end never fails for silence.
  absl::Duration heartbeat_timeout = absl::ZeroDuration();
};

// The parent's end. Returns at once: a set-up thread runs `opener` (connect,
// authenticate; failures become the channel's error, as for RPC channels),
// sends the preamble and hands the socket over; frames sent meanwhile are
// queued. From then on the channel is driven by its user alone (Send,
// Pump, Poll, PollFd), as transport.h says.
absl::StatusOr<std::unique_ptr<Channel>> StartFramedParentChannel(
    std::unique_ptr<StreamOpener> opener, FramedParentOptions options);

struct FramedWorkerOptions {
  // The peer in messages: "parent at 10.0.0.1:5123".
  std::string peer_name;
  // The longest this end waits for keepalives between its own; zero: only
  // what the parent asks for.
  absl::Duration keepalive_interval = absl::ZeroDuration();
  // TCP_USER_TIMEOUT; zero: the kernel's default.
  absl::Duration heartbeat_timeout = absl::ZeroDuration();
  // Bounds reading the preamble.
  absl::Duration preamble_timeout = absl::Seconds(10);
  // Called once, on the channel's thread, when the parent hangs up or its
  // connection fails (the daemon's child exits there).
  std::function<void(const absl::Status&)> on_connection_lost;
};

// The worker's end of the authenticated connection `socket` (taken over):
// reads the preamble (kUnavailable if it does not come in time,
// kDataLoss if it is not one) and starts the keepalive thread.
absl::StatusOr<std::unique_ptr<Channel>> OpenFramedWorkerChannel(
    UniqueFd socket, FramedWorkerOptions options);

}  // namespace capnp_internal
}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_CAPNP_FRAMED_REMOTE_H_
