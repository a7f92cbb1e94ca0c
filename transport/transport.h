// The seam between the parent and its workers: a message channel.
//
// A Channel carries whole frames (byte strings) in both directions between the
// parent and one worker process. Every transport ("shm", "unix", "capnp")
// implements Channel and Transport in a package of its own and registers its
// Transport under its name; the executor picks one by name.
//
// Two ways of driving a channel:
//   * The parent drives it without ever blocking: Send()
//     queues a frame and writes what it can, Pump() does whatever I/O is
//     possible and hands out complete incoming frames, and PollFd() /
//     PollEvents() say what to wait for with epoll alongside other events.
//     The parent must never block on a worker: a worker that writes a large
//     result while the parent writes it a large call would otherwise
//     deadlock. In the executor that is the manager thread or a caller
//     thread doing the pool's I/O (Pool::DriveIoWhileWaiting, Submit's hand-
//     out), whichever holds the pool's io_mu_ at the time.
//   * A worker is single-threaded and uses SendBlocking()/ReceiveBlocking().
//
// Thread safety: a Channel is used by one thread at a time (in the parent,
// whichever thread holds the pool's io_mu_; in a worker, its only thread). A
// Transport is thread-safe.
//
// Errors: a peer that died or closed its end is kUnavailable; bytes that are
// not a valid frame (bad magic, impossible length) are kDataLoss. After an
// error the channel is unusable, but frames completed before it are still
// delivered by Pump() first. No call crashes or hangs on bad input.
//
// Example (parent):
//   ASSIGN_OR_RETURN(Transport* t, GetTransport("unix"));
//   ASSIGN_OR_RETURN(ChannelPair pair, t->CreatePair());
//   ... start the child with pair.child (its descriptors are inherited or
//       passed with SCM_RIGHTS); in the child:
//   ASSIGN_OR_RETURN(auto channel, t->OpenChild(endpoint));
#ifndef PROCPOOL_TRANSPORT_TRANSPORT_H_
#define PROCPOOL_TRANSPORT_TRANSPORT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace procpool {

class Channel {
 public:
  virtual ~Channel() = default;

  // Non-blocking side (the parent: its manager thread, or a caller thread
  // doing the pool's I/O, one at a time).

  // Queues `frame` for the peer and writes as much as possible at once; what
  // is left is written by later Pump() calls. Never blocks. May return
  // kUnavailable at once if the peer is gone; frames that arrived before are
  // still delivered by Pump(), which then reports kUnavailable too.
  virtual absl::Status Send(std::string frame) = 0;

  // Send() of the frame that is the concatenation of `parts`, whose bytes
  // `owner` keeps alive: the transport holds `owner` until it has written
  // them (or the channel is gone), so that a big argument the caller keeps
  // too (to run the call again elsewhere) is not copied into a frame. The
  // default concatenates.
  virtual absl::Status SendParts(std::vector<absl::string_view> parts,
                                 std::shared_ptr<const void> owner);

  // Does all I/O possible without blocking: flushes queued output and appends
  // every complete incoming frame to `*frames`, in order. Returns an error
  // once the channel is unusable (frames completed before the error are still
  // appended by this call).
  virtual absl::Status Pump(std::vector<std::string>* frames) = 0;

  // Pump() for a thread that looks at the channel on its own initiative (a
  // caller waiting for a result polls in a loop) rather than because
  // PollFd() became readable. With `stay`, the caller promises to call Poll()
  // again soon and to end with Poll(frames, false) or Pump(); the transport
  // may then leave the peer's wake-up disarmed, so that while someone polls,
  // the peer's sends cost no system call and wake nobody. Poll() never reads
  // the peer's liveness: a dead peer is still reported through PollFd() and
  // Pump(). The default is Pump().
  virtual absl::Status Poll(std::vector<std::string>* frames, bool stay) {
    (void)stay;
    return Pump(frames);
  }

  // Whether Poll() costs no system call when nothing arrived (shared memory),
  // so that a caller may poll on every Submit. false by default.
  virtual bool PollIsCheap() const { return false; }

  // Whether Poll(frames, true) leaves nothing disarmed inside the channel:
  // what wakes a waiter is PollFd()'s readiness alone (a socket). Then a
  // poller that stops needs no Poll(frames, false) to restore the wake-up:
  // the waiter's own registration of PollFd() decides. false by default.
  virtual bool StayIsStateless() const { return false; }

  // The descriptor to wait on for readability: it becomes readable whenever
  // Pump() may make progress (input arrived, the peer hung up, or output space
  // became free), and is not readable once Pump() has done all there is to do
  // (or the caller's event loop would spin). Owned by the channel.
  virtual int PollFd() const = 0;

  // The epoll events to wait for on PollFd() now: EPOLLIN always, plus
  // EPOLLOUT for socket transports while queued output remains. Re-read after
  // every Send()/Pump().
  virtual uint32_t PollEvents() const = 0;

  // Blocking side (a worker).

  // Sends `frame` and returns once it is fully handed to the transport.
  virtual absl::Status SendBlocking(absl::string_view frame) = 0;

  // SendBlocking() of the frame that is the concatenation of `parts`, without
  // concatenating them first: a big result goes from the task's own string
  // straight into the transport (wire::EncodeMessageParts). The default
  // concatenates.
  virtual absl::Status SendBlockingParts(
      absl::Span<const absl::string_view> parts);

  // Blocks until the next frame arrives. A clean close by the peer before any
  // byte of a frame is kUnavailable.
  virtual absl::StatusOr<std::string> ReceiveBlocking() = 0;

  // Descriptors with frames (both sides).

  // The most descriptors one frame may carry.
  static constexpr size_t kMaxDescriptorsPerFrame = 64;

