#include "transport/shm/shm_transport.h"

#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/posix_error.h"
#include "common/unique_fd.h"
#include "glog/logging.h"
#include "gtest/gtest.h"
#include "transport/shm/shm_ring.h"
#include "transport/testing/conformance.h"
#include "transport/testing/harness.h"
#include "transport/transport.h"

INSTANTIATE_TRANSPORT_CONFORMANCE(shm);

namespace procpool {
namespace {

using shm_internal::RingReader;
using shm_internal::RingWriter;
using shm_internal::ShmControl;
using transport_testing::AwaitAsleep;
using transport_testing::ChannelDriver;
using transport_testing::ChildFailure;
using transport_testing::CloseEndpoint;
using transport_testing::CountOpenFds;
using transport_testing::EchoLoop;
using transport_testing::ExitsCleanly;
using transport_testing::ForkedChild;
using transport_testing::Pattern;
using transport_testing::SameBytes;
using transport_testing::ScopedDefaultSigpipe;
using transport_testing::SignalPipe;

constexpr absl::Duration kTimeout = absl::Seconds(10);
constexpr size_t kSmallRing = 4096;

// A frame header as the shm transport writes it.
std::string Header(uint64_t length, uint32_t flags = 0,
                   absl::string_view magic = "PPS1") {
  std::string header(magic.substr(0, 4));
  for (int i = 0; i < 4; ++i) header += static_cast<char>(flags >> (8 * i));
  for (int i = 0; i < 8; ++i) header += static_cast<char>(length >> (8 * i));
  return header;
}

// `spin_ns` of spinning whatever the machine's load (so that what a test
// checks does not depend on other processes).
ShmTransportOptions Options(size_t ring_bytes, int64_t spin_ns) {
  ShmTransportOptions options;
  options.ring_bytes = ring_bytes;
  options.spin_ns = spin_ns;
  options.spin_only_with_idle_cpu = false;
  return options;
}

// One byte from `fd` within `timeout`; '\0' if none came.
char AwaitByte(int fd, absl::Duration timeout) {
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) != 1) {
    return '\0';
  }
  char c = '\0';
  return read(fd, &c, 1) == 1 ? c : '\0';
}

Transport* Shm() {
  absl::StatusOr<Transport*> transport = GetTransport(kShmTransportName);
  CHECK(transport.ok()) << transport.status();
  return *transport;
}

// Lines of /proc/self/maps that map a memfd.
int MemfdMappings() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  int n = 0;
  while (std::getline(maps, line)) {
    if (line.find("/memfd:") != std::string::npos) ++n;
  }
  return n;
}

// Write system calls this process made so far (/proc/self/io).
int64_t WriteSyscalls() {
  std::ifstream io("/proc/self/io");
  std::string key;
  int64_t value = -1;
  while (io >> key >> value) {
    if (key == "syscw:") return value;
  }
  return -1;
}

std::string ReadLink(int fd) {
  char target[256];
  const ssize_t n = readlink(absl::StrCat("/proc/self/fd/", fd).c_str(),
                             target, sizeof(target) - 1);
  return std::string(target, n > 0 ? n : 0);
}

