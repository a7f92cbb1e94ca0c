// Remote workers over the "capnp" transport: the parent's channel to a worker
// on another host, and the worker's end of that connection.
//
//   parent process                              worker host
//   ConnectRemoteWorker(options)                procpool_worker --listen=... (worker/daemon/daemon.h)
//     returns a Channel at once;                  accept() -> fork() a fresh worker:
//     a thread of its own: TCP connect                    AcceptRemoteParent(fd, options)
//       [TLS client] ------------------------------ [TLS server]
//       handshake (AuthRole::kParent) <------------> handshake (AuthRole::kWorker)
//       Cap'n Proto RPC, FrameSink both ways <-----> RunWorker(channel)
//
// What runs over the authenticated connection:
//   * without TLS (the default), frames on the bare socket
//     (framed_remote.h): the parent's end is driven like a unix channel, by
//     the pool's thread that wants the frames, and the worker's end serves
//     the worker loop with a thread of its own that sends keepalives, also
//     while a task runs;
//   * with TLS, Cap'n Proto RPC over kj-tls: both ends are ThreadedChannels
//     (threaded_channel.h), one KJ event-loop thread per channel; the
//     parent pings, and the worker's KJ thread answers even while its main
//     thread runs a long task.
// (We chose a thread in the worker over answering from the daemon: only the
// process that runs the tasks can vouch that it is alive and reachable. A
// worker stopped with SIGSTOP sends nothing, and is caught. A task stuck in a
// loop keeps its worker alive: bound tasks with the pool's per-task timeout
// instead.)
//
// Connection setup (connect, TLS, authentication) happens on the parent
// channel's KJ thread, bounded by connect_timeout; frames sent meanwhile are
// queued and go out once the peer is authenticated. Nothing is sent or
// accepted before authentication succeeds.
//
// Failures of the parent's channel, as Pump()/Send() report them (every
// message names HOST:PORT):
//   connection refused, DNS, unreachable  kUnavailable "capnp transport: cannot connect to the worker daemon at H:P: <why>"
//   setup took longer than connect_timeout kUnavailable "... did not connect and authenticate within 10s ..."
//   TLS handshake or certificate           kUnavailable "capnp transport: TLS with the worker daemon at H:P failed: <why>"
//   wrong key (either side's)              kPermissionDenied "capnp transport: authentication with H:P failed: the worker daemon rejected our key, ...; check --auth_key_file ..."
//   peer hung up during authentication     kUnavailable "... authentication with H:P failed: the worker daemon closed the connection during authentication ..."
//   worker or daemon died, EOF, reset      kUnavailable "capnp transport: the worker daemon at H:P closed the channel" (or "the connection to the worker daemon at H:P: <KJ's reason>")
//   no message for heartbeat_timeout       kUnavailable "capnp transport: no heartbeat from the worker daemon at H:P for 2s (...)"
// Configuration errors (a malformed address, an empty key, an unreadable CA
// file) are returned by ConnectRemoteWorker() itself, kInvalidArgument or the
// file's error.
//
// Heartbeats: the parent fails the channel when nothing at all (a frame, a
// keepalive, a ping's answer, any byte of a big frame) arrived for
// heartbeat_timeout; it looks every timeout / 8 (RPC: every min(interval,
// timeout / 8)), so the error comes within timeout * 9/8 of the last byte.
// Without TLS the worker sends a keepalive whenever it sent nothing for the
// parent's heartbeat_interval (or its own, if shorter); with TLS the parent
// pings every heartbeat_interval and the worker answers. The worker's end
// calls on_connection_lost when the parent is gone (it closed or died; its
// host vanished: without TLS, the keepalives go unacknowledged for the
// worker's heartbeat_timeout, TCP_USER_TIMEOUT; with TLS, the worker's own
// pings go unanswered), so that the daemon's child dies with its connection
// even in the middle of a task. Over RPC a frame travels in chunks of at
// most kCapnpChunkSize (4 MiB), each a sign of life when it arrives: the link
// must carry 4 MiB well within heartbeat_timeout.
//
// The remote worker's pid is in its Hello frame (serialization/wire.h), as for
// local workers.
//
// Security: see common/auth/handshake.h. The key never crosses the wire; without
// TLS the frames themselves are neither secret nor protected from a man in
// the middle, so use use_tls beyond a trusted network.
//
// Thread safety: the functions are thread-safe; each Channel as transport.h
// says.
#ifndef PROCPOOL_TRANSPORT_CAPNP_REMOTE_H_
#define PROCPOOL_TRANSPORT_CAPNP_REMOTE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "transport/transport.h"

namespace procpool {

// Where a remote worker is and how to reach it.
struct RemoteWorkerOptions {
  // "HOST:PORT", "[IPv6]:PORT"; HOST may be a name (resolved on the
  // channel's thread).
  std::string address;
  // The shared key (auth::ReadKeyFile reads --auth_key_file). Never sent.
  std::string key;
  // Bounds TCP connect + TLS + authentication together.
  absl::Duration connect_timeout = absl::Seconds(10);
  // Zero interval or timeout: no heartbeats (a silent host then goes
  // unnoticed until TCP gives up).
  absl::Duration heartbeat_interval = absl::Milliseconds(250);
  absl::Duration heartbeat_timeout = absl::Seconds(2);
  // TLS through kj-tls (OpenSSL), on top of which the handshake still runs.
  bool use_tls = false;
  // PEM certificate(s) to trust for the daemon's certificate (a private CA,
  // or the daemon's self-signed certificate); empty: the system's store.
  std::string tls_ca_file;
  // The name the daemon's certificate must carry; empty: HOST.
  std::string tls_server_name;
};

// The parent's end of a channel to the worker daemon at options.address.
// Returns at once, without touching the network: the channel's own thread
// connects, authenticates and then carries frames; failures show up as the
// channel's error (see the file comment).
absl::StatusOr<std::unique_ptr<Channel>> ConnectRemoteWorker(
    const RemoteWorkerOptions& options);

// How the worker's end accepts a parent (the worker daemon's flags).
struct RemoteParentOptions {
  std::string key;
  // The parent's address, for messages ("10.0.0.1:5123").
  std::string peer_address;
  // Bounds TLS + authentication.
  absl::Duration auth_timeout = absl::Seconds(10);
  // The worker pings the parent too; zero: no heartbeats.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  absl::Duration heartbeat_timeout = absl::Seconds(10);
  bool use_tls = false;
  std::string tls_cert_file;  // PEM certificate (chain) of this host
  std::string tls_key_file;   // PEM private key
  // Called once, on the channel's thread, when the connection fails after
  // authentication (the parent closed, died or went silent). The daemon's
  // child exits there, even in the middle of a task.
  std::function<void(const absl::Status&)> on_connection_lost;
};

// The worker's end of an accepted connection `socket_fd` (taken over, also on
// failure): authenticates the parent, blocking until that succeeds or fails
// (at most auth_timeout), and returns the channel for RunWorker(). Errors:
// kPermissionDenied (the keys differ: "the parent at ADDR rejected our key,
// ..."), kUnavailable (it hung up, TLS failed, or too slow), a TLS file's
// error.
absl::StatusOr<std::unique_ptr<Channel>> AcceptRemoteParent(
    int socket_fd, const RemoteParentOptions& options);

// Splits "HOST:PORT" or "[IPv6]:PORT" (port 0-65535); kInvalidArgument
// saying what is wrong otherwise.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
absl::StatusOr<HostPort> ParseHostPort(absl::string_view address);

}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_CAPNP_REMOTE_H_
