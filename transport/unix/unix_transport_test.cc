#include "transport/unix/unix_transport.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/posix_error.h"
#include "glog/logging.h"
#include "gtest/gtest.h"
#include "transport/testing/conformance.h"
#include "transport/testing/harness.h"
#include "transport/transport.h"

INSTANTIATE_TRANSPORT_CONFORMANCE(unix);

namespace procpool {
namespace {

using transport_testing::ChannelDriver;
using transport_testing::ChildFailure;
using transport_testing::CloseEndpoint;
using transport_testing::ExitsCleanly;
using transport_testing::ForkedChild;
using transport_testing::Pattern;
using transport_testing::ScopedDefaultSigpipe;
using transport_testing::SignalPipe;

constexpr absl::Duration kTimeout = absl::Seconds(10);

// A frame header as the unix transport writes it.
std::string Header(uint64_t length, uint32_t flags = 0,
                   absl::string_view magic = "PPU1") {
  std::string header(magic.substr(0, 4));
  for (int i = 0; i < 4; ++i) header += static_cast<char>(flags >> (8 * i));
  for (int i = 0; i < 8; ++i) header += static_cast<char>(length >> (8 * i));
  return header;
}

Transport* UnixTransport() {
  absl::StatusOr<Transport*> transport = GetTransport(kUnixTransportName);
  CHECK(transport.ok()) << transport.status();
  return *transport;
}

// The parent's channel, and the child's socket used raw.
struct RawPair {
  RawPair() {
    absl::StatusOr<ChannelPair> pair = UnixTransport()->CreatePair();
    CHECK(pair.ok()) << pair.status();
    CHECK_EQ(pair->child.fds.size(), 1u);
    parent = std::move(pair->parent);
    raw = pair->child.fds[0];
  }
  ~RawPair() { CloseRaw(); }