// The parent's channel, and the child's side played by hand: the test maps
// the memfd itself and reads and writes the rings raw.
class RawChild {
 public:
  explicit RawChild(Transport* transport) {
    absl::StatusOr<ChannelPair> pair = transport->CreatePair();
    CHECK(pair.ok()) << pair.status();
    CHECK_EQ(pair->child.fds.size(), 5u);
    parent = std::move(pair->parent);
    fds_ = pair->child.fds;
    struct stat st;
    CHECK_EQ(fstat(fds_[0], &st), 0);
    bytes_ = st.st_size;
    map_ = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fds_[0],
                0);
    CHECK(map_ != MAP_FAILED);
    control = static_cast<ShmControl*>(map_);
    ring_ = control->constants.ring_bytes;
    char* to_child = static_cast<char*>(map_) + kShmControlBytes;
    writer = RingWriter(&control->to_parent, to_child + ring_, ring_);
    reader = RingReader(&control->to_child, to_child, ring_);
  }
  ~RawChild() {
    parent.reset();
    Die();
    munmap(map_, bytes_);
  }

  // Writes `bytes` into the ring to the parent (they must fit) and wakes it.
  void Write(absl::string_view bytes) {
    CHECK_GE(writer.Free(bytes.size()), bytes.size());
    writer.Put(bytes.data(), bytes.size());
    writer.Publish();
    const uint64_t one = 1;
    CHECK_EQ(write(fds_[2], &one, sizeof(one)), 8);
  }

  // Everything the parent wrote to the child so far.
  std::string ReadAll() {
    std::string out;
    const uint64_t n = reader.Available();
    reader.Append(&out, n);
    reader.Release();
    return out;
  }

  // The child "dies": its descriptors close (the mapping stays the test's).
  void Die() {
    for (int fd : fds_) close(fd);
    fds_.clear();
  }

  uint64_t ring() const { return ring_; }

  // Sends a descriptor message ('D' and SCM_RIGHTS of `fds`, or `byte` and
  // none when `fds` is empty) on the descriptor socket, as the child would.
  void SendDescriptors(const std::vector<int>& fds, char byte = 'D') {
    struct iovec iov = {&byte, 1};
    union {
      struct cmsghdr align;
      char bytes[CMSG_SPACE(sizeof(int) * 64)];
    } control;
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (!fds.empty()) {
      msg.msg_control = control.bytes;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
    }
    CHECK_EQ(sendmsg(fds_[4], &msg, MSG_NOSIGNAL), 1);
  }

  std::unique_ptr<Channel> parent;
  ShmControl* control = nullptr;
  RingWriter writer;
  RingReader reader;

 private:
  std::vector<int> fds_;
  void* map_ = nullptr;
  size_t bytes_ = 0;
  uint64_t ring_ = 0;
};

TEST(ShmTransportTest, IsRegistered) {
  absl::StatusOr<Transport*> transport = GetTransport("shm");
  ASSERT_TRUE(transport.ok()) << transport.status();
  EXPECT_EQ((*transport)->name(), "shm");
  const std::vector<std::string> names = KnownTransports();
  EXPECT_NE(std::find(names.begin(), names.end(), "shm"), names.end());
}

TEST(ShmTransportTest, EndpointIsASealedMemfdAndFourDescriptors) {
  absl::StatusOr<ChannelPair> pair = Shm()->CreatePair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  ASSERT_EQ(pair->child.fds.size(), 5u);
  EXPECT_EQ(pair->child.spec,
            absl::StrCat("shm/1;ring=", kShmDefaultRingBytes));
  const int memfd = pair->child.fds[0];
  EXPECT_TRUE(absl::StartsWith(ReadLink(memfd), "/memfd:procpool-shm"))
      << ReadLink(memfd);
  const int seals = fcntl(memfd, F_GET_SEALS);
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
            F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  EXPECT_NE(ftruncate(memfd, 0), 0) << "a child must not shrink the rings";
  EXPECT_TRUE(absl::StrContains(ReadLink(pair->child.fds[1]), "socket"));
  EXPECT_TRUE(absl::StrContains(ReadLink(pair->child.fds[2]), "eventfd"));
  EXPECT_TRUE(absl::StrContains(ReadLink(pair->child.fds[3]), "eventfd"));
  EXPECT_TRUE(absl::StrContains(ReadLink(pair->child.fds[4]), "socket"));
  int type = 0;
  socklen_t len = sizeof(type);
  ASSERT_EQ(getsockopt(pair->child.fds[4], SOL_SOCKET, SO_TYPE, &type, &len),
            0);
  EXPECT_EQ(type, SOCK_SEQPACKET);
  EXPECT_TRUE(absl::StrContains(ReadLink(pair->parent->PollFd()), "eventpoll"));
  CloseEndpoint(&pair->child);
}

TEST(ShmTransportTest, NothingIsLeftAfterClose) {
  const int fds_before = CountOpenFds();
  const int maps_before = MemfdMappings();
  for (int round = 0; round < 3; ++round) {
    absl::StatusOr<ChannelPair> pair = Shm()->CreatePair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    EXPECT_EQ(MemfdMappings(), maps_before + 1);
    absl::StatusOr<ForkedChild> child =
        ForkedChild::StartWithChannel(Shm(), pair->child, EchoLoop);
    CloseEndpoint(&pair->child);
    ASSERT_TRUE(child.ok()) << child.status();
    {
      ChannelDriver driver(pair->parent.get());
      ASSERT_TRUE(driver.Send("x").ok());
      ASSERT_TRUE(driver.PumpUntilFrames(1, kTimeout).ok());
    }
    pair->parent.reset();
    EXPECT_TRUE(ExitsCleanly(*child, kTimeout));
  }
  EXPECT_EQ(MemfdMappings(), maps_before);
  EXPECT_EQ(CountOpenFds(), fds_before);
}

