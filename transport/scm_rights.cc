// SCM_RIGHTS mechanics (see scm_rights.h).
#include "transport/scm_rights.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/posix_error.h"
#include "common/status_macros.h"
#include "common/sys.h"
#include "common/unique_fd.h"

namespace procpool {
namespace {

// Room for any SCM_RIGHTS message the kernel may deliver (receiving).
union ReceiveControl {
  struct cmsghdr align;
  char bytes[CMSG_SPACE(sizeof(int) * kScmMaxFd)];
};

}  // namespace

void AttachScmRights(absl::Span<const int> fds, ScmSendControl* control,
                     struct msghdr* msg) {
  msg->msg_control = control->bytes;
  msg->msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
}

ssize_t ReceiveWithRights(int socket, char* data, size_t size, int flags,
                          std::vector<UniqueFd>* fds, int* msg_flags) {
  struct iovec iov = {data, size};
  ReceiveControl control;
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.bytes;
  msg.msg_controllen = sizeof(control.bytes);
  const ssize_t n = recvmsg(socket, &msg, flags | MSG_CMSG_CLOEXEC);
  *msg_flags = n < 0 ? 0 : msg.msg_flags;
  if (n < 0) return n;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
       c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds->emplace_back(fd);
    }
  }
  return n;
}

absl::Status CheckDescriptorCount(absl::string_view name, size_t n) {
  if (n <= kMaxFrameDescriptors) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(name, ": ", n, " descriptors for one frame; the limit is ",
                   kMaxFrameDescriptors));
}

absl::Status CheckDescriptorsToSend(absl::string_view name,
                                    absl::Span<const int> fds) {
  RETURN_IF_ERROR(CheckDescriptorCount(name, fds.size()));
  for (int fd : fds) {
    if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": descriptor ", fd, " to send is not open"));
    }
  }
  return absl::OkStatus();
}

absl::Status DuplicateDescriptorsToSend(absl::string_view name,
                                        absl::Span<const int> fds,
                                        std::vector<UniqueFd>* copies) {
  RETURN_IF_ERROR(CheckDescriptorCount(name, fds.size()));
  copies->reserve(copies->size() + fds.size());
  for (int fd : fds) {
    UniqueFd copy(fd < 0 ? -1 : GetSys().DupCloexec(fd, 0));
    if (!copy.valid()) {
      const int error_number = fd < 0 ? EBADF : errno;
      const absl::Status s = PosixError(
          absl::StrCat(name, ": duplicating descriptor ", fd, " to send"),
          error_number);
      if (error_number == EBADF) return absl::InvalidArgumentError(s.message());
      return s;
    }
    copies->push_back(std::move(copy));
  }
  return absl::OkStatus();
}

}  // namespace procpool
