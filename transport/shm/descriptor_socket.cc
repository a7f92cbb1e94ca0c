// DescriptorSocket (see descriptor_socket.h).
#include "transport/shm/descriptor_socket.h"

#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/posix_error.h"
#include "common/unique_fd.h"
#include "transport/scm_rights.h"

namespace procpool {
namespace shm_internal {
namespace {

// The byte each descriptor message carries.
constexpr char kDescriptorMessageByte = 'D';

}  // namespace

DescriptorSocket::DescriptorSocket(int socket, int epoll, PeerLink* peer)
    : socket_(socket), epoll_(epoll), peer_(peer) {}

absl::Status DescriptorSocket::Send(const std::vector<UniqueFd>& fds,
                                    bool blocking) {
  std::vector<int> raw;
  raw.reserve(fds.size());
  for (const UniqueFd& fd : fds) raw.push_back(fd.get());
  return Send(raw, blocking);
}

absl::Status DescriptorSocket::Send(absl::Span<const int> fds, bool blocking) {
  char byte = kDescriptorMessageByte;
  struct iovec iov = {&byte, 1};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ScmSendControl control;
  AttachScmRights(fds, &control, &msg);
  for (;;) {
    if (sendmsg(socket_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) {
      return absl::OkStatus();
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!blocking) return absl::UnavailableError("descriptor socket full");
      struct pollfd p[2] = {{socket_, POLLOUT, 0},
                            {peer_->socket(), POLLRDHUP, 0}};
      if (poll(p, 2, -1) < 0 && errno != EINTR) {
        return PosixError("shm transport: poll", errno);
      }
      if (p[1].revents != 0) {
        peer_->MarkGone();
        return peer_->ClosedError();
      }
      continue;
    }
    if (errno == EPIPE || errno == ECONNRESET) {
      peer_->MarkGone();
      return peer_->ClosedError();
    }
    return PosixError(absl::StrCat("shm transport: sending descriptors to the ",
                                   peer_->name()),
                      errno);
  }
}

absl::Status DescriptorSocket::WaitForRoom() {
  full_ = true;
  if (armed_) return absl::OkStatus();
  struct epoll_event ev = {};
  ev.events = EPOLLOUT;
  ev.data.fd = socket_;
  if (epoll_ctl(epoll_, EPOLL_CTL_ADD, socket_, &ev) != 0) {
    return PosixError("shm transport: epoll_ctl(descriptor socket)", errno);
  }
  armed_ = true;
  return absl::OkStatus();
}

void DescriptorSocket::StopWaiting() {
  full_ = false;
  if (!armed_) return;
  epoll_ctl(epoll_, EPOLL_CTL_DEL, socket_, nullptr);
  armed_ = false;
}

absl::StatusOr<std::vector<UniqueFd>> DescriptorSocket::Receive(uint32_t n) {
  char bytes[2];
  std::vector<UniqueFd> came;
  int msg_flags = 0;
  ssize_t r;
  do {
    r = ReceiveWithRights(socket_, bytes, sizeof(bytes), MSG_DONTWAIT, &came,
                          &msg_flags);
  } while (r < 0 && errno == EINTR);
  if (r == 1 && bytes[0] == kDescriptorMessageByte && came.size() == n &&
      (msg_flags & (MSG_CTRUNC | MSG_TRUNC)) == 0) {
    return came;
  }
  const std::string what =
      r < 0 ? absl::StrCat("none came (",
                           PosixError("recvmsg", errno).message(), ")")
            : absl::StrCat(r, " bytes and ", came.size(), " descriptors came",
                           (msg_flags & MSG_CTRUNC) ? ", cut short" : "");
  return absl::DataLossError(absl::StrCat("shm transport: a frame from the ",
                                          peer_->name(), " announced ", n,
                                          " descriptors, but ", what));
}

}  // namespace shm_internal
}  // namespace procpool

