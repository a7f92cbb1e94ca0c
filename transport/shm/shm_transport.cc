// The "shm" transport (shm_transport.h): makes the channel pairs and opens
// the child's end. The parts: the shared memory (shm_segment.h), the channel
// (shm_channel.h) and its spin gate (spin_gate.h), the rings (shm_ring.h).
#include "transport/shm/shm_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/event_fd.h"
#include "common/posix_error.h"
#include "common/status_macros.h"
#include "common/sys.h"
#include "common/unique_fd.h"
#include "glog/logging.h"
#include "transport/shm/shm_channel.h"
#include "transport/shm/shm_segment.h"
#include "transport/transport.h"

namespace procpool {
namespace {

using shm_internal::ChannelFds;
using shm_internal::CheckSealedMemfd;
using shm_internal::MakeChannelEpoll;
using shm_internal::NewShmChannel;
using shm_internal::ShmSegment;
using shm_internal::Side;
using shm_internal::ValidRingBytes;

std::string EndpointSpec(uint64_t ring_bytes) {
  return absl::StrCat(kShmEndpointSpecPrefix, ";ring=", ring_bytes);
}

class ShmTransport final : public Transport {
 public:
  ShmTransport() : ShmTransport(ShmTransportOptions{}) {}
  explicit ShmTransport(const ShmTransportOptions& options)
      : options_(options) {
    CHECK(ValidRingBytes(options_.ring_bytes))
        << "shm transport: ring_bytes " << options_.ring_bytes
        << " is not a power of two in [" << kShmMinRingBytes << ", "
        << kShmMaxRingBytes << "]";
  }

  absl::string_view name() const override { return kShmTransportName; }
  bool CarriesDescriptors() const override { return true; }

  absl::StatusOr<ChannelPair> CreatePair() override {
    const uint64_t ring_bytes = options_.ring_bytes;
    UniqueFd memfd;
    ASSIGN_OR_RETURN(ShmSegment segment,
                     ShmSegment::Create(ring_bytes, &memfd));
    // The parent looks at its input only inside Pump(), and none has run:
    // the child must wake it for its first frame.
    segment.control()->to_parent.consumer_sleeping.value.store(1);

    int sv[2];
    if (GetSys().Socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return PosixError("shm transport: socketpair", errno);
    }
    UniqueFd parent_socket(sv[0]);
    UniqueFd child_socket(sv[1]);
    // Frames' descriptors: one message per frame (shm_channel.h).
    if (GetSys().Socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) !=
        0) {
      return PosixError("shm transport: socketpair(descriptors)", errno);
    }
    UniqueFd parent_descriptors(sv[0]);
    UniqueFd child_descriptors(sv[1]);
    ASSIGN_OR_RETURN(UniqueFd to_parent, MakeEventFd("shm transport"));
    ASSIGN_OR_RETURN(UniqueFd to_child, MakeEventFd("shm transport"));
    UniqueFd child_to_parent(GetSys().DupCloexec(to_parent.get(), 0));
    if (child_to_parent.get() < 0) {
      return PosixError("shm transport: dup(eventfd)", errno);
    }
    UniqueFd child_to_child(GetSys().DupCloexec(to_child.get(), 0));
    if (child_to_child.get() < 0) {
      return PosixError("shm transport: dup(eventfd)", errno);
    }
    ASSIGN_OR_RETURN(UniqueFd epoll,
                     MakeChannelEpoll(to_parent.get(), parent_socket.get()));

    ChannelFds fds;
    fds.socket = std::move(parent_socket);
    fds.wake_self = std::move(to_parent);
    fds.wake_peer = std::move(to_child);
    fds.epoll = std::move(epoll);
    fds.descriptors = std::move(parent_descriptors);
    ChannelPair pair;
    pair.parent = NewShmChannel(Side::kParent, std::move(segment),
                                std::move(fds), options_);
    pair.child.fds = {memfd.release(), child_socket.release(),
                      child_to_parent.release(), child_to_child.release(),
                      child_descriptors.release()};
    pair.child.spec = EndpointSpec(ring_bytes);
    return pair;
  }

  // Takes ownership of endpoint.fds even when it fails (closes them then).
  absl::StatusOr<std::unique_ptr<Channel>> OpenChild(
      const ChildEndpoint& endpoint) override {
    std::vector<UniqueFd> owned;
    for (int fd : endpoint.fds) owned.emplace_back(fd);
    for (int fd : endpoint.fds) {
      if (fd < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("shm transport: endpoint descriptor ", fd));
      }
    }
    ASSIGN_OR_RETURN(const uint64_t ring_bytes, ParseEndpoint(endpoint));
    RETURN_IF_ERROR(CheckSealedMemfd(owned[0].get(), ring_bytes));
    int type = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(owned[1].get(), SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
        type != SOCK_STREAM) {
      return absl::InvalidArgumentError(
          absl::StrCat("shm transport: endpoint descriptor ", owned[1].get(),
                       " is not a stream socket"));
    }
    type = 0;
    len = sizeof(type);
    if (getsockopt(owned[4].get(), SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
        type != SOCK_SEQPACKET) {
      return absl::InvalidArgumentError(
          absl::StrCat("shm transport: endpoint descriptor ", owned[4].get(),
                       " is not a seqpacket socket"));
    }
    ASSIGN_OR_RETURN(
        ShmSegment segment,
        ShmSegment::Map(owned[0].get(), ring_bytes, endpoint.spec));
    owned[0].reset();  // the mapping keeps the memory
    ASSIGN_OR_RETURN(UniqueFd epoll,
                     MakeChannelEpoll(owned[3].get(), owned[1].get()));
    ChannelFds fds;
    fds.socket = std::move(owned[1]);
    fds.wake_peer = std::move(owned[2]);
    fds.wake_self = std::move(owned[3]);
    fds.epoll = std::move(epoll);
    fds.descriptors = std::move(owned[4]);
    return NewShmChannel(Side::kChild, std::move(segment), std::move(fds),
                         options_);
  }

 private:
  // The ring size the endpoint's spec names, if the endpoint is one of ours.
  static absl::StatusOr<uint64_t> ParseEndpoint(const ChildEndpoint& endpoint) {
    const std::string prefix = absl::StrCat(kShmEndpointSpecPrefix, ";ring=");
    absl::string_view spec = endpoint.spec;
    uint64_t ring_bytes = 0;
    if (endpoint.fds.size() != 5 || !absl::ConsumePrefix(&spec, prefix) ||
        !absl::SimpleAtoi(spec, &ring_bytes) || !ValidRingBytes(ring_bytes)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shm transport: expected five descriptors and spec \"",
          kShmEndpointSpecPrefix, ";ring=<power of two>\", got ",
          endpoint.fds.size(), " descriptors and spec \"", endpoint.spec,
          "\""));
    }
    return ring_bytes;
  }

  const ShmTransportOptions options_;
};

}  // namespace

std::unique_ptr<Transport> NewShmTransport(const ShmTransportOptions& options) {
  return std::make_unique<ShmTransport>(options);
}

PROCPOOL_REGISTER_TRANSPORT(ShmTransport);

}  // namespace procpool