  void CloseRaw() {
    if (raw >= 0) close(raw);
    raw = -1;
  }
  // Writes `bytes` into the child's socket: the parent reads them as frames.
  bool Write(absl::string_view bytes) const {
    return WriteFully(raw, bytes.data(), bytes.size()).ok();
  }
  // Writes `bytes` in one sendmsg() that carries `fds` as SCM_RIGHTS.
  bool WriteWithDescriptors(absl::string_view bytes,
                            const std::vector<int>& fds) const {
    struct iovec iov = {const_cast<char*>(bytes.data()), bytes.size()};
    union {
      struct cmsghdr align;
      char bytes[CMSG_SPACE(sizeof(int) * 100)];
    } control;
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
    return sendmsg(raw, &msg, MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }

  std::unique_ptr<Channel> parent;
  int raw = -1;
};

TEST(UnixTransportTest, IsRegistered) {
  absl::StatusOr<Transport*> transport = GetTransport("unix");
  ASSERT_TRUE(transport.ok()) << transport.status();
  EXPECT_EQ((*transport)->name(), "unix");
  const std::vector<std::string> names = KnownTransports();
  EXPECT_NE(std::find(names.begin(), names.end(), "unix"), names.end());
}

TEST(UnixTransportTest, ParentEndNonBlockingChildEndBlocking) {
  RawPair pair;
  EXPECT_NE(fcntl(pair.parent->PollFd(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_EQ(fcntl(pair.raw, F_GETFL) & O_NONBLOCK, 0);
}

// Both ends ask for kUnixSocketBufferBytes of send buffer; the kernel caps
// the request at net.core.wmem_max and doubles it.
TEST(UnixTransportTest, SocketsAskForBigSendBuffers) {
  RawPair pair;
  int64_t cap = kUnixSocketBufferBytes;
  if (FILE* f = fopen("/proc/sys/net/core/wmem_max", "r")) {
    long long max = 0;
    if (fscanf(f, "%lld", &max) == 1) cap = std::min<int64_t>(cap, max);
    fclose(f);
  }
  for (int fd : {pair.parent->PollFd(), pair.raw}) {
    int bytes = 0;
    socklen_t len = sizeof bytes;
    ASSERT_EQ(getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, &len), 0);
    EXPECT_EQ(bytes, 2 * cap) << "fd " << fd;
  }
}

TEST(UnixTransportTest, WireFormat) {
  RawPair pair;
  ASSERT_TRUE(pair.parent->Send("abc").ok());
  std::string got(kUnixFrameHeaderSize + 3, '\0');
  ASSERT_TRUE(ReadFully(pair.raw, &got[0], got.size()).ok());
  EXPECT_EQ(got, Header(3) + "abc");

  ASSERT_TRUE(pair.Write(Header(5) + "hello" + Header(0) + Header(2) + "ok"));
  ChannelDriver driver(pair.parent.get());
  ASSERT_TRUE(driver.PumpUntilFrames(3, kTimeout).ok());
  EXPECT_EQ(driver.frames(), (std::vector<std::string>{"hello", "", "ok"}));
}

TEST(UnixTransportTest, PollEventsAskForOutputSpaceOnlyWhileOutputIsQueued) {
  RawPair pair;
  EXPECT_EQ(pair.parent->PollEvents(), EPOLLIN);
  // The child's end goes to a child that reads nothing and exits once told
  // (or after a few seconds, so that a Send() that blocks fails the test).
  SignalPipe done;
  absl::StatusOr<ForkedChild> child = ForkedChild::Start(
      [&done] { return done.Await(absl::Seconds(5)) ? 0 : 1; },
      {pair.raw, done.read_fd()});
  pair.CloseRaw();
  ASSERT_TRUE(child.ok()) << child.status();
  ASSERT_TRUE(pair.parent->Send(Pattern(8 << 20, 1)).ok());
  EXPECT_EQ(pair.parent->PollEvents(), EPOLLIN | EPOLLOUT)
      << "most of 8 MiB stays queued";
  ASSERT_TRUE(done.Signal());
  EXPECT_TRUE(ExitsCleanly(*child, kTimeout));
}

TEST(UnixTransportTest, BadMagicIsDataLoss) {
  RawPair pair;
  ASSERT_TRUE(pair.Write("GARBAGE!GARBAGE!GARBAGE!"));
  ChannelDriver driver(pair.parent.get());
  const absl::Status status = driver.PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "magic")) << status;
  EXPECT_TRUE(driver.frames().empty());
}

TEST(UnixTransportTest, GarbageBytesAreDataLoss) {
  RawPair pair;
  ASSERT_TRUE(pair.Write(Pattern(1000, 99)));
  ChannelDriver driver(pair.parent.get());
  const absl::Status status = driver.PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
}

TEST(UnixTransportTest, FramesBeforeCorruptionAreDelivered) {
  RawPair pair;
  ASSERT_TRUE(pair.Write(Header(2) + "ok" + Header(1) + "!" +
                         Header(3, 0, "XXXX") + "bad"));
  ChannelDriver driver(pair.parent.get());
  const absl::Status status = driver.PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_EQ(driver.frames(), (std::vector<std::string>{"ok", "!"}));
  // The channel stays failed.
  std::vector<std::string> more;
  EXPECT_TRUE(absl::IsDataLoss(pair.parent->Pump(&more)));
  EXPECT_TRUE(more.empty());
  EXPECT_TRUE(absl::IsDataLoss(pair.parent->Send("x")));
}

TEST(UnixTransportTest, UnknownFlagsAreDataLoss) {
  // 0x100: a reserved bit; 65: more descriptors than a frame may carry.
  for (uint32_t flags : {0x100u, 65u}) {
    RawPair pair;
    ASSERT_TRUE(pair.Write(Header(1, flags) + "x"));
    ChannelDriver driver(pair.parent.get());
    const absl::Status status = driver.PumpUntilError(kTimeout);
    EXPECT_TRUE(absl::IsDataLoss(status)) << flags << ": " << status;
  }
}

// A lying peer: descriptors a header announced that did not come with its
// first byte, or descriptors no header announced, are kDataLoss; frames
// before are delivered; nothing leaks.
TEST(UnixTransportTest, DescriptorsThatDoNotMatchTheirHeadersAreDataLoss) {
  const int before = transport_testing::CountOpenFds();
  {
    RawPair pair;  // announced 2, none came
    ASSERT_TRUE(pair.Write(Header(2) + "ok" + Header(1, /*flags=*/2) + "x"));
    ChannelDriver driver(pair.parent.get());
    const absl::Status status = driver.PumpUntilError(kTimeout);
    EXPECT_TRUE(absl::IsDataLoss(status)) << status;
    EXPECT_TRUE(absl::StrContains(status.message(), "did not come")) << status;
    EXPECT_EQ(driver.frames()[0], "ok");
  }
  {
    RawPair pair;  // 3 came, none announced
    ASSERT_TRUE(pair.WriteWithDescriptors(Header(2) + "ok", {0, 1, 2}));
    ChannelDriver driver(pair.parent.get());
    const absl::Status status = driver.PumpUntilError(kTimeout);
    EXPECT_TRUE(absl::IsDataLoss(status)) << status;
    EXPECT_TRUE(absl::StrContains(status.message(), "no frame header"))
        << status;
    EXPECT_TRUE(absl::IsDataLoss(pair.parent->TakeDescriptors(1).status()));
  }
  {
    RawPair pair;  // announced 1, 2 came
    ASSERT_TRUE(pair.WriteWithDescriptors(Header(1, /*flags=*/1) + "x", {0, 1}));
    ChannelDriver driver(pair.parent.get());
    EXPECT_TRUE(absl::IsDataLoss(driver.PumpUntilError(kTimeout)));
  }
  {
    RawPair pair;  // what came with a frame cut short closes at once
    ASSERT_TRUE(pair.WriteWithDescriptors(Header(10, /*flags=*/2) + "x", {0, 1}));
    pair.CloseRaw();
    ChannelDriver driver(pair.parent.get());
    EXPECT_TRUE(absl::IsUnavailable(driver.PumpUntilError(kTimeout)));
    // The channel's socket and the driver's epoll only.
    EXPECT_EQ(transport_testing::CountOpenFds(), before + 2);
  }
  EXPECT_EQ(transport_testing::CountOpenFds(), before);
}

TEST(UnixTransportTest, ImpossibleLengthIsDataLoss) {
  for (uint64_t length : {kUnixMaxFrameLength + 1, ~uint64_t{0}}) {
    RawPair pair;
    ASSERT_TRUE(pair.Write(Header(length) + "xxxx"));
    ChannelDriver driver(pair.parent.get());
    const absl::Status status = driver.PumpUntilError(kTimeout);
    EXPECT_TRUE(absl::IsDataLoss(status)) << length << ": " << status;
  }
}

TEST(UnixTransportTest, HugeClaimedLengthIsNotAllocatedUpFront) {
  // 1 TiB claimed, 1000 bytes sent: allocating the claim would throw.
  RawPair pair;
  ASSERT_TRUE(pair.Write(Header(kUnixMaxFrameLength) + Pattern(1000, 5)));
  pair.CloseRaw();
  ChannelDriver driver(pair.parent.get());
  const absl::Status status = driver.PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "middle of a frame"))
      << status;
}

TEST(UnixTransportTest, TruncatedFrameThenCloseIsUnavailable) {
  RawPair pair;
  ASSERT_TRUE(pair.Write(Header(1000) + "0123456789"));
  pair.CloseRaw();
  ChannelDriver driver(pair.parent.get());
  const absl::Status status = driver.PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "10 of 1000")) << status;
  EXPECT_TRUE(driver.frames().empty());
}