// MADV_DONTFORK: a worker started with fork() inherits no other worker's
// rings (it maps its own from its endpoint).
TEST(ShmTransportTest, ForkedChildInheritsNoRings) {
  absl::StatusOr<ChannelPair> pair = Shm()->CreatePair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  ASSERT_GE(MemfdMappings(), 1);
  absl::StatusOr<ForkedChild> child = ForkedChild::Start(
      [] {
        const int n = MemfdMappings();
        return n == 0 ? 0 : ChildFailure(1, absl::StrCat(n, " memfd maps"));
      },
      {});
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_TRUE(ExitsCleanly(*child, kTimeout));
  CloseEndpoint(&pair->child);
}

// Frames of every size around the ring's size, both ways, through a 4 KiB
// ring: headers and payloads straddle the ring's end and stream in pieces.
TEST(ShmTransportTest, TinyRingStreamsFramesOfEverySize) {
  for (int64_t spin_ns : {int64_t{0}, kShmDefaultSpinNs}) {
    SCOPED_TRACE(absl::StrCat("spin_ns=", spin_ns));
    std::unique_ptr<Transport> transport =
        NewShmTransport(Options(kSmallRing, spin_ns));
    absl::StatusOr<ChannelPair> pair = transport->CreatePair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    EXPECT_EQ(pair->child.spec, "shm/1;ring=4096");
    absl::StatusOr<ForkedChild> child =
        ForkedChild::StartWithChannel(transport.get(), pair->child, EchoLoop);
    CloseEndpoint(&pair->child);
    ASSERT_TRUE(child.ok()) << child.status();
    std::vector<std::string> sent;
    int seed = 0;
    for (size_t size : {size_t{0}, size_t{1}, size_t{15}, size_t{16},
                        size_t{17}, kSmallRing - 17, kSmallRing - 16,
                        kSmallRing, kSmallRing + 1, size_t{100003},
                        size_t{1} << 20}) {
      for (int i = 0; i < 3; ++i) sent.push_back(Pattern(size, ++seed));
    }
    {
      ChannelDriver driver(pair->parent.get());
      for (const std::string& frame : sent) ASSERT_TRUE(driver.Send(frame).ok());
      ASSERT_TRUE(driver.PumpUntilFrames(sent.size(), kTimeout).ok());
      ASSERT_EQ(driver.frames().size(), sent.size());
      for (size_t i = 0; i < sent.size(); ++i) {
        EXPECT_TRUE(SameBytes(driver.frames()[i], sent[i])) << "frame " << i;
      }
    }
    pair->parent.reset();
    EXPECT_TRUE(ExitsCleanly(*child, kTimeout));
  }
}

