// Remote capnp channels: the openers that connect (parent) or accept
// (worker), with TLS and authentication, and the channel that runs over what
// they open: a ThreadedChannel (Cap'n Proto RPC) with TLS, a framed channel
// (framed_remote.h) without. See remote.h.
#include "transport/capnp/remote.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <utility>

#include <kj/async-io.h>
#include <kj/compat/tls.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/auth/handshake.h"
#include "common/posix_error.h"
#include "common/sys.h"
#include "common/unique_fd.h"
#include "transport/capnp/framed_remote.h"
#include "transport/capnp/kj_handshake.h"
#include "transport/capnp/rpc_common.h"
#include "transport/capnp/threaded_channel.h"

namespace procpool {
namespace {

using capnp_internal::OpenedStream;
using capnp_internal::StatusFromKj;
using capnp_internal::StreamOpener;
using capnp_internal::ThreadedChannel;
using capnp_internal::ThreadedChannelOptions;
using capnp_internal::ToKj;

absl::StatusOr<std::string> ReadWholeFile(const std::string& path,
                                          absl::string_view what) {
  const UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return PosixError(absl::StrCat("cannot open the ", what, " ", path), errno);
  }
  std::string contents;
  char buffer[8192];
  for (;;) {
    const ssize_t n = read(fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return PosixError(absl::StrCat("cannot read the ", what, " ", path),
                        errno);
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
  }
  return contents;
}

void SetNoDelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// A TLS handshake that failed (an untrusted or misnamed certificate, a peer
// without TLS) is kUnavailable whatever KJ's exception type: the connection
// cannot be used, and nothing was corrupted.
absl::Status TlsFailed(const kj::Exception& e, absl::string_view context) {
  return absl::UnavailableError(StatusFromKj(e, context).message());
}

OpenedStream Failed(absl::Status status) {
  OpenedStream opened;
  opened.status = std::move(status);
  return opened;
}

// Runs the handshake over `stream` and resolves to it, or to why not with
// `context` ("authentication with H:P failed") in front and `advice` after a
// refusal.
kj::Promise<OpenedStream> AuthenticateStream(kj::Own<kj::AsyncIoStream> stream,
                                             int socket_fd,
                                             auth::Handshake handshake,
                                             std::string peer_name,
                                             std::string context,
                                             std::string advice) {
  kj::AsyncIoStream& ref = *stream;
  return capnp_internal::Authenticate(ref, std::move(handshake), peer_name)
      .then(
          [stream = kj::mv(stream), socket_fd, context,
           advice](absl::Status status) mutable {
            if (status.ok()) {
              OpenedStream opened;
              opened.stream = kj::mv(stream);
              opened.socket_fd = socket_fd;
              return opened;
            }
            std::string message = absl::StrCat("capnp transport: ", context,
                                               ": ", status.message());
            if (absl::StrContains(status.message(), "our key")) {
              absl::StrAppend(&message, "; ", advice);  // the keys differ
            }
            return Failed(absl::Status(status.code(), message));
          },
          [context](kj::Exception&& e) {
            return Failed(StatusFromKj(e, context));
          });
}

// The parent's side: TCP connect, TLS client, handshake as kParent.
class ConnectOpener final : public StreamOpener {
 public:
  ConnectOpener(RemoteWorkerOptions options, HostPort where,
                std::string ca_pem, auth::Handshake handshake)
      : options_(std::move(options)),
        where_(std::move(where)),
        ca_pem_(std::move(ca_pem)),
        handshake_(std::move(handshake)),
        peer_(absl::StrCat("worker daemon at ", options_.address)) {}

  kj::Promise<OpenedStream> Open(kj::AsyncIoContext& io) override {
    kj::Promise<OpenedStream> setup =
        kj::evalNow([this, &io] { return Connect(io); });
    return setup.exclusiveJoin(
        io.provider->getTimer()
            .afterDelay(ToKj(options_.connect_timeout))
            .then([this] {
              return Failed(absl::UnavailableError(absl::StrCat(
                  "capnp transport: the ", peer_,
                  " did not connect and authenticate within ",
                  absl::FormatDuration(options_.connect_timeout),
                  " (is the host up, the port open, and the daemon "
                  "running?)")));
            }));
  }

 private:
  kj::Promise<OpenedStream> Connect(kj::AsyncIoContext& io) {
    return io.provider->getNetwork()
        .parseAddress(where_.host, where_.port)
        .then([](kj::Own<kj::NetworkAddress> address) {
          return address->connect().attach(kj::mv(address));
        })
        .then(
            [this](kj::Own<kj::AsyncIoStream> raw) {
              return Secure(kj::mv(raw));
            },
            [this](kj::Exception&& e) {
              return kj::Promise<OpenedStream>(Failed(StatusFromKj(
                  e, absl::StrCat("cannot connect to the ", peer_))));
            });
  }

