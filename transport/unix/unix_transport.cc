// The "unix" transport (see unix_transport.h for the wire format): socket
// pairs whose ends are StreamChannels (transport/stream_channel.h).
#include "transport/unix/unix_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/posix_error.h"
#include "common/status_macros.h"
#include "common/sys.h"
#include "common/unique_fd.h"
#include "transport/frame_header.h"
#include "transport/stream_channel.h"
#include "transport/transport.h"

namespace procpool {
namespace {

// The frames' header (frame_header.h) and its errors.
constexpr FrameFormat kUnixFrameFormat = {kUnixFrameMagic, kUnixMaxFrameLength,
                                          "unix transport", "stream",
                                          /*descriptors=*/true};
static_assert(kUnixFrameHeaderSize == kFrameHeaderSize);

class UnixTransport final : public Transport {
 public:
  absl::string_view name() const override { return kUnixTransportName; }
  bool CarriesDescriptors() const override { return true; }

  absl::StatusOr<ChannelPair> CreatePair() override {
    int sv[2];
    if (GetSys().Socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return PosixError("unix transport: socketpair", errno);
    }
    UniqueFd parent(sv[0]);
    UniqueFd child(sv[1]);
    // Best effort: the kernel caps it at net.core.wmem_max (and doubles it).
    for (int fd : sv) {
      const int bytes = kUnixSocketBufferBytes;
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    }
    const int flags = fcntl(parent.get(), F_GETFL);
    if (flags < 0 || fcntl(parent.get(), F_SETFL, flags | O_NONBLOCK) < 0) {
      return PosixError("unix transport: fcntl(O_NONBLOCK)", errno);
    }
    ChannelPair pair;
    pair.parent = StreamChannel::Make(std::move(parent), kUnixFrameFormat, "worker");
    pair.child.fds = {child.release()};
    pair.child.spec = kUnixEndpointSpec;
    return pair;
  }

  // Takes ownership of endpoint.fds even when it fails (closes them then).
  absl::StatusOr<std::unique_ptr<Channel>> OpenChild(
      const ChildEndpoint& endpoint) override {
    std::vector<UniqueFd> owned;
    for (int fd : endpoint.fds) owned.emplace_back(fd);
    RETURN_IF_ERROR(CheckEndpoint(endpoint));
    return std::unique_ptr<Channel>(
        StreamChannel::Make(std::move(owned[0]), kUnixFrameFormat, "parent"));
  }

 private:
  // Checks that `endpoint` is one of ours and makes its socket blocking.
  static absl::Status CheckEndpoint(const ChildEndpoint& endpoint) {
    if (endpoint.fds.size() != 1 ||
        !(endpoint.spec.empty() || endpoint.spec == kUnixEndpointSpec)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unix transport: expected one descriptor and spec \"",
                       kUnixEndpointSpec, "\", got ", endpoint.fds.size(),
                       " descriptors and spec \"", endpoint.spec, "\""));
    }
    const int fd = endpoint.fds[0];
    int type = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
      return PosixError(
          absl::StrCat("unix transport: endpoint descriptor ", fd), errno);
    }
    if (type != SOCK_STREAM) {
      return absl::InvalidArgumentError(
          absl::StrCat("unix transport: endpoint descriptor ", fd,
                       " is not a stream socket"));
    }
    const int flags = fcntl(fd, F_GETFL);
    if (flags < 0 ||
        ((flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)) {
      return PosixError("unix transport: fcntl(~O_NONBLOCK)", errno);
    }
    return absl::OkStatus();
  }
};

}  // namespace

PROCPOOL_REGISTER_TRANSPORT(UnixTransport);

}  // namespace procpool
