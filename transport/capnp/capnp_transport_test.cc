#include "transport/capnp/capnp_transport.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/posix_error.h"
#include "glog/logging.h"
#include "gtest/gtest.h"
#include "transport/testing/conformance.h"
#include "transport/testing/harness.h"
#include "transport/transport.h"

INSTANTIATE_TRANSPORT_CONFORMANCE(capnp);

namespace procpool {
namespace {

using transport_testing::ChannelDriver;
using transport_testing::ChildFailure;
using transport_testing::CloseEndpoint;
using transport_testing::ForkedChild;
using transport_testing::Pattern;
using transport_testing::SameBytes;

constexpr absl::Duration kTimeout = absl::Seconds(10);

Transport* CapnpTransport() {
  absl::StatusOr<Transport*> transport = GetTransport(kCapnpTransportName);
  CHECK(transport.ok()) << transport.status();
  return *transport;
}

TEST(CapnpTransportTest, IsRegistered) {
  absl::StatusOr<Transport*> transport = GetTransport("capnp");
  ASSERT_TRUE(transport.ok()) << transport.status();
  EXPECT_EQ((*transport)->name(), "capnp");
  const std::vector<std::string> names = KnownTransports();
  EXPECT_NE(std::find(names.begin(), names.end(), "capnp"), names.end());
}

// The executor's manager pumps a channel once when it sees its worker exit:
// a frame the worker sent just before exiting must be in that one Pump()
// (the parent's RPC system must dispatch the calls it read before it acts on
// the end of stream).
TEST(CapnpTransportTest, FrameSentJustBeforeExitIsInTheNextPump) {
  for (int round = 0; round < 30; ++round) {
    absl::StatusOr<ChannelPair> pair = CapnpTransport()->CreatePair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    const size_t size = round % 3 == 0 ? (kCapnpChunkSize * 2 + 7) : 10 + round;
    absl::StatusOr<ForkedChild> child = ForkedChild::StartWithChannel(
        CapnpTransport(), pair->child, [size, round](Channel& channel) {
          absl::Status s = channel.SendBlocking(Pattern(size, round));
          return s.ok() ? 0 : ChildFailure(2, s.ToString());
        });
    CloseEndpoint(&pair->child);
    ASSERT_TRUE(child.ok()) << child.status();
    absl::StatusOr<int> wait_status = child->Wait(kTimeout);
    ASSERT_TRUE(wait_status.ok()) << wait_status.status();
    ASSERT_TRUE(WIFEXITED(*wait_status) && WEXITSTATUS(*wait_status) == 0)
        << transport_testing::DescribeWaitStatus(*wait_status);
    std::vector<std::string> frames;
    (void)pair->parent->Pump(&frames);
    ASSERT_EQ(frames.size(), 1u) << "round " << round;
    EXPECT_TRUE(SameBytes(frames[0], Pattern(size, round)));
  }
}

// Bytes that are not Cap'n Proto RPC from the worker's end: kDataLoss.
TEST(CapnpTransportTest, GarbageFromThePeerIsDataLoss) {
  absl::StatusOr<ChannelPair> pair = CapnpTransport()->CreatePair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  const int raw = pair->child.fds[0];
  const std::string garbage(4096, '\xff');
  ASSERT_TRUE(WriteFully(raw, garbage.data(), garbage.size()).ok());
  ChannelDriver driver(pair->parent.get());
  const absl::Status status = driver.PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_TRUE(driver.frames().empty());
  EXPECT_FALSE(pair->parent->Send("x").ok());
  CloseEndpoint(&pair->child);
}

// The parent's Send() returns at once even when nobody reads and the frames
// are large; destroying the channel then does not hang.
TEST(CapnpTransportTest, SendToAPeerThatNeverReadsNeitherBlocksNorHangsClose) {
  absl::StatusOr<ChannelPair> pair = CapnpTransport()->CreatePair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  const absl::Time start = absl::Now();
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(pair->parent->Send(Pattern(8 << 20, i)).ok());
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  pair->parent.reset();
  CloseEndpoint(&pair->child);
}

TEST(CapnpTransportTest, OpenChildRejectsForeignEndpoints) {
  {
    absl::StatusOr<ChannelPair> pair = CapnpTransport()->CreatePair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    const int fd = dup(pair->child.fds[0]);
    absl::StatusOr<std::unique_ptr<Channel>> channel =
        CapnpTransport()->OpenChild(ChildEndpoint{{fd}, "unix/1"});
    EXPECT_TRUE(absl::IsInvalidArgument(channel.status())) << channel.status();
    EXPECT_EQ(fcntl(fd, F_GETFD), -1) << "OpenChild took ownership: closed";
    CloseEndpoint(&pair->child);
  }
  {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    close(fds[1]);
    absl::StatusOr<std::unique_ptr<Channel>> channel =
        CapnpTransport()->OpenChild(ChildEndpoint{{fds[0]}, ""});
    EXPECT_FALSE(channel.ok());
  }
  EXPECT_TRUE(absl::IsInvalidArgument(
      CapnpTransport()->OpenChild(ChildEndpoint{{}, ""}).status()));
}

}  // namespace
}  // namespace procpool