  kj::Promise<OpenedStream> Secure(kj::Own<kj::AsyncIoStream> raw) {
    int socket_fd = -1;
    KJ_IF_MAYBE(fd, raw->getFd()) {
      socket_fd = *fd;
      SetNoDelay(socket_fd);
    }
    if (!options_.use_tls) return Authenticate(kj::mv(raw), socket_fd);
    return kj::evalNow([this, &raw] {
             kj::TlsContext::Options tls;
             kj::Vector<kj::TlsCertificate> trusted;
             if (!ca_pem_.empty()) {
               trusted.add(kj::TlsCertificate(ca_pem_.c_str()));
               tls.useSystemTrustStore = false;
             }
             kj::Array<kj::TlsCertificate> certificates =
                 trusted.releaseAsArray();
             tls.trustedCertificates = certificates;
             auto context = kj::heap<kj::TlsContext>(kj::mv(tls));
             const std::string name = options_.tls_server_name.empty()
                                          ? where_.host
                                          : options_.tls_server_name;
             kj::Promise<kj::Own<kj::AsyncIoStream>> wrapped =
                 context->wrapClient(kj::mv(raw), name.c_str());
             return wrapped.then(
                 [context = kj::mv(context),
                  certificates = kj::mv(certificates)](
                     kj::Own<kj::AsyncIoStream> secure) mutable {
                   return secure.attach(kj::mv(context),
                                        kj::mv(certificates));
                 });
           })
        .then(
            [this, socket_fd](kj::Own<kj::AsyncIoStream> secure) {
              return Authenticate(kj::mv(secure), socket_fd);
            },
            [this](kj::Exception&& e) {
              return kj::Promise<OpenedStream>(Failed(TlsFailed(
                  e, absl::StrCat("TLS with the ", peer_, " failed"))));
            });
  }

  kj::Promise<OpenedStream> Authenticate(kj::Own<kj::AsyncIoStream> stream,
                                         int socket_fd) {
    return AuthenticateStream(
        kj::mv(stream), socket_fd, std::move(handshake_),
        "the worker daemon",
        absl::StrCat("authentication with ", options_.address, " failed"),
        "check that the worker daemon's --auth_key_file and this program's "
        "key hold the same secret");
  }

  const RemoteWorkerOptions options_;
  const HostPort where_;
  const std::string ca_pem_;
  auth::Handshake handshake_;
  const std::string peer_;  // "worker daemon at H:P"
};

// The worker's side: an accepted socket, TLS server, handshake as kWorker.
class AcceptOpener final : public StreamOpener {
 public:
  AcceptOpener(UniqueFd socket, RemoteParentOptions options,
               std::string cert_pem, std::string key_pem,
               auth::Handshake handshake)
      : socket_(std::move(socket)),
        options_(std::move(options)),
        cert_pem_(std::move(cert_pem)),
        key_pem_(std::move(key_pem)),
        handshake_(std::move(handshake)) {}
  kj::Promise<OpenedStream> Open(kj::AsyncIoContext& io) override {
    const int fd = socket_.release();  // KJ owns it from here
    kj::Own<kj::AsyncIoStream> raw = io.lowLevelProvider->wrapSocketFd(
        fd, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP |
                kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC);
    kj::Promise<OpenedStream> setup = options_.use_tls
                                          ? Secure(kj::mv(raw), fd)
                                          : Authenticate(kj::mv(raw), fd);
    return setup.exclusiveJoin(
        io.provider->getTimer()
            .afterDelay(ToKj(options_.auth_timeout))
            .then([this] {
              return Failed(absl::UnavailableError(absl::StrCat(
                  "capnp transport: the parent at ", options_.peer_address,
                  " did not authenticate within ",
                  absl::FormatDuration(options_.auth_timeout))));
            }));
  }