TEST(UnixTransportTest, TruncatedHeaderThenCloseIsUnavailable) {
  RawPair pair;
  ASSERT_TRUE(pair.Write(Header(2) + "ok" + "PPU1x"));
  pair.CloseRaw();
  ChannelDriver driver(pair.parent.get());
  const absl::Status status = driver.PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "5 of 16")) << status;
  EXPECT_EQ(driver.frames(), std::vector<std::string>{"ok"});
}

// The child's end, in a forked child, against raw bytes from the parent's
// socket: corrupt input is kDataLoss, a truncated frame then close is
// kUnavailable, and writing afterwards fails without SIGPIPE.
TEST(UnixTransportTest, ChildEndRejectsCorruptAndTruncatedInput) {
  ScopedDefaultSigpipe sigpipe;
  for (const bool corrupt : {true, false}) {
    absl::StatusOr<ChannelPair> pair = UnixTransport()->CreatePair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    const ChildEndpoint endpoint = pair->child;
    absl::StatusOr<ForkedChild> child = ForkedChild::Start(
        [&endpoint, corrupt]() {
          absl::StatusOr<std::unique_ptr<Channel>> channel =
              UnixTransport()->OpenChild(endpoint);
          if (!channel.ok())
            return ChildFailure(1, channel.status().ToString());
          absl::StatusOr<std::string> first = (*channel)->ReceiveBlocking();
          if (!first.ok() || *first != "good") {
            return ChildFailure(2, "no good frame first");
          }
          absl::StatusOr<std::string> next = (*channel)->ReceiveBlocking();
          const bool as_expected = corrupt ? absl::IsDataLoss(next.status())
                                           : absl::IsUnavailable(next.status());
          if (!as_expected) return ChildFailure(3, next.status().ToString());
          if ((*channel)->SendBlocking("late").ok()) {
            return ChildFailure(4, "SendBlocking after an error succeeded");
          }
          return 0;
        },
        endpoint.fds);
    CloseEndpoint(&pair->child);
    ASSERT_TRUE(child.ok()) << child.status();
    const std::string bytes =
        Header(4) + "good" +
        (corrupt ? "NOT A HEADER AT ALL" : Header(100) + "abc");
    ASSERT_TRUE(
        WriteFully(pair->parent->PollFd(), bytes.data(), bytes.size()).ok());
    if (!corrupt) pair->parent.reset();
    EXPECT_TRUE(ExitsCleanly(*child, kTimeout)) << "corrupt=" << corrupt;
  }
}

TEST(UnixTransportTest, OpenChildRejectsForeignEndpoints) {
  {
    RawPair pair;
    const int fd = dup(pair.raw);
    absl::StatusOr<std::unique_ptr<Channel>> channel =
        UnixTransport()->OpenChild(ChildEndpoint{{fd}, "shm/1"});
    EXPECT_TRUE(absl::IsInvalidArgument(channel.status())) << channel.status();
    EXPECT_EQ(fcntl(fd, F_GETFD), -1) << "OpenChild took ownership: closed";
  }
  {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    close(fds[1]);
    absl::StatusOr<std::unique_ptr<Channel>> channel =
        UnixTransport()->OpenChild(ChildEndpoint{{fds[0]}, ""});
    EXPECT_FALSE(channel.ok());
  }
  EXPECT_TRUE(absl::IsInvalidArgument(
      UnixTransport()->OpenChild(ChildEndpoint{{}, ""}).status()));
}

}  // namespace
}  // namespace procpool
