#include "transport/scm_rights.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"
#include "transport/frame_header.h"

namespace procpool {
namespace {

struct Pair {
  UniqueFd a, b;
};

Pair MakePair(int type = SOCK_SEQPACKET) {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

UniqueFd Memfd(const char* contents) {
  UniqueFd fd(memfd_create("scm_rights_test", MFD_CLOEXEC));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(write(fd.get(), contents, strlen(contents)),
            static_cast<ssize_t>(strlen(contents)));
  return fd;
}

// Sends one byte `byte` with `fds` as SCM_RIGHTS.
ssize_t SendWithRights(int socket, char byte, const std::vector<int>& fds) {
  struct iovec iov = {&byte, 1};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ScmSendControl control;
  if (!fds.empty()) AttachScmRights(fds, &control, &msg);
  return sendmsg(socket, &msg, MSG_NOSIGNAL);
}

TEST(ScmRightsTest, PassesAMemfdCloseOnExec) {
  Pair p = MakePair();
  UniqueFd memfd = Memfd("hello");
  ASSERT_EQ(SendWithRights(p.a.get(), 'D', {memfd.get()}), 1);
  memfd.reset();  // the peer has its own

  std::vector<UniqueFd> came;
  char buf[4];
  int msg_flags = -1;
  ASSERT_EQ(ReceiveWithRights(p.b.get(), buf, sizeof(buf), MSG_DONTWAIT,
                              &came, &msg_flags),
            1);
  EXPECT_EQ(buf[0], 'D');
  EXPECT_EQ(msg_flags & (MSG_CTRUNC | MSG_TRUNC), 0);
  ASSERT_EQ(came.size(), 1u);
  EXPECT_NE(fcntl(came[0].get(), F_GETFD) & FD_CLOEXEC, 0);
  char read_back[8] = {};
  ASSERT_EQ(pread(came[0].get(), read_back, sizeof(read_back), 0), 5);
  EXPECT_STREQ(read_back, "hello");
}

TEST(ScmRightsTest, KeepsOrderAndAppends) {
  Pair p = MakePair();
  std::vector<UniqueFd> mine;
  std::vector<int> raw;
  for (uint32_t i = 0; i < kMaxFrameDescriptors; ++i) {
    mine.push_back(Memfd(std::string(i + 1, 'x').c_str()));
    raw.push_back(mine.back().get());
  }
  ASSERT_EQ(SendWithRights(p.a.get(), 'D', raw), 1);
  std::vector<UniqueFd> came;
  came.emplace_back();  // already there: appended after it
  char buf;
  int msg_flags;
  ASSERT_EQ(ReceiveWithRights(p.b.get(), &buf, 1, 0, &came, &msg_flags), 1);
  ASSERT_EQ(came.size(), 1 + kMaxFrameDescriptors);
  for (uint32_t i = 0; i < kMaxFrameDescriptors; ++i) {
    struct stat st;
    ASSERT_EQ(fstat(came[1 + i].get(), &st), 0);
    EXPECT_EQ(st.st_size, i + 1);
  }
}

TEST(ScmRightsTest, ReportsMsgCtruncWhenOutOfDescriptors) {
  Pair p = MakePair();
  UniqueFd memfd = Memfd("x");
  ASSERT_EQ(SendWithRights(p.a.get(), 'D', {memfd.get(), memfd.get()}), 1);
  // No room for any new descriptor: the kernel drops them, MSG_CTRUNC.
  struct rlimit old_limit;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old_limit), 0);
  struct rlimit low = old_limit;
  low.rlim_cur = 0;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<UniqueFd> came;
  char buf;
  int msg_flags = 0;
  const ssize_t n =
      ReceiveWithRights(p.b.get(), &buf, 1, MSG_DONTWAIT, &came, &msg_flags);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old_limit), 0);
  ASSERT_EQ(n, 1);
  EXPECT_NE(msg_flags & MSG_CTRUNC, 0);
  EXPECT_TRUE(came.empty());
}

TEST(ScmRightsTest, FailureAppendsNothing) {
  Pair p = MakePair();
  std::vector<UniqueFd> came;
  char buf;
  int msg_flags = -1;
  EXPECT_EQ(
      ReceiveWithRights(p.b.get(), &buf, 1, MSG_DONTWAIT, &came, &msg_flags),
      -1);
  EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);
  EXPECT_TRUE(came.empty());
  EXPECT_EQ(msg_flags, 0);
}

TEST(ScmRightsTest, CountAndOpenChecks) {
  EXPECT_TRUE(CheckDescriptorCount("t", kMaxFrameDescriptors).ok());
  const absl::Status many = CheckDescriptorCount("t", kMaxFrameDescriptors + 1);
  EXPECT_EQ(many.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(many.message(), "t: 65 descriptors for one frame; the limit is 64");

  UniqueFd memfd = Memfd("x");
  EXPECT_TRUE(CheckDescriptorsToSend("t", {memfd.get()}).ok());
  const absl::Status closed = CheckDescriptorsToSend("t", {memfd.get(), -1});
  EXPECT_EQ(closed.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(closed.message(), "t: descriptor -1 to send is not open");
}

TEST(ScmRightsTest, DuplicatesToSend) {
  UniqueFd memfd = Memfd("x");
  std::vector<UniqueFd> copies;
  ASSERT_TRUE(DuplicateDescriptorsToSend("t", {memfd.get()}, &copies).ok());
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_NE(copies[0].get(), memfd.get());
  EXPECT_NE(fcntl(copies[0].get(), F_GETFD) & FD_CLOEXEC, 0);

  std::vector<UniqueFd> bad;
  const absl::Status s = DuplicateDescriptorsToSend("t", {-1}, &bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("t: duplicating descriptor -1 to send"),
            absl::string_view::npos);
  std::vector<int> many(kMaxFrameDescriptors + 1, memfd.get());
  EXPECT_EQ(DuplicateDescriptorsToSend("t", many, &bad).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(bad.empty());
}

}  // namespace
}  // namespace procpool