  // Whether this channel carries descriptors with its frames (the calls
  // below work). false by default; true for unix and shm.
  virtual bool CarriesDescriptors() const { return false; }

  // SendParts() of a frame that carries `fds` too: the peer receives
  // duplicates of them (the caller keeps and still owns its own, and may
  // close them as soon as this returns), to be taken with TakeDescriptors()
  // once it has the frame. More than kMaxDescriptorsPerFrame, or a descriptor
  // that is not open, is kInvalidArgument and leaves the channel usable.
  // kUnimplemented where !CarriesDescriptors() (even with no `fds`). Never
  // blocks (parent side). Where CarriesDescriptors(), empty `fds` is
  // SendParts().
  virtual absl::Status SendPartsWithDescriptors(
      std::vector<absl::string_view> parts, std::shared_ptr<const void> owner,
      absl::Span<const int> fds);

  // SendBlockingParts() with descriptors (worker side), same rules.
  virtual absl::Status SendBlockingPartsWithDescriptors(
      absl::Span<const absl::string_view> parts, absl::Span<const int> fds);

  // The next `n` descriptors that came with the frames handed out so far by
  // Pump()/Poll()/ReceiveBlocking(), in the order they were sent (the caller
  // knows n from the frame's own content). They are close-on-exec and owned
  // by the caller. Never blocks. kDataLoss if fewer than n came with those
  // frames (a lying or broken peer); nothing is taken then. Descriptors never
  // taken are closed with the channel. TakeDescriptors(0) is an empty vector
  // on every channel; other calls are kUnimplemented where
  // !CarriesDescriptors().
  virtual absl::StatusOr<std::vector<UniqueFd>> TakeDescriptors(size_t n);
};

// What a child process needs to open its end of a channel: descriptors it
// inherits (or receives with SCM_RIGHTS, where their numbers change) and a
// transport-specific string. `fds` are owned by whoever holds the endpoint;
// the parent closes its copies once the child has them.
struct ChildEndpoint {
  std::vector<int> fds;
  std::string spec;
};

// A worker on another host, served by `procpool_worker --listen=HOST:PORT
// --auth_key_file=FILE` (worker/daemon/daemon.h). See
// Transport::ConnectRemote().
struct RemoteWorkerSpec {
  std::string address;  // "HOST:PORT" or "[IPv6]:PORT"
  std::string key;      // the shared key; never sent
  bool use_tls = false;
  std::string tls_ca_file;  // PEM to trust; empty: the system's store
  // The name the daemon's certificate must carry; empty: HOST of address.
  std::string tls_server_name;
  // Bounds TCP connect + TLS + authentication.
  absl::Duration connect_timeout = absl::Seconds(10);
  // A connection silent this long is dead (heartbeats); infinite: none.
  absl::Duration heartbeat_timeout = absl::Seconds(2);
};

struct ChannelPair {
  std::unique_ptr<Channel> parent;
  ChildEndpoint child;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // The registered name: "shm", "unix", "capnp".
  virtual absl::string_view name() const = 0;

  // Whether the channels this transport makes for local workers carry
  // descriptors (Channel::CarriesDescriptors); false by default.
  virtual bool CarriesDescriptors() const { return false; }

  // How long a caller waiting for a result polls the channels (Poll) before
  // it sleeps: about one round trip of this transport with an awake worker,
  // so that a result due soon is taken with no wake-up at all (a sleeping
  // thread costs ~15 us to wake on a small VM, and the manager's wake-up
  // comes on top). 50 us by default: a shm or unix round trip is a few.
  virtual absl::Duration WaiterPollBudget() const {
    return absl::Microseconds(50);
  }

  // Makes a connected channel: the parent's end, and the child's endpoint.
  // All descriptors are close-on-exec.
  virtual absl::StatusOr<ChannelPair> CreatePair() = 0;

  // In the child: opens its end from `endpoint`, whose fds are the child's
  // own numbers. Takes ownership of those descriptors, also on failure.
  //
  // A child forked without exec inherits the parent's end of every channel:
  // it must close every descriptor but stdio and its endpoint's before
  // serving (worker/child/serve.cc does), or a parent closing its end would go
  // unnoticed. It must not destroy inherited Channel objects either.
  virtual absl::StatusOr<std::unique_ptr<Channel>> OpenChild(
      const ChildEndpoint& endpoint) = 0;

  // The parent's end of a channel to the worker daemon at spec.address. It
  // returns at once: connecting and authenticating happen on the channel's
  // own thread, and their failures (refused, wrong key, silent host) are the
  // channel's error, whose message names the address. Only transports that
  // reach other hosts implement it ("capnp"); the others return
  // kUnimplemented.
  virtual absl::StatusOr<std::unique_ptr<Channel>> ConnectRemote(
      const RemoteWorkerSpec& spec) {
    (void)spec;
    return absl::UnimplementedError(
        "this transport reaches only local workers; remote workers need the "
        "capnp transport");
  }
};

// Registers `transport` under transport->name(). Done once per transport at
// static-initialization time by its package (see PROCPOOL_REGISTER_TRANSPORT).
void RegisterTransport(Transport* transport);

// The transport registered as `name`, or kInvalidArgument whose message lists
// the known names.
absl::StatusOr<Transport*> GetTransport(absl::string_view name);

// The registered names, sorted.
std::vector<std::string> KnownTransports();

// Registers a Transport subclass instance at static-initialization time.
#define PROCPOOL_REGISTER_TRANSPORT(Type)                            \
  static const bool procpool_transport_registered_##Type = [] {    \
    ::procpool::RegisterTransport(new Type());                      \
    return true;                                                    \
  }()

}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_TRANSPORT_H_