// The wake-up protocol: while the child spins, the parent's Send() makes no
// system call at all; once the child sleeps, the parent must write its
// eventfd. (/proc/self/io counts this process's write system calls.)
TEST(ShmTransportTest, NoWakeUpSystemCallWhileTheChildSpins) {
  for (const bool spinning : {true, false}) {
    SCOPED_TRACE(spinning ? "spinning child" : "sleeping child");
    // 20 s of spinning outlasts the test; 0 makes the child sleep at once.
    std::unique_ptr<Transport> transport = NewShmTransport(Options(
        kShmDefaultRingBytes, spinning ? int64_t{20'000'000'000} : 0));
    absl::StatusOr<ChannelPair> pair = transport->CreatePair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    absl::StatusOr<ForkedChild> child =
        ForkedChild::StartWithChannel(transport.get(), pair->child, EchoLoop);
    CloseEndpoint(&pair->child);
    ASSERT_TRUE(child.ok()) << child.status();
    ChannelDriver driver(pair->parent.get());
    ASSERT_TRUE(driver.Send("warm up").ok());
    ASSERT_TRUE(driver.PumpUntilFrames(1, kTimeout).ok());
    constexpr int kRounds = 200;
    const int64_t writes_before = WriteSyscalls();
    ASSERT_GE(writes_before, 0);
    for (int i = 0; i < kRounds; ++i) {
      ASSERT_TRUE(driver.Send("ping").ok());
      ASSERT_TRUE(driver.PumpUntilFrames(2 + i, kTimeout).ok());
    }
    const int64_t writes = WriteSyscalls() - writes_before;
    if (spinning) {
      // Zero on a quiet machine; a spin preempted on a loaded one ends in a
      // sleep (and one wake-up write), so allow a handful.
      EXPECT_LE(writes, kRounds / 20);
    } else {
      // Allow a few sends that found the child still awake.
      EXPECT_GT(writes, kRounds / 4);
    }
    pair->parent.reset();
    EXPECT_TRUE(ExitsCleanly(*child, kTimeout));
  }
}

// The parent's end starts out "not pumping": the child's very first frame
// wakes it, before any Pump() (the pool pumps only when PollFd() says so).
TEST(ShmTransportTest, FirstFrameWakesAParentThatNeverPumped) {
  absl::StatusOr<ChannelPair> pair = Shm()->CreatePair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  absl::StatusOr<ForkedChild> child = ForkedChild::StartWithChannel(
      Shm(), pair->child, [](Channel& channel) {
        absl::Status s = channel.SendBlocking("hello");
        return s.ok() ? EchoLoop(channel) : ChildFailure(1, s.ToString());
      });
  CloseEndpoint(&pair->child);
  ASSERT_TRUE(child.ok()) << child.status();
  ChannelDriver driver(pair->parent.get());
  ASSERT_TRUE(driver.WaitReadable(kTimeout)) << "lost wake-up";
  ASSERT_TRUE(driver.PumpOnce().ok());
  EXPECT_EQ(driver.frames(), std::vector<std::string>{"hello"});
  pair->parent.reset();
  EXPECT_TRUE(ExitsCleanly(*child, kTimeout));
}

TEST(ShmTransportTest, WireFormat) {
  RawChild raw(Shm());
  ASSERT_TRUE(raw.parent->Send("abc").ok());
  EXPECT_EQ(raw.ReadAll(), Header(3) + "abc");

  raw.Write(Header(5) + "hello" + Header(0) + Header(2) + "ok");
  ChannelDriver driver(raw.parent.get());
  ASSERT_TRUE(driver.PumpUntilFrames(3, kTimeout).ok());
  EXPECT_EQ(driver.frames(), (std::vector<std::string>{"hello", "", "ok"}));
  // Everything read: PollFd() is quiet again.
  EXPECT_FALSE(driver.WaitReadable(absl::Milliseconds(20)));
}

TEST(ShmTransportTest, BadMagicIsDataLossAfterEarlierFrames) {
  RawChild raw(Shm());
  raw.Write(Header(2) + "ok" + Header(1) + "!" + Header(3, 0, "XXXX") + "bad");
  ChannelDriver driver(raw.parent.get());
  const absl::Status status = driver.PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "magic")) << status;
  EXPECT_EQ(driver.frames(), (std::vector<std::string>{"ok", "!"}));
  // The channel stays failed.
  std::vector<std::string> more;
  EXPECT_TRUE(absl::IsDataLoss(raw.parent->Pump(&more)));
  EXPECT_TRUE(more.empty());
  EXPECT_TRUE(absl::IsDataLoss(raw.parent->Send("x")));
}

TEST(ShmTransportTest, UnknownFlagsAndImpossibleLengthsAreDataLoss) {
  for (const std::string& header :
       {Header(1, /*flags=*/0x100), Header(1, /*flags=*/65),
        Header(kShmMaxFrameLength + 1),
        Header(~uint64_t{0})}) {
    RawChild raw(Shm());
    raw.Write(header + "xxxx");
    ChannelDriver driver(raw.parent.get());
    const absl::Status status = driver.PumpUntilError(kTimeout);
    EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  }
}

// Descriptors: a header that announces some with no message for them, or a
// message that does not match, is kDataLoss; the frames before still arrive.
TEST(ShmTransportTest, AnnouncedDescriptorsThatDoNotComeAreDataLoss) {
  RawChild raw(Shm());
  raw.Write(Header(2) + "ok" + Header(3, /*flags=*/2) + "bad");
  ChannelDriver driver(raw.parent.get());
  const absl::Status status = driver.PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "announced 2")) << status;
  ASSERT_GE(driver.frames().size(), 1u);
  EXPECT_EQ(driver.frames()[0], "ok");
}