 private:
  kj::Promise<OpenedStream> Secure(kj::Own<kj::AsyncIoStream> raw, int fd) {
    return kj::evalNow([this, &raw] {
             auto keypair = kj::heap<kj::TlsKeypair>(kj::TlsKeypair{
                 kj::TlsPrivateKey(key_pem_.c_str()),
                 kj::TlsCertificate(cert_pem_.c_str())});
             kj::TlsContext::Options tls;
             tls.defaultKeypair = *keypair;
             auto context = kj::heap<kj::TlsContext>(kj::mv(tls));
             kj::Promise<kj::Own<kj::AsyncIoStream>> wrapped =
                 context->wrapServer(kj::mv(raw));
             return wrapped.then(
                 [context = kj::mv(context), keypair = kj::mv(keypair)](
                     kj::Own<kj::AsyncIoStream> secure) mutable {
                   return secure.attach(kj::mv(context), kj::mv(keypair));
                 });
           })
        .then(
            [this, fd](kj::Own<kj::AsyncIoStream> secure) {
              return Authenticate(kj::mv(secure), fd);
            },
            [this](kj::Exception&& e) {
              return kj::Promise<OpenedStream>(Failed(TlsFailed(
                  e, absl::StrCat("TLS with the parent at ",
                                  options_.peer_address, " failed"))));
            });
  }

  kj::Promise<OpenedStream> Authenticate(kj::Own<kj::AsyncIoStream> stream,
                                         int fd) {
    return AuthenticateStream(
        kj::mv(stream), fd, std::move(handshake_),
        absl::StrCat("the parent at ", options_.peer_address),
        absl::StrCat("authentication of the parent at ", options_.peer_address,
                     " failed"),
        "the parent must use the same key as this daemon's --auth_key_file");
  }

  UniqueFd socket_;  // until Open() hands it to KJ
  const RemoteParentOptions options_;
  const std::string cert_pem_;
  const std::string key_pem_;
  auth::Handshake handshake_;
};

// The worker's end without TLS: authenticates on a KJ loop of this thread,
// then keeps a duplicate of the socket for a framed channel.
absl::StatusOr<std::unique_ptr<Channel>> AcceptFramed(
    UniqueFd socket, const RemoteParentOptions& options,
    auth::Handshake handshake) {
  absl::Status status;
  UniqueFd framed_socket;
  const absl::Status kj_error = capnp_internal::CatchKj(
      absl::StrCat("authenticating the parent at ", options.peer_address),
      [&] {
        kj::AsyncIoContext io = kj::setupAsyncIo();
        AcceptOpener opener(std::move(socket), options, "", "",
                            std::move(handshake));
        OpenedStream opened = opener.Open(io).wait(io.waitScope);
        status = opened.status;
        if (!status.ok()) return;
        const int fd = GetSys().DupCloexec(opened.socket_fd, 0);
        if (fd < 0) {
          status = PosixError(
              "capnp transport: dup of the authenticated socket", errno);
          return;
        }
        framed_socket = UniqueFd(fd);
      });
  if (status.ok()) status = kj_error;
  if (!status.ok()) return status;
  capnp_internal::FramedWorkerOptions framed;
  framed.peer_name = absl::StrCat("parent at ", options.peer_address);
  framed.keepalive_interval = options.heartbeat_interval;
  framed.heartbeat_timeout = options.heartbeat_timeout;
  framed.preamble_timeout = options.auth_timeout;
  framed.on_connection_lost = options.on_connection_lost;
  return capnp_internal::OpenFramedWorkerChannel(std::move(framed_socket),
                                                 std::move(framed));
}

}  // namespace

absl::StatusOr<HostPort> ParseHostPort(absl::string_view address) {
  HostPort result;
  absl::string_view port;
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == absl::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad address \"", address, "\": expected [IPv6]:PORT"));
    }
    result.host = std::string(address.substr(1, close - 1));
    port = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos ||
        address.find(':') != colon) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad address \"", address,
          "\": expected HOST:PORT (an IPv6 address in brackets: [::1]:PORT)"));
    }
    result.host = std::string(address.substr(0, colon));
    port = address.substr(colon + 1);
  }
  uint32_t number = 0;
  if (result.host.empty() || !absl::SimpleAtoi(port, &number) ||
      number > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad address \"", address,
        "\": expected HOST:PORT with a port from 0 to 65535"));
  }
  result.port = static_cast<uint16_t>(number);
  return result;
}

namespace {

// KJ builds its network filter's table of CIDR ranges (a function-local
// static) the first time an address is parsed. libkj is not instrumented, so
// two channel threads doing that at once look like a data race to
// ThreadSanitizer (seen in executor:remote_test, several slots connecting
// together, with the writer's stack lost so that no suppression matched).
// Parsing one address here, once, on the calling thread, builds it before
// any channel thread runs.
void BuildKjNetworkTablesOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    // A thread that runs a KJ loop already cannot set up another: then the
    // tables are built on the first channel thread, as before.
    kj::runCatchingExceptions([] {
      kj::AsyncIoContext io = kj::setupAsyncIo();
      io.provider->getNetwork().parseAddress("127.0.0.1", 1).wait(io.waitScope);
    });
  });
}

}  // namespace

