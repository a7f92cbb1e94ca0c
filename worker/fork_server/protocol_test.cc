#include "worker/fork_server/protocol.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"
#include "serialization/codec.h"

namespace procpool {
namespace fork_server {
namespace {

class ProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv_), 0);
  }
  void TearDown() override {
    for (int fd : sv_) {
      if (fd >= 0) close(fd);
    }
  }
  int sv_[2] = {-1, -1};
};

TEST_F(ProtocolTest, RequestTravelsWithItsDescriptors) {
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const Request request{"unix", "spec", true};
  ASSERT_TRUE(SendPacket(sv_[0], EncodeValue(request), {pipe_fds[1]}).ok());
  close(pipe_fds[1]);

  std::vector<UniqueFd> fds;
  absl::StatusOr<std::string> packet = ReceivePacket(sv_[1], &fds);
  ASSERT_TRUE(packet.ok()) << packet.status();
  absl::StatusOr<Request> got = DecodeValue<Request>(*packet);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, request);
  ASSERT_EQ(fds.size(), 1u);
  // A descriptor of the same pipe, close-on-exec: what is written to it
  // comes out of the read end.
  EXPECT_NE(fcntl(fds[0].get(), F_GETFD) & FD_CLOEXEC, 0);
  ASSERT_EQ(write(fds[0].get(), "x", 1), 1);
  char c = 0;
  ASSERT_EQ(read(pipe_fds[0], &c, 1), 1);
  EXPECT_EQ(c, 'x');
  // The caller owns what arrived: dropping it closes the last write end.
  fds.clear();
  EXPECT_EQ(read(pipe_fds[0], &c, 1), 0);
  close(pipe_fds[0]);
}

TEST_F(ProtocolTest, RepliesKeepTheirOrder) {
  const Reply started{kStarted, 42, 0, ""};
  const Reply exited{kExited, 42, 9, ""};
  const Reply error{kError, 0, 0, "fork: no memory"};
  for (const Reply& r : {started, exited, error}) {
    ASSERT_TRUE(SendPacket(sv_[1], EncodeValue(r), {}).ok());
  }
  for (const Reply& want : {started, exited, error}) {
    absl::StatusOr<std::string> packet = ReceivePacket(sv_[0], nullptr);
    ASSERT_TRUE(packet.ok()) << packet.status();
    absl::StatusOr<Reply> got = DecodeValue<Reply>(*packet);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, want);
  }
}

TEST_F(ProtocolTest, DescriptorsOfAnUnwantedPacketAreClosed) {
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  ASSERT_TRUE(SendPacket(sv_[0], "p", {pipe_fds[1]}).ok());
  close(pipe_fds[1]);
  absl::StatusOr<std::string> packet = ReceivePacket(sv_[1], nullptr);
  ASSERT_TRUE(packet.ok()) << packet.status();
  EXPECT_EQ(*packet, "p");
  // Every write end is closed now: the read end sees end of file.
  char c;
  EXPECT_EQ(read(pipe_fds[0], &c, 1), 0);
  close(pipe_fds[0]);
}

TEST_F(ProtocolTest, PeerClosedIsUnavailable) {
  close(sv_[0]);
  sv_[0] = -1;
  absl::StatusOr<std::string> packet = ReceivePacket(sv_[1], nullptr);
  ASSERT_FALSE(packet.ok());
  EXPECT_EQ(packet.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace fork_server
}  // namespace procpool