TEST(ShmTransportTest, DescriptorMessageOfTheWrongSizeIsDataLoss) {
  const int before = CountOpenFds();
  {
    RawChild raw(Shm());
    raw.SendDescriptors({0, 1, 2});  // the header says 2
    raw.Write(Header(3, /*flags=*/2) + "bad");
    ChannelDriver driver(raw.parent.get());
    const absl::Status status = driver.PumpUntilError(kTimeout);
    EXPECT_TRUE(absl::IsDataLoss(status)) << status;
    EXPECT_TRUE(absl::IsDataLoss(raw.parent->TakeDescriptors(2).status()));
  }
  {
    RawChild raw(Shm());
    raw.SendDescriptors({}, 'D');  // no descriptors at all
    raw.Write(Header(3, /*flags=*/1) + "bad");
    ChannelDriver driver(raw.parent.get());
    EXPECT_TRUE(absl::IsDataLoss(driver.PumpUntilError(kTimeout)));
  }
  EXPECT_EQ(CountOpenFds(), before);
}

// Descriptor messages waiting for their frames (or sent with none: a lying
// child) never make PollFd() readable: the manager does not spin on them.
// They are not taken, and close with the channel.
TEST(ShmTransportTest, DescriptorMessagesDoNotWakeThePoller) {
  const int before = CountOpenFds();
  {
    RawChild raw(Shm());
    ChannelDriver driver(raw.parent.get());
    ASSERT_TRUE(driver.PumpOnce().ok());
    raw.SendDescriptors({0, 1});
    raw.SendDescriptors({2});
    EXPECT_FALSE(driver.WaitReadable(absl::Milliseconds(50)));
    raw.Write(Header(2, /*flags=*/2) + "hi");
    ASSERT_TRUE(driver.PumpUntilFrames(1, kTimeout).ok());
    EXPECT_EQ(driver.frames()[0], "hi");
    absl::StatusOr<std::vector<UniqueFd>> fds =
        raw.parent->TakeDescriptors(2);
    ASSERT_TRUE(fds.ok()) << fds.status();
    EXPECT_TRUE(absl::IsDataLoss(raw.parent->TakeDescriptors(1).status()));
    EXPECT_FALSE(driver.WaitReadable(absl::Milliseconds(50)));
  }
  EXPECT_EQ(CountOpenFds(), before);
}

TEST(ShmTransportTest, GarbageIsDataLoss) {
  RawChild raw(Shm());
  raw.Write(Pattern(1000, 99));
  ChannelDriver driver(raw.parent.get());
  EXPECT_TRUE(absl::IsDataLoss(driver.PumpUntilError(kTimeout)));
}

// The liveness socket never carries data: bytes on it (a task scribbling on
// every socket it finds) are corruption, reported after the frames before.
TEST(ShmTransportTest, BytesOnTheLivenessSocketAreDataLoss) {
  absl::StatusOr<ChannelPair> pair = Shm()->CreatePair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  absl::StatusOr<ForkedChild> child = ForkedChild::StartWithChannel(
      Shm(), pair->child, [socket = pair->child.fds[1]](Channel& channel) {
        absl::Status s = channel.SendBlocking("before");
        if (!s.ok()) return ChildFailure(1, s.ToString());
        if (write(socket, "garbage", 7) != 7) return ChildFailure(2, "write");
        return EchoLoop(channel);
      });
  CloseEndpoint(&pair->child);
  ASSERT_TRUE(child.ok()) << child.status();
  ChannelDriver driver(pair->parent.get());
  const absl::Status status = driver.PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "liveness")) << status;
  EXPECT_EQ(driver.frames(), std::vector<std::string>{"before"});
}

TEST(ShmTransportTest, HugeClaimedLengthThenDeathIsUnavailable) {
  // 1 TiB claimed, 1000 bytes sent: the reader must not try to hold it all.
  RawChild raw(Shm());
  raw.Write(Header(kShmMaxFrameLength) + Pattern(1000, 5));
  raw.Die();
  ChannelDriver driver(raw.parent.get());
  const absl::Status status = driver.PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "1000 of 1099511627776"))
      << status;
}

