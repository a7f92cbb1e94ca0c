#include "worker/fork_server/protocol.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "common/posix_error.h"

namespace procpool {
namespace fork_server {
namespace {

constexpr int kMaxFds = 16;
constexpr size_t kMaxPacket = 64 * 1024;

}  // namespace

absl::Status SendPacket(int fd, const std::string& data,
                        const std::vector<int>& fds) {
  struct iovec iov = {const_cast<char*>(data.data()), data.size()};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  while (sendmsg(fd, &msg, MSG_NOSIGNAL) < 0) {
    if (errno != EINTR) return PosixError("fork server sendmsg", errno);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReceivePacket(int fd, std::vector<UniqueFd>* fds) {
  std::string data(kMaxPacket, '\0');
  struct iovec iov = {data.data(), data.size()};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  while ((n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC)) < 0) {
    if (errno != EINTR) return PosixError("fork server recvmsg", errno);
  }
  if (n == 0) return absl::UnavailableError("fork server connection closed");
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      std::vector<int> got(count);
      std::memcpy(got.data(), CMSG_DATA(c), count * sizeof(int));
      for (int f : got) {
        UniqueFd owned(f);
        if (fds) fds->push_back(std::move(owned));  // else: closed here
      }
    }
  }
  data.resize(static_cast<size_t>(n));
  return data;
}

}  // namespace fork_server
}  // namespace procpool