absl::StatusOr<std::unique_ptr<Channel>> ConnectRemoteWorker(
    const RemoteWorkerOptions& options) {
  BuildKjNetworkTablesOnce();
  absl::StatusOr<HostPort> where = ParseHostPort(options.address);
  if (!where.ok()) return where.status();
  if (where->port == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "remote worker address \"", options.address, "\" needs a port"));
  }
  absl::StatusOr<auth::Handshake> handshake = auth::Handshake::Start(
      auth::AuthRole::kParent, options.key, "the worker daemon");
  if (!handshake.ok()) {
    return absl::Status(
        handshake.status().code(),
        absl::StrCat("remote worker ", options.address, ": ",
                     handshake.status().message()));
  }
  std::string ca_pem;
  if (options.use_tls && !options.tls_ca_file.empty()) {
    absl::StatusOr<std::string> pem =
        ReadWholeFile(options.tls_ca_file, "TLS CA file");
    if (!pem.ok()) return pem.status();
    ca_pem = *std::move(pem);
  }
  auto opener = std::make_unique<ConnectOpener>(
      options, *std::move(where), std::move(ca_pem), *std::move(handshake));
  if (!options.use_tls) {
    capnp_internal::FramedParentOptions framed;
    framed.peer_name = absl::StrCat("worker daemon at ", options.address);
    framed.keepalive_interval = options.heartbeat_interval;
    framed.heartbeat_timeout = options.heartbeat_interval > absl::ZeroDuration()
                                   ? options.heartbeat_timeout
                                   : absl::ZeroDuration();
    return capnp_internal::StartFramedParentChannel(std::move(opener),
                                                    std::move(framed));
  }
  ThreadedChannelOptions channel;
  channel.side = capnp::rpc::twoparty::Side::CLIENT;
  channel.peer_name = absl::StrCat("worker daemon at ", options.address);
  channel.heartbeat_interval = options.heartbeat_interval;
  channel.heartbeat_timeout = options.heartbeat_timeout;
  absl::StatusOr<std::unique_ptr<ThreadedChannel>> started =
      ThreadedChannel::Start(std::move(opener), std::move(channel));
  if (!started.ok()) return started.status();
  return std::unique_ptr<Channel>(*std::move(started));
}

absl::StatusOr<std::unique_ptr<Channel>> AcceptRemoteParent(
    int socket_fd, const RemoteParentOptions& options) {
  UniqueFd socket(socket_fd);
  const std::string peer = absl::StrCat("the parent at ", options.peer_address);
  absl::StatusOr<auth::Handshake> handshake =
      auth::Handshake::Start(auth::AuthRole::kWorker, options.key, peer);
  std::string cert_pem, key_pem;
  absl::Status files = handshake.status();
  if (files.ok() && options.use_tls) {
    absl::StatusOr<std::string> cert =
        ReadWholeFile(options.tls_cert_file, "TLS certificate file");
    absl::StatusOr<std::string> key =
        ReadWholeFile(options.tls_key_file, "TLS key file");
    files = !cert.ok() ? cert.status() : key.status();
    if (files.ok()) {
      cert_pem = *std::move(cert);
      key_pem = *std::move(key);
    }
  }
  if (!files.ok()) return files;
  SetNoDelay(socket.get());
  if (!options.use_tls) {
    return AcceptFramed(std::move(socket), options, *std::move(handshake));
  }
  ThreadedChannelOptions channel;
  channel.side = capnp::rpc::twoparty::Side::SERVER;
  channel.peer_name = absl::StrCat("parent at ", options.peer_address);
  channel.heartbeat_interval = options.heartbeat_interval;
  channel.heartbeat_timeout = options.heartbeat_timeout;
  channel.acknowledged_sends = true;
  channel.on_error = options.on_connection_lost;
  absl::StatusOr<std::unique_ptr<ThreadedChannel>> started =
      ThreadedChannel::Start(
          std::make_unique<AcceptOpener>(std::move(socket), options,
                                         std::move(cert_pem),
                                         std::move(key_pem),
                                         *std::move(handshake)),
          std::move(channel));
  if (!started.ok()) return started.status();
  // The opener gives up by itself after auth_timeout; the margin only guards
  // against a channel thread that never reports.
  absl::Status open =
      (*started)->WaitUntilOpen(options.auth_timeout + absl::Seconds(5));
  if (!open.ok()) return open;
  return std::unique_ptr<Channel>(*std::move(started));
}

}  // namespace procpool