TEST(ShmTransportTest, TruncatedHeaderThenDeathIsUnavailable) {
  RawChild raw(Shm());
  raw.Write(Header(2) + "ok" + "PPS1x");
  raw.Die();
  ChannelDriver driver(raw.parent.get());
  const absl::Status status = driver.PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "5 of 16")) << status;
  EXPECT_EQ(driver.frames(), std::vector<std::string>{"ok"});
}

TEST(ShmTransportTest, ImpossibleHeadIsDataLoss) {
  RawChild raw(Shm());
  raw.control->to_parent.head.value.store(3 * raw.ring());
  raw.Write("");  // wakes the parent
  ChannelDriver driver(raw.parent.get());
  const absl::Status status = driver.PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "corrupt")) << status;
}

TEST(ShmTransportTest, ImpossibleTailIsDataLoss) {
  RawChild raw(
      NewShmTransport(Options(kSmallRing, kShmDefaultSpinNs)).get());
  // Fills the ring; the rest stays queued.
  ASSERT_TRUE(raw.parent->Send(Pattern(3 * kSmallRing, 1)).ok());
  raw.control->to_child.tail.value.store(10 * kSmallRing);
  raw.Write("");  // wakes the parent
  ChannelDriver driver(raw.parent.get());
  const absl::Status status = driver.PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
}

TEST(ShmTransportTest, OpenChildRejectsForeignEndpoints) {
  {
    absl::StatusOr<ChannelPair> pair = Shm()->CreatePair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    ChildEndpoint wrong = pair->child;
    wrong.spec = "unix/1";
    absl::StatusOr<std::unique_ptr<Channel>> channel = Shm()->OpenChild(wrong);
    EXPECT_TRUE(absl::IsInvalidArgument(channel.status())) << channel.status();
    EXPECT_EQ(fcntl(pair->child.fds[0], F_GETFD), -1)
        << "OpenChild took ownership: closed";
  }
  {
    // The spec names another ring size than the memfd holds.
    absl::StatusOr<ChannelPair> pair = Shm()->CreatePair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    ChildEndpoint wrong = pair->child;
    wrong.spec = "shm/1;ring=4096";
    EXPECT_TRUE(absl::IsInvalidArgument(Shm()->OpenChild(wrong).status()));
  }
  {
    // A plain pipe where the memfd should be.
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    absl::StatusOr<ChannelPair> pair = Shm()->CreatePair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    ChildEndpoint wrong = pair->child;
    close(wrong.fds[0]);
    wrong.fds[0] = p[0];
    EXPECT_FALSE(Shm()->OpenChild(wrong).ok());
    close(p[1]);
  }
  EXPECT_TRUE(absl::IsInvalidArgument(
      Shm()->OpenChild(ChildEndpoint{{}, "shm/1;ring=4096"}).status()));
}

// The child's end against raw bytes from the parent's side: corrupt input is
// kDataLoss, a truncated frame then the parent's close is kUnavailable, and
// sending afterwards fails without SIGPIPE.
TEST(ShmTransportTest, ChildEndRejectsCorruptAndTruncatedInput) {
  ScopedDefaultSigpipe sigpipe;
  for (const bool corrupt : {true, false}) {
    SCOPED_TRACE(corrupt ? "corrupt" : "truncated");
    absl::StatusOr<ChannelPair> pair = Shm()->CreatePair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    // The test writes into the ring to the child by hand.
    const int memfd = dup(pair->child.fds[0]);
    const size_t bytes = kShmControlBytes + 2 * kShmDefaultRingBytes;
    void* map =
        mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    ASSERT_NE(map, MAP_FAILED);
    close(memfd);
    const ChildEndpoint endpoint = pair->child;
    absl::StatusOr<ForkedChild> child = ForkedChild::StartWithChannel(
        Shm(), endpoint, [corrupt](Channel& channel) {
          absl::StatusOr<std::string> first = channel.ReceiveBlocking();
          if (!first.ok() || *first != "good") {
            return ChildFailure(2, "no good frame first");
          }
          absl::StatusOr<std::string> next = channel.ReceiveBlocking();
          const bool as_expected = corrupt ? absl::IsDataLoss(next.status())
                                           : absl::IsUnavailable(next.status());
          if (!as_expected) return ChildFailure(3, next.status().ToString());
          if (!corrupt &&
              !absl::StrContains(next.status().message(), "3 of 100")) {
            return ChildFailure(4, next.status().ToString());
          }
          if (channel.SendBlocking("late").ok()) {
            return ChildFailure(5, "SendBlocking after an error succeeded");
          }
          return 0;
        });
    ASSERT_TRUE(child.ok()) << child.status();
    const int wake_child = dup(endpoint.fds[3]);
    CloseEndpoint(&pair->child);
    ShmControl* control = static_cast<ShmControl*>(map);
    RingWriter writer(&control->to_child,
                      static_cast<char*>(map) + kShmControlBytes,
                      kShmDefaultRingBytes);
    const std::string raw = Header(4) + "good" +
                            (corrupt ? "NOT A HEADER AT ALL" : Header(100) + "abc");
    writer.Put(raw.data(), raw.size());
    writer.Publish();
    const uint64_t one = 1;
    ASSERT_EQ(write(wake_child, &one, sizeof(one)), 8);
    close(wake_child);
    if (!corrupt) pair->parent.reset();  // a clean close
    EXPECT_TRUE(ExitsCleanly(*child, kTimeout));
    munmap(map, bytes);
  }
}

