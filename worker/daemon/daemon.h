// The worker daemon: a procpool worker binary serving parents on other hosts.
//
//   procpool_worker --listen=HOST:PORT --auth_key_file=FILE
//                   [--tls_cert_file=PEM --tls_key_file=PEM]
//                   [--heartbeat_timeout=10s] [--auth_timeout=10s]
//                   [--max_unauthenticated=64] [--refusal_log_interval=10s]
//
// Every binary built with procpool_worker_binary() accepts these flags (its
// main(), worker_main.cc, hands such a command line to DaemonMain()), and
// serves the tasks linked into it. A parent connects with
// ConnectRemoteWorker() (transport/capnp/remote.h).
//
// Decisions:
//  * One process per connection: the daemon accept()s, and fork()s a fresh
//    child for each connection, which authenticates the peer
//    (common/auth/handshake.h, over TLS when asked) and then runs the
//    ordinary worker loop (RunWorker) over a capnp channel on that socket.
//    The daemon itself stays single-threaded and runs no KJ event loop, so
//    each child starts from a clean copy (the capnp transport's fork rule)
//    and a crashing task takes down its connection only.
//  * Nothing runs before authentication: a child whose peer fails the
//    handshake (wrong key, not procpool, silent for --auth_timeout) logs
//    "refused the connection from ADDR: <why>" and exits with status 1,
//    having read nothing but the handshake. Only registered tasks ever run
//    (the worker loop answers any other name with an error).
//  * At most --max_unauthenticated (default 64) children are still
//    authenticating at any time. A connection that arrives at the bound is
//    accepted, and the OLDEST child still authenticating is killed to make
//    room (its connection closes; it is logged as refused "still not
//    authenticated when a newer connection needed its place"). Why this and
//    not the other two policies: a good parent authenticates within a round
//    trip or two of being accepted, while a flood's connections (silent, or
//    trickling a byte at a time) sit for up to --auth_timeout; evicting the
//    oldest removes exactly those, so a good parent is served as soon as it
//    is accepted, unless the flood opens --max_unauthenticated connections
//    within that parent's own handshake time. Closing new connections at
//    the bound would refuse every good parent for as long as the flood
//    holds its slots (up to --auth_timeout, again and again); not accepting
//    at the bound would leave a good parent queued in the kernel's backlog
//    behind the silent peers, each of which holds its slot until
//    --auth_timeout. The children still authenticating tell the daemon when
//    they are done (a datagram on a socketpair shared with them), so
//    authenticated workers never count against the bound; the cost of a
//    flood is a fork per connection, not memory or processes. (A child that
//    authenticates in the microseconds between a newer connection's accept
//    and its datagram being read may still be evicted: its parent sees its
//    channel closed.)
//  * Refusals are logged once per cause, not per connection: the first
//    refusal of a cause (not procpool, wrong key, no authentication within
//    the bound, hung up, TLS, evicted at the bound) is logged in full,
//    "refused the connection from ADDR: <why>"; the others of that cause
//    within --refusal_log_interval (10 s) are counted, and logged as one line
//    "N more refused for <cause> in the last 10s" when the interval ends. The
//    children report their refusal to the daemon (the same datagram), which
//    logs it; a child whose report cannot be sent (the queue is full) logs it
//    itself. accept() and fork() failures go through the same limiter, and
//    running out of descriptors pauses accept() for 100 ms instead of
//    spinning.
//  * A child dies with its connection: when the parent closes, dies or goes
//    silent for --heartbeat_timeout (the child pings it every second), the
//    child exits at once, even in the middle of a task. It also dies with the
//    daemon (PR_SET_PDEATHSIG = SIGKILL): stopping or killing the daemon ends
//    every connection, which each parent sees as its channel's error.
//  * The daemon reaps its children as they exit (SIGCHLD through a
//    signalfd). On SIGTERM or SIGINT it stops listening, sends SIGTERM to its
//    children, waits up to 2 s for them (then SIGKILL), and exits 0.
//  * Port 0 binds an ephemeral port; the daemon prints "listening on
//    HOST:PORT" (the bound address) on stdout once it accepts connections.
//    Logs go to stderr.
//  * The key file is read once at start (common/auth/key_file.h: refused if
//    empty or readable by group or others).
#ifndef PROCPOOL_WORKER_DAEMON_DAEMON_H_
#define PROCPOOL_WORKER_DAEMON_DAEMON_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace procpool {

struct DaemonOptions {
  std::string listen;  // HOST:PORT, "[IPv6]:PORT"; port 0: any free port
  std::string key;     // the shared key (read from --auth_key_file)
  bool use_tls = false;
  std::string tls_cert_file;
  std::string tls_key_file;
  absl::Duration auth_timeout = absl::Seconds(10);
  absl::Duration heartbeat_interval = absl::Seconds(1);
  absl::Duration heartbeat_timeout = absl::Seconds(10);
  // At most this many children still authenticating (>= 1); at the bound the
  // oldest of them is ended to make room for a new connection.
  int max_unauthenticated = 64;
  // Refusals of one cause within this interval are logged as one line.
  absl::Duration refusal_log_interval = absl::Seconds(10);
  // Print "listening on HOST:PORT" on stdout once serving. A cluster rank
  // (cluster/mpi.h) turns it off: its stdout is the user's program's.
  bool announce = true;
  // "procpool worker daemon" in logs; a cluster rank says which rank it is.
  std::string log_name = "procpool worker daemon";
};

// Something besides SIGTERM/SIGINT that ends the daemon: when `fd` is
// readable (or hung up), `on_readable` returns the exit code to stop with, or
// nullopt to go on serving. A cluster rank watches its connection to the
// parent rank this way.
struct DaemonWatch {
  int fd = -1;
  std::function<std::optional<int>()> on_readable;
};

// True if argv asks for the daemon (an argument starts with "--listen").
bool IsDaemonCommandLine(int argc, char** argv);

// Parses the daemon's flags (above) and reads the key file. kInvalidArgument
// names an unknown or malformed flag; the key file's own errors pass through.
absl::StatusOr<DaemonOptions> ParseDaemonFlags(int argc, char** argv);

// Listens and serves until SIGTERM or SIGINT; returns the exit code (0, or 1
// if it cannot listen, with the reason on stderr).
int RunWorkerDaemon(const DaemonOptions& options);

// The two halves of RunWorkerDaemon, for a caller that must publish the
// address before serving (a cluster rank gathers it to the parent rank).
// ListenForParents binds `address` (HOST:PORT, port 0 for any) and listens
// (close-on-exec); `*bound` is the bound address.
absl::StatusOr<UniqueFd> ListenForParents(const std::string& address,
                                          std::string* bound);
// Serves on `listen_fd` until SIGTERM or SIGINT (exit code 0) or until
// `watch` (may be null) says to stop (its code); stops the workers it forked
// before returning.
int ServeParents(UniqueFd listen_fd, const std::string& bound,
                 const DaemonOptions& options, const DaemonWatch* watch);

// ParseDaemonFlags + RunWorkerDaemon for main(): a bad command line prints
// the reason and the usage and returns 2.
int DaemonMain(int argc, char** argv);

}  // namespace procpool

#endif  // PROCPOOL_WORKER_DAEMON_DAEMON_H_
