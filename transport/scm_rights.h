// SCM_RIGHTS mechanics shared by the channels that carry descriptors with
// their frames (transport/stream_channel.cc: unix; transport/shm: the
// descriptor socket): the checks on descriptors a caller asks to send, the
// control message that carries up to kMaxFrameDescriptors of them on a
// sendmsg(), and a recvmsg() that collects the descriptors that came as
// UniqueFd (close-on-exec) and reports MSG_CTRUNC.
//
// Example (sending one message with descriptors, then receiving it):
//   RETURN_IF_ERROR(CheckDescriptorsToSend("unix transport", fds));
//   struct iovec iov = {&byte, 1};
//   struct msghdr msg = {};
//   msg.msg_iov = &iov;
//   msg.msg_iovlen = 1;
//   ScmSendControl control;
//   AttachScmRights(fds, &control, &msg);
//   sendmsg(socket, &msg, MSG_NOSIGNAL);
//   ...
//   std::vector<UniqueFd> came;
//   int msg_flags;
//   ssize_t n = ReceiveWithRights(peer, buf, sizeof(buf), MSG_DONTWAIT,
//                                 &came, &msg_flags);
//   if (n >= 0 && (msg_flags & MSG_CTRUNC)) ... some were dropped ...
//
// Internal to the transport implementations. Thread safety: free functions
// and a value type; safe from any thread on distinct arguments.
#ifndef PROCPOOL_TRANSPORT_SCM_RIGHTS_H_
#define PROCPOOL_TRANSPORT_SCM_RIGHTS_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/unique_fd.h"
#include "transport/frame_header.h"

namespace procpool {

// The most descriptors the kernel passes in one message (SCM_MAX_FD, not in
// the user-space headers): one recvmsg() never brings more.
inline constexpr size_t kScmMaxFd = 253;

// Room for the control message of one frame's descriptors (sending).
union ScmSendControl {
  struct cmsghdr align;
  char bytes[CMSG_SPACE(sizeof(int) * kMaxFrameDescriptors)];
};

// Puts `fds` (1..kMaxFrameDescriptors) in `msg` as one SCM_RIGHTS control
// message, stored in `control` (which must outlive the sendmsg()).
void AttachScmRights(absl::Span<const int> fds, ScmSendControl* control,
                     struct msghdr* msg);

// recvmsg() on `socket` of up to `size` bytes into `data`, with `flags` |
// MSG_CMSG_CLOEXEC and room for any SCM_RIGHTS message the kernel may deliver
// (kScmMaxFd descriptors). Appends the descriptors that came to `*fds`, in
// order (owned, close-on-exec), and sets `*msg_flags` to the message's flags
// (MSG_CTRUNC: descriptors were dropped; MSG_TRUNC: bytes were). Returns
// recvmsg()'s result: -1 with errno set (and nothing appended) on failure.
ssize_t ReceiveWithRights(int socket, char* data, size_t size, int flags,
                          std::vector<UniqueFd>* fds, int* msg_flags);

// OK for up to kMaxFrameDescriptors descriptors in one frame, else
// kInvalidArgument: "<name>: <n> descriptors for one frame; the limit is 64".
absl::Status CheckDescriptorCount(absl::string_view name, size_t n);

// For a blocking send, which writes the caller's own descriptors:
// CheckDescriptorCount(), then kInvalidArgument for one that is not open
// ("<name>: descriptor <fd> to send is not open"), which would otherwise fail
// sendmsg() and with it the channel.
absl::Status CheckDescriptorsToSend(absl::string_view name,
                                    absl::Span<const int> fds);

// For a queued send: CheckDescriptorCount(), then close-on-exec duplicates
// of `fds` (GetSys().DupCloexec) appended to `*copies`, so that the caller may
// close its own at once. kInvalidArgument for one that is not open, the
// dup's error (PosixError) otherwise.
absl::Status DuplicateDescriptorsToSend(absl::string_view name,
                                        absl::Span<const int> fds,
                                        std::vector<UniqueFd>* copies);

}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_SCM_RIGHTS_H_