// A parent that dies without closing its channel (no destructor runs): the
// child's blocking calls see the hang-up of the liveness socket, in the
// middle of a frame being received, and while waiting for ring space.
TEST(ShmTransportTest, ParentDeathUnblocksTheChild) {
  for (const bool child_sends : {false, true}) {
    SCOPED_TRACE(child_sends ? "child blocked sending" : "child receiving");
    SignalPipe verdict;
    absl::StatusOr<ForkedChild> parent = ForkedChild::Start(
        [&verdict, child_sends] {
          std::unique_ptr<Transport> transport =
              NewShmTransport(Options(kSmallRing, kShmDefaultSpinNs));
          absl::StatusOr<ChannelPair> pair = transport->CreatePair();
          if (!pair.ok()) return ChildFailure(1, pair.status().ToString());
          SignalPipe ready;
          const ChildEndpoint endpoint = pair->child;
          absl::StatusOr<ForkedChild> child = ForkedChild::StartWithChannel(
              transport.get(), endpoint,
              [&verdict, &ready, child_sends](Channel& channel) {
                absl::Status status;
                if (child_sends) {
                  ready.Signal();
                  status = channel.SendBlocking(Pattern(8 * kSmallRing, 2));
                } else {
                  status = channel.ReceiveBlocking().status();
                }
                const bool good =
                    absl::IsUnavailable(status) &&
                    (child_sends ||
                     absl::StrContains(status.message(), "middle of a frame"));
                if (!good) ChildFailure(1, status.ToString());
                (void)!write(verdict.write_fd(), good ? "Y" : "N", 1);
                return 0;
              },
              {verdict.write_fd(), ready.write_fd()});
          if (!child.ok()) return ChildFailure(2, child.status().ToString());
          CloseEndpoint(&pair->child);
          if (child_sends) {
            if (!ready.Await(kTimeout)) return ChildFailure(3, "not ready");
            // The ring is full and the child asleep waiting for space.
            if (!AwaitAsleep(child->pid(), kTimeout)) {
              return ChildFailure(5, "the child never waited for space");
            }
          } else {
            // Part of a frame: the rest stays queued here and dies with us.
            if (!pair->parent->Send(Pattern(3 * kSmallRing, 1)).ok()) {
              return ChildFailure(4, "Send failed");
            }
            // The child took what the ring holds and sleeps for the rest.
            if (!AwaitAsleep(child->pid(), kTimeout)) {
              return ChildFailure(6, "the child never waited for the rest");
            }
          }
          _exit(0);  // no destructor: the child only sees the hang-up
        },
        {verdict.write_fd()});
    ASSERT_TRUE(parent.ok()) << parent.status();
    EXPECT_TRUE(ExitsCleanly(*parent, kTimeout));
    EXPECT_EQ(AwaitByte(verdict.read_fd(), kTimeout), 'Y')
        << "the child hung or saw the wrong error (its stderr says which)";
  }
}

}  // namespace
}  // namespace procpool
