#include "transport/testing/conformance.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"
#include "transport/testing/harness.h"
#include "transport/transport.h"

namespace procpool {
namespace transport_testing {

void TransportConformanceTest::SetUp() {
  absl::StatusOr<Transport*> transport = GetTransport(GetParam());
  ASSERT_TRUE(transport.ok()) << transport.status();
  transport_ = *transport;
  ASSERT_EQ(transport_->name(), GetParam());
}

std::string TransportParamName(
    const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

namespace {

// Bound on any one wait for the other process; a hang fails after this.
constexpr absl::Duration kTimeout = absl::Seconds(20);
// The large frame: more than 256 MiB, and not a round number.
constexpr size_t kHugeFrame = (size_t{256} << 20) + 13;
// Large enough to fill any socket or ring buffer many times over.
constexpr size_t kLargeFrame = (size_t{64} << 20) + 5;

#define CONFORMANCE_ASSERT_OK(expr)                     \
  do {                                                  \
    const ::absl::Status conformance_status_ = (expr);  \
    ASSERT_TRUE(conformance_status_.ok())               \
        << #expr << " failed: " << conformance_status_; \
  } while (false)

// One child and the parent's end of its channel, driven through a
// ChannelDriver. Destruction closes the parent's end first, then kills and
// reaps the child if it is still running.
class Session {
 public:
  // Creates a pair and forks a child running `body` on its end; nullptr (and
  // a test failure) if that fails.
  static std::unique_ptr<Session> Start(
      Transport* transport, std::function<int(Channel&)> body,
      const std::vector<int>& extra_keep = {}) {
    absl::StatusOr<ChannelPair> pair = transport->CreatePair();
    if (!pair.ok()) {
      ADD_FAILURE() << "CreatePair: " << pair.status();
      return nullptr;
    }
    absl::StatusOr<ForkedChild> child = ForkedChild::StartWithChannel(
        transport, pair->child, std::move(body), extra_keep);
    CloseEndpoint(&pair->child);
    if (!child.ok()) {
      ADD_FAILURE() << child.status();
      return nullptr;
    }
    return absl::WrapUnique(
        new Session(std::move(pair->parent), *std::move(child)));
  }

  ~Session() { CloseParent(); }

  ChannelDriver& driver() { return *driver_; }
  Channel& parent() { return *parent_; }
  ForkedChild& child() { return child_; }
  std::vector<std::string>& frames() { return driver_->frames(); }

  // Destroys the parent's end (and the driver).
  void CloseParent() {
    driver_.reset();
    parent_.reset();
  }

  // Closes the parent's end and checks that the child exits with status 0.
  ::testing::AssertionResult CloseAndExitsCleanly() {
    CloseParent();
    return ExitsCleanly(child_, kTimeout);
  }

 private:
  Session(std::unique_ptr<Channel> parent, ForkedChild child)
      : child_(std::move(child)),
        parent_(std::move(parent)),
        driver_(std::make_unique<ChannelDriver>(parent_.get())) {}

  ForkedChild child_;
  std::unique_ptr<Channel> parent_;
  std::unique_ptr<ChannelDriver> driver_;
};

// Frame `i` of a stream: its index, then a pattern of varying size.
std::string StreamFrame(uint64_t i) {
  std::string frame(8, '\0');
  for (int b = 0; b < 8; ++b) frame[b] = static_cast<char>(i >> (8 * b));
  frame += Pattern((i * 7919) % 100000, i);
  return frame;
}

std::string NumberedFrame(int i) {
  return absl::StrCat("frame ", i, " ",
                      std::string(i % 300, static_cast<char>('a' + i % 26)));
}

bool IsCloseOnExec(int fd) {
  const int flags = fcntl(fd, F_GETFD);
  return flags >= 0 && (flags & FD_CLOEXEC) != 0;
}

TEST_P(TransportConformanceTest, DescriptorsAreCloseOnExec) {
  absl::StatusOr<ChannelPair> pair = transport_->CreatePair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  EXPECT_TRUE(IsCloseOnExec(pair->parent->PollFd()))
      << "PollFd() " << pair->parent->PollFd();
  EXPECT_FALSE(pair->child.fds.empty());
  for (int fd : pair->child.fds) {
    EXPECT_TRUE(IsCloseOnExec(fd)) << "endpoint descriptor " << fd;
  }
  EXPECT_NE(pair->parent->PollEvents() & EPOLLIN, 0u);
  CloseEndpoint(&pair->child);
}

TEST_P(TransportConformanceTest, SmallFramesRoundTrip) {
  std::unique_ptr<Session> session = Session::Start(transport_, EchoLoop);
  ASSERT_NE(session, nullptr);
  const std::vector<std::string> sent = {"a",
                                         "hello",
                                         std::string("\0\x01\xff\n", 4),
                                         std::string(1000, 'x'),
                                         Pattern(4093, 1),
                                         Pattern(64 << 10, 2),
                                         Pattern(100003, 3)};
  for (const std::string& frame : sent) {
    CONFORMANCE_ASSERT_OK(session->driver().Send(frame));
  }
  CONFORMANCE_ASSERT_OK(
      session->driver().PumpUntilFrames(sent.size(), kTimeout));
  ASSERT_EQ(session->frames().size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_TRUE(SameBytes(session->frames()[i], sent[i])) << "frame " << i;
  }
  EXPECT_TRUE(session->CloseAndExitsCleanly());
}

TEST_P(TransportConformanceTest, EmptyFramesBothWays) {
  std::unique_ptr<Session> session =
      Session::Start(transport_, [](Channel& channel) {
        absl::Status s = channel.SendBlocking("");
        if (!s.ok()) return ChildFailure(4, s.ToString());
        return EchoLoop(channel);
      });
  ASSERT_NE(session, nullptr);
  const std::vector<std::string> sent = {"", "x", "", "", std::string(1, '\0')};
  for (const std::string& frame : sent) {
    CONFORMANCE_ASSERT_OK(session->driver().Send(frame));
  }
  CONFORMANCE_ASSERT_OK(
      session->driver().PumpUntilFrames(1 + sent.size(), kTimeout));
  std::vector<std::string> want = {""};
  want.insert(want.end(), sent.begin(), sent.end());
  EXPECT_EQ(session->frames(), want);
  EXPECT_TRUE(session->CloseAndExitsCleanly());
}

TEST_P(TransportConformanceTest, ManyFramesEchoInOrder) {
  constexpr int kFrames = 10000;
  std::unique_ptr<Session> session = Session::Start(transport_, EchoLoop);
  ASSERT_NE(session, nullptr);
  // All queued at once: most wait in the parent's queue for Pump().
  for (int i = 0; i < kFrames; ++i) {
    CONFORMANCE_ASSERT_OK(session->driver().Send(NumberedFrame(i)));
  }
  CONFORMANCE_ASSERT_OK(session->driver().PumpUntilFrames(kFrames, kTimeout));
  ASSERT_EQ(session->frames().size(), kFrames);
  for (int i = 0; i < kFrames; ++i) {
    ASSERT_EQ(session->frames()[i], NumberedFrame(i)) << "frame " << i;
  }
  EXPECT_TRUE(session->CloseAndExitsCleanly());
}

TEST_P(TransportConformanceTest, ManyFramesFromChildInOrder) {
  constexpr int kFrames = 10000;
  std::unique_ptr<Session> session =
      Session::Start(transport_, [](Channel& channel) {
        for (int i = 0; i < kFrames; ++i) {
          absl::Status s = channel.SendBlocking(NumberedFrame(i));
          if (!s.ok()) return ChildFailure(4, s.ToString());
        }
        return EchoLoop(channel);
      });
  ASSERT_NE(session, nullptr);
  CONFORMANCE_ASSERT_OK(session->driver().PumpUntilFrames(kFrames, kTimeout));
  ASSERT_EQ(session->frames().size(), kFrames);
  for (int i = 0; i < kFrames; ++i) {
    ASSERT_EQ(session->frames()[i], NumberedFrame(i)) << "frame " << i;
  }
  EXPECT_TRUE(session->CloseAndExitsCleanly());
}

// SendBlockingParts sends one frame, the parts' concatenation: empty parts,
// more parts than one system call gathers, and parts bigger than a ring.
TEST_P(TransportConformanceTest, PartsMakeOneFrame) {
  static const std::vector<std::string>* const parts = [] {
    auto* p = new std::vector<std::string>;
    p->push_back("");
    for (int i = 0; i < 150; ++i) p->push_back(Pattern(i % 7 == 0 ? 0 : i, i));
    p->push_back(Pattern(size_t{5} << 20, 3));
    p->push_back("tail");
    return p;
  }();
  std::unique_ptr<Session> session =
      Session::Start(transport_, [](Channel& channel) {
        const std::vector<absl::string_view> views(parts->begin(),
                                                   parts->end());
        absl::Status s = channel.SendBlockingParts(views);
        if (!s.ok()) return ChildFailure(4, s.ToString());
        s = channel.SendBlockingParts({});
        if (!s.ok()) return ChildFailure(5, s.ToString());
        s = channel.SendBlockingParts({"after", "", "wards"});
        if (!s.ok()) return ChildFailure(6, s.ToString());
        return EchoLoop(channel);
      });
  ASSERT_NE(session, nullptr);
  CONFORMANCE_ASSERT_OK(session->driver().PumpUntilFrames(3, kTimeout));
  ASSERT_EQ(session->frames().size(), 3u);
  EXPECT_TRUE(SameBytes(session->frames()[0], absl::StrJoin(*parts, "")));
  EXPECT_EQ(session->frames()[1], "");
  EXPECT_EQ(session->frames()[2], "afterwards");
  EXPECT_TRUE(session->CloseAndExitsCleanly());
}

// SendParts queues one frame, the parts' concatenation, and keeps their owner
// until they are written; frames sent before and after stay in order.
TEST_P(TransportConformanceTest, SendPartsKeepsItsOwnerUntilWritten) {
  std::unique_ptr<Session> session = Session::Start(transport_, EchoLoop);
  ASSERT_NE(session, nullptr);
  auto owned = std::make_shared<std::vector<std::string>>();
  owned->push_back(Pattern(size_t{6} << 20, 5));  // more than a ring holds
  owned->push_back("");
  owned->push_back(Pattern(100, 6));
  std::vector<absl::string_view> parts = {"head:", (*owned)[0], (*owned)[1],
                                          (*owned)[2], ":tail"};
  const std::string expected = absl::StrJoin(parts, "");
  std::weak_ptr<std::vector<std::string>> watch = owned;
  CONFORMANCE_ASSERT_OK(session->driver().Send("before"));
  CONFORMANCE_ASSERT_OK(
      session->driver().SendParts(std::move(parts), std::move(owned)));
  CONFORMANCE_ASSERT_OK(session->driver().Send("after"));
  CONFORMANCE_ASSERT_OK(session->driver().PumpUntilFrames(3, kTimeout));
  ASSERT_EQ(session->frames().size(), 3u);
  EXPECT_EQ(session->frames()[0], "before");
  EXPECT_TRUE(SameBytes(session->frames()[1], expected));
  EXPECT_EQ(session->frames()[2], "after");
  // Written (the echo came back): the transport let go of the owner.
  EXPECT_TRUE(watch.expired());
  EXPECT_TRUE(session->CloseAndExitsCleanly());
}

TEST_P(TransportConformanceTest, HugeFrameEcho) {
  std::unique_ptr<Session> session = Session::Start(transport_, EchoLoop);
  ASSERT_NE(session, nullptr);
  std::string frame = Pattern(kHugeFrame, 7);
  const absl::Time start = absl::Now();
  CONFORMANCE_ASSERT_OK(session->driver().Send(std::move(frame)));
  CONFORMANCE_ASSERT_OK(session->driver().PumpUntilFrames(1, kTimeout));
  const absl::Duration elapsed = absl::Now() - start;
  ASSERT_EQ(session->frames().size(), 1u);
  EXPECT_TRUE(SameBytes(session->frames()[0], Pattern(kHugeFrame, 7)));
  session->frames().clear();
  RecordProperty("huge_echo_ms",
                 static_cast<int>(absl::ToInt64Milliseconds(elapsed)));
  std::printf("[ %s ] %zu-byte frame echoed in %s\n", GetParam().c_str(),
              kHugeFrame, absl::FormatDuration(elapsed).c_str());
  EXPECT_TRUE(session->CloseAndExitsCleanly());
}

TEST_P(TransportConformanceTest, LargeFramesBothWaysAtOnceDoNotDeadlock) {
  std::unique_ptr<Session> session =
      Session::Start(transport_, [](Channel& channel) {
        alarm(15);  // a deadlock fails fast
        absl::Status s = channel.SendBlocking(Pattern(kLargeFrame, 11));
        if (!s.ok()) return ChildFailure(4, s.ToString());
        absl::StatusOr<std::string> got = channel.ReceiveBlocking();
        if (!got.ok()) return ChildFailure(5, got.status().ToString());
        if (*got != Pattern(kLargeFrame, 12)) {
          return ChildFailure(6, "the parent's large frame arrived corrupt");
        }
        s = channel.SendBlocking("ok");
        if (!s.ok()) return ChildFailure(7, s.ToString());
        return EchoLoop(channel);
      });
  ASSERT_NE(session, nullptr);
  // The child writes its large frame and reads nothing until that is taken
  // whole: a Send() that waited for the child to read would deadlock.
  std::string frame = Pattern(kLargeFrame, 12);
  const absl::Time start = absl::Now();
  CONFORMANCE_ASSERT_OK(session->driver().Send(std::move(frame)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "Send() blocked";
  CONFORMANCE_ASSERT_OK(session->driver().PumpUntilFrames(2, kTimeout));
  ASSERT_EQ(session->frames().size(), 2u);
  EXPECT_TRUE(SameBytes(session->frames()[0], Pattern(kLargeFrame, 11)));
  EXPECT_EQ(session->frames()[1], "ok");
  EXPECT_TRUE(session->CloseAndExitsCleanly());
}

TEST_P(TransportConformanceTest, SendNeverBlocksWhileChildIsBusy) {
  constexpr int kFrames = 32;
  SignalPipe go;
  std::unique_ptr<Session> session =
      Session::Start(transport_,
                     [&go](Channel& channel) {
                       if (!go.Await(kTimeout))
                         return ChildFailure(4, "no go signal");
                       return EchoLoop(channel);
                     },
                     {go.read_fd()});
  ASSERT_NE(session, nullptr);
  // The child reads nothing until every Send() has returned.
  const absl::Time start = absl::Now();
  for (int i = 0; i < kFrames; ++i) {
    CONFORMANCE_ASSERT_OK(session->driver().Send(Pattern((1 << 20) + i, i)));
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "Send() blocked";
  ASSERT_TRUE(go.Signal());
  CONFORMANCE_ASSERT_OK(session->driver().PumpUntilFrames(kFrames, kTimeout));
  ASSERT_EQ(session->frames().size(), kFrames);
  for (int i = 0; i < kFrames; ++i) {
    EXPECT_TRUE(SameBytes(session->frames()[i], Pattern((1 << 20) + i, i)))
        << "frame " << i;
  }
  EXPECT_TRUE(session->CloseAndExitsCleanly());
}

TEST_P(TransportConformanceTest, ChildKilledInTheMiddleOfAFrame) {
  ScopedDefaultSigpipe sigpipe;
  SignalPipe started;
  std::unique_ptr<Session> session =
      Session::Start(transport_,
                     [&started](Channel& channel) {
                       for (const char* frame : {"one", "two", "three"}) {
                         absl::Status s = channel.SendBlocking(frame);
                         if (!s.ok()) return ChildFailure(4, s.ToString());
                       }
                       started.Signal();
                       // Blocks: the parent reads nothing more until it has
                       // killed us.
                       (void)channel.SendBlocking(Pattern(kLargeFrame, 13));
                       pause();
                       return 0;
                     },
                     {started.write_fd()});
  ASSERT_NE(session, nullptr);
  // Never read by the child: the kill leaves unread input on its side too.
  CONFORMANCE_ASSERT_OK(session->driver().Send("never read"));
  ASSERT_TRUE(started.Await(kTimeout));
  // The child has sent what fits of the large frame and waits for room (or,
  // in a transport that buffers it all, sleeps in pause()).
  ASSERT_TRUE(AwaitAsleep(session->child().pid(), kTimeout))
      << "the child never blocked in the large frame";
  session->child().Kill();

  const absl::Time start = absl::Now();
  const absl::Status status = session->driver().PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  std::vector<std::string>& frames = session->frames();
  ASSERT_GE(frames.size(), 3u) << "frames that arrived before the kill";
  EXPECT_EQ(frames[0], "one");
  EXPECT_EQ(frames[1], "two");
  EXPECT_EQ(frames[2], "three");
  // Only a transport that buffers the whole large frame can deliver it.
  ASSERT_LE(frames.size(), 4u);
  if (frames.size() == 4) {
    EXPECT_TRUE(SameBytes(frames[3], Pattern(kLargeFrame, 13)));
  }

  // The channel stays failed.
  std::vector<std::string> more;
  EXPECT_FALSE(session->parent().Pump(&more).ok());
  EXPECT_TRUE(more.empty());
  EXPECT_FALSE(session->parent().Send("late").ok());
}

TEST_P(TransportConformanceTest, ChildKilledWhileStreaming) {
  constexpr size_t kBeforeKill = 300;
  std::unique_ptr<Session> session =
      Session::Start(transport_, [](Channel& channel) {
        for (uint64_t i = 0;; ++i) {
          if (!channel.SendBlocking(StreamFrame(i)).ok()) return 0;
        }
      });
  ASSERT_NE(session, nullptr);
  CONFORMANCE_ASSERT_OK(
      session->driver().PumpUntilFrames(kBeforeKill, kTimeout));
  session->child().Kill();
  const absl::Time start = absl::Now();
  const absl::Status status = session->driver().PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  const std::vector<std::string>& frames = session->frames();
  ASSERT_GE(frames.size(), kBeforeKill);
  for (size_t i = 0; i < frames.size(); ++i) {
    ASSERT_TRUE(SameBytes(frames[i], StreamFrame(i))) << "frame " << i;
  }
}

TEST_P(TransportConformanceTest, ChildExitIsUnavailableAfterItsFrames) {
  std::unique_ptr<Session> session =
      Session::Start(transport_, [](Channel& channel) {
        absl::Status s = channel.SendBlocking("bye");
        return s.ok() ? 0 : ChildFailure(4, s.ToString());
      });
  ASSERT_NE(session, nullptr);
  const absl::Status status = session->driver().PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_EQ(session->frames(), std::vector<std::string>{"bye"});
  EXPECT_TRUE(ExitsCleanly(session->child(), kTimeout));
}

TEST_P(TransportConformanceTest,
       SendToExitedChildThenPumpDeliversEarlierFrames) {
  ScopedDefaultSigpipe sigpipe;
  std::unique_ptr<Session> session =
      Session::Start(transport_, [](Channel& channel) {
        absl::Status s = channel.SendBlocking("result");
        return s.ok() ? 0 : ChildFailure(4, s.ToString());
      });
  ASSERT_NE(session, nullptr);
  ASSERT_TRUE(ExitsCleanly(session->child(), kTimeout));
  // The child is gone; its "result" is still in flight to us.
  const absl::Status sent = session->driver().Send("call");
  EXPECT_TRUE(sent.ok() || absl::IsUnavailable(sent)) << sent;
  const absl::Status status = session->driver().PumpUntilError(kTimeout);
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_EQ(session->frames(), std::vector<std::string>{"result"});
  EXPECT_FALSE(session->driver().Send("again").ok())
      << "a failed channel must stay failed";
}

TEST_P(TransportConformanceTest, ParentCloseIsUnavailableInChild) {
  std::unique_ptr<Session> session =
      Session::Start(transport_, [](Channel& channel) {
        absl::StatusOr<std::string> hi = channel.ReceiveBlocking();
        if (!hi.ok() || *hi != "hi") return ChildFailure(4, "no \"hi\"");
        absl::Status s = channel.SendBlocking(*hi);
        if (!s.ok()) return ChildFailure(5, s.ToString());
        absl::StatusOr<std::string> next = channel.ReceiveBlocking();
        if (next.ok())
          return ChildFailure(6, "a frame after the parent closed");
        if (!absl::IsUnavailable(next.status())) {
          return ChildFailure(
              7, absl::StrCat("ReceiveBlocking: want kUnavailable, got ",
                              next.status().ToString()));
        }
        // SIGPIPE is fatal in the child: this must fail cleanly instead.
        s = channel.SendBlocking("late");
        if (!absl::IsUnavailable(s)) {
          return ChildFailure(
              8,
              absl::StrCat("SendBlocking after close: want kUnavailable, got ",
                           s.ToString()));
        }
        return 0;
      });
  ASSERT_NE(session, nullptr);
  CONFORMANCE_ASSERT_OK(session->driver().Send("hi"));
  CONFORMANCE_ASSERT_OK(session->driver().PumpUntilFrames(1, kTimeout));
  EXPECT_EQ(session->frames()[0], "hi");
  EXPECT_TRUE(session->CloseAndExitsCleanly());
}

TEST_P(TransportConformanceTest, ChildSendAfterParentCloseIsUnavailable) {
  SignalPipe closed;
  std::unique_ptr<Session> session = Session::Start(
      transport_,
      [&closed](Channel& channel) {
        absl::StatusOr<std::string> hi = channel.ReceiveBlocking();
        if (!hi.ok() || *hi != "hi") return ChildFailure(4, "no \"hi\"");
        absl::Status s = channel.SendBlocking(*hi);
        if (!s.ok()) return ChildFailure(5, s.ToString());
        if (!closed.Await(kTimeout)) return ChildFailure(6, "no close signal");
        // The child writes before it has read of the close. SIGPIPE is fatal
        // in the child: this must fail cleanly instead.
        s = channel.SendBlocking("late");
        if (!absl::IsUnavailable(s)) {
          return ChildFailure(
              7,
              absl::StrCat("SendBlocking after close: want kUnavailable, got ",
                           s.ToString()));
        }
        absl::StatusOr<std::string> next = channel.ReceiveBlocking();
        if (next.ok())
          return ChildFailure(8, "a frame after the parent closed");
        return 0;
      },
      {closed.read_fd()});
  ASSERT_NE(session, nullptr);
  CONFORMANCE_ASSERT_OK(session->driver().Send("hi"));
  CONFORMANCE_ASSERT_OK(session->driver().PumpUntilFrames(1, kTimeout));
  session->CloseParent();
  ASSERT_TRUE(closed.Signal());
  EXPECT_TRUE(ExitsCleanly(session->child(), kTimeout));
}

TEST_P(TransportConformanceTest, NoDescriptorLeaks) {
  const int before = CountOpenFds();
  for (int round = 0; round < 3; ++round) {
    absl::StatusOr<ChannelPair> pair = transport_->CreatePair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    const ChildEndpoint endpoint = pair->child;
    Transport* transport = transport_;
    // The child checks its own side: OpenChild() takes the endpoint's
    // descriptors, and destroying the channel closes everything it opened.
    absl::StatusOr<ForkedChild> child = ForkedChild::Start(
        [transport, &endpoint]() {
          const int child_before = CountOpenFds();
          int code;
          {
            absl::StatusOr<std::unique_ptr<Channel>> channel =
                transport->OpenChild(endpoint);
            if (!channel.ok()) {
              return ChildFailure(kChildOpenFailed,
                                  channel.status().ToString());
            }
            code = EchoLoop(**channel);
          }
          const int want = child_before - static_cast<int>(endpoint.fds.size());
          const int child_after = CountOpenFds();
          if (code == 0 && child_after != want) {
            return ChildFailure(
                20, absl::StrCat(
                        "child has ", child_after,
                        " descriptors after closing its channel, want ", want));
          }
          return code;
        },
        endpoint.fds);
    CloseEndpoint(&pair->child);
    ASSERT_TRUE(child.ok()) << child.status();
    {
      ChannelDriver driver(pair->parent.get());
      CONFORMANCE_ASSERT_OK(driver.Send("x"));
      CONFORMANCE_ASSERT_OK(driver.PumpUntilFrames(1, kTimeout));
    }
    pair->parent.reset();
    EXPECT_TRUE(ExitsCleanly(*child, kTimeout));
  }
  // Pairs never handed to a child.
  for (int round = 0; round < 3; ++round) {
    absl::StatusOr<ChannelPair> pair = transport_->CreatePair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    pair->parent.reset();
    CloseEndpoint(&pair->child);
  }
  EXPECT_EQ(CountOpenFds(), before);
}

// A transport may take in what arrived while it sends (capnp's parent end
// runs its event loop in Send()); a frame taken in that way must still make
// PollFd() readable, or a manager that waits on PollFd() never sees it. The
// child does not look at its channel meanwhile, so nothing else it sends
// (capnp's answer to the parent's call) can make PollFd() readable instead.
TEST_P(TransportConformanceTest, FrameTakenInDuringSendMakesPollFdReadable) {
  SignalPipe sent;
  SignalPipe done;
  std::unique_ptr<Session> session = Session::Start(
      transport_,
      [&sent, &done](Channel& channel) {
        absl::Status s = channel.SendBlocking("early");
        if (!s.ok()) return ChildFailure(4, s.ToString());
        sent.Signal();
        return done.Await(kTimeout) ? 0 : ChildFailure(5, "no \"done\"");
      },
      {sent.write_fd(), done.read_fd()});
  ASSERT_NE(session, nullptr);
  ChannelDriver& driver = session->driver();
  ASSERT_TRUE(sent.Await(kTimeout));
  // "early" is in the transport: it has reached the parent's end, and
  // PollFd() says so (nothing is pumped), before Send() runs.
  ASSERT_TRUE(driver.WaitReadable(kTimeout))
      << "\"early\" never made PollFd() readable";
  CONFORMANCE_ASSERT_OK(driver.Send("late"));
  EXPECT_TRUE(driver.WaitReadable(kTimeout))
      << "a frame that arrived before Send() is not signalled";
  CONFORMANCE_ASSERT_OK(driver.PumpUntilFrames(1, kTimeout));
  EXPECT_EQ(driver.frames(), std::vector<std::string>{"early"});
  done.Signal();
  EXPECT_TRUE(ExitsCleanly(session->child(), kTimeout));
}

TEST_P(TransportConformanceTest, PollFdReadableExactlyWhenThereIsInput) {
  std::unique_ptr<Session> session =
      Session::Start(transport_, [](Channel& channel) {
        absl::StatusOr<std::string> hello = channel.ReceiveBlocking();
        if (!hello.ok()) return ChildFailure(4, hello.status().ToString());
        absl::Status s = channel.SendBlocking(*hello);
        if (!s.ok()) return ChildFailure(5, s.ToString());
        absl::StatusOr<std::string> go = channel.ReceiveBlocking();
        if (!go.ok()) return ChildFailure(6, go.status().ToString());
        s = channel.SendBlocking("ping");
        if (!s.ok()) return ChildFailure(7, s.ToString());
        return EchoLoop(channel);
      });
  ASSERT_NE(session, nullptr);
  ChannelDriver& driver = session->driver();
  CONFORMANCE_ASSERT_OK(driver.Send("hello"));
  CONFORMANCE_ASSERT_OK(driver.PumpUntilFrames(1, kTimeout));
  CONFORMANCE_ASSERT_OK(driver.PumpOnce());
  // Nothing is on its way: a PollFd() still readable would make the manager
  // spin.
  EXPECT_FALSE(driver.WaitReadable(absl::Milliseconds(50)))
      << "PollFd() is readable after Pump() with nothing to read";

  CONFORMANCE_ASSERT_OK(driver.Send("go"));
  CONFORMANCE_ASSERT_OK(driver.PumpUntil(
      [&] { return (session->parent().PollEvents() & EPOLLOUT) == 0; },
      kTimeout));
  // From here Pump() runs only when PollFd() says so.
  const absl::Time deadline = absl::Now() + kTimeout;
  while (driver.frames().size() < 2) {
    ASSERT_TRUE(driver.WaitReadable(deadline - absl::Now()))
        << "PollFd() never became readable though the child sent a frame";
    CONFORMANCE_ASSERT_OK(driver.PumpOnce());
  }
  EXPECT_EQ(driver.frames()[1], "ping");
  EXPECT_TRUE(session->CloseAndExitsCleanly());
}

TEST_P(TransportConformanceTest, TinyFrameRoundTripLatency) {
  constexpr int kWarmup = 1000;
  constexpr int kRounds = 20000;
  std::unique_ptr<Session> session = Session::Start(transport_, EchoLoop);
  ASSERT_NE(session, nullptr);
  ChannelDriver& driver = session->driver();
  auto round_trip = [&driver]() -> absl::Status {
    driver.frames().clear();
    RETURN_IF_ERROR(driver.Send("12345678"));
    return driver.PumpUntilFrames(1, kTimeout);
  };
  for (int i = 0; i < kWarmup; ++i) CONFORMANCE_ASSERT_OK(round_trip());
  const absl::Time start = absl::Now();
  for (int i = 0; i < kRounds; ++i) CONFORMANCE_ASSERT_OK(round_trip());
  const double micros =
      absl::ToDoubleMicroseconds(absl::Now() - start) / kRounds;
  RecordProperty("round_trip_us", absl::StrFormat("%.2f", micros));
  std::printf("[ %s ] tiny-frame round trip: %.2f us\n", GetParam().c_str(),
              micros);
  EXPECT_LT(micros, 1000.0) << "sanity bound only";
  EXPECT_TRUE(session->CloseAndExitsCleanly());
}

// Descriptors with frames (Channel::CarriesDescriptors()).
//
// A descriptor frame's first byte is the number of descriptors it carries;
// DescriptorEchoLoop() sends every frame back with the descriptors it came
// with.

// A memfd (close-on-exec) holding `content`.
UniqueFd MakeMemfd(const std::string& content) {
  UniqueFd fd(memfd_create("conformance", MFD_CLOEXEC));
  if (!fd.valid()) {
    ADD_FAILURE() << "memfd_create: " << strerror(errno);
    return fd;
  }
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t w = write(fd.get(), content.data() + done,
                            content.size() - done);
    if (w <= 0) {
      ADD_FAILURE() << "write: " << strerror(errno);
      return UniqueFd();
    }
    done += static_cast<size_t>(w);
  }
  return fd;
}

// The whole content of the file `fd` names (from offset 0).
std::string ReadFile(int fd) {
  std::string content;
  char buf[4096];
  for (off_t offset = 0;;) {
    const ssize_t n = pread(fd, buf, sizeof(buf), offset);
    if (n <= 0) return n < 0 ? "<pread failed>" : content;
    content.append(buf, static_cast<size_t>(n));
    offset += n;
  }
}

// What descriptor j of frame i holds.
std::string DescriptorContent(int i, int j) {
  return absl::StrCat("frame ", i, " descriptor ", j);
}

std::string DescriptorFrame(int count, absl::string_view payload) {
  return absl::StrCat(std::string(1, static_cast<char>(count)), payload);
}

int DescriptorEchoLoop(Channel& channel) {
  if (!channel.CarriesDescriptors()) return ChildFailure(30, "no descriptors");
  for (;;) {
    absl::StatusOr<std::string> frame = channel.ReceiveBlocking();
    if (!frame.ok()) {
      return absl::IsUnavailable(frame.status())
                 ? 0
                 : ChildFailure(31, frame.status().ToString());
    }
    const size_t n = frame->empty() ? 0 : static_cast<unsigned char>((*frame)[0]);
    absl::StatusOr<std::vector<UniqueFd>> fds = channel.TakeDescriptors(n);
    if (!fds.ok()) return ChildFailure(32, fds.status().ToString());
    std::vector<int> raw;
    for (const UniqueFd& fd : *fds) raw.push_back(fd.get());
    const absl::string_view part = *frame;
    absl::Status s = channel.SendBlockingPartsWithDescriptors({part}, raw);
    if (!s.ok()) return ChildFailure(33, s.ToString());
  }
}

#define SKIP_WITHOUT_DESCRIPTORS(channel)                                 \
  do {                                                                    \
    if (!(channel).CarriesDescriptors()) {                                \
      GTEST_SKIP() << GetParam()                                          \
                   << " channels do not carry descriptors (the codec "    \
                      "copies the bytes instead)";                        \
    }                                                                     \
  } while (false)

TEST_P(TransportConformanceTest, DescriptorCallsWithoutDescriptorsAreUnimplemented) {
  absl::StatusOr<ChannelPair> pair = transport_->CreatePair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  Channel& parent = *pair->parent;
  absl::StatusOr<std::vector<UniqueFd>> none = parent.TakeDescriptors(0);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
  if (parent.CarriesDescriptors()) {
    EXPECT_TRUE(absl::IsDataLoss(parent.TakeDescriptors(1).status()));
  } else {
    const int fd = 0;
    EXPECT_TRUE(absl::IsUnimplemented(
        parent.SendPartsWithDescriptors({"x"}, nullptr, {fd})));
    EXPECT_TRUE(absl::IsUnimplemented(
        parent.SendBlockingPartsWithDescriptors({"x"}, {fd})));
    EXPECT_TRUE(absl::IsUnimplemented(parent.TakeDescriptors(1).status()));
  }
  pair->parent.reset();
  CloseEndpoint(&pair->child);
}

// A memfd crosses both ways and names the same file at the end.
TEST_P(TransportConformanceTest, DescriptorNamesTheSameFileBothWays) {
  UniqueFd mine = MakeMemfd("parent bytes");
  ASSERT_TRUE(mine.valid());
  struct stat mine_stat;
  ASSERT_EQ(fstat(mine.get(), &mine_stat), 0);
  std::unique_ptr<Session> session = Session::Start(
      transport_, [](Channel& channel) {
        absl::StatusOr<std::string> frame = channel.ReceiveBlocking();
        if (!frame.ok()) return ChildFailure(1, frame.status().ToString());
        absl::StatusOr<std::vector<UniqueFd>> fds = channel.TakeDescriptors(1);
        if (!fds.ok()) return ChildFailure(2, fds.status().ToString());
        struct stat st;
        if (fstat((*fds)[0].get(), &st) != 0 ||
            absl::StrCat(st.st_dev, ":", st.st_ino) != *frame) {
          return ChildFailure(3, "not the parent's file");
        }
        if (ReadFile((*fds)[0].get()) != "parent bytes") {
          return ChildFailure(4, "not the parent's bytes");
        }
        // The child writes to it too (shared, not copied), and sends back
        // the parent's file and one of its own.
        if (pwrite((*fds)[0].get(), "P", 1, 0) != 1) {
          return ChildFailure(5, "pwrite");
        }
        UniqueFd own = MakeMemfd("child bytes");
        const int raw[2] = {(*fds)[0].get(), own.get()};
        absl::Status s = channel.SendBlockingPartsWithDescriptors(
            {absl::string_view("two")}, raw);
        if (!s.ok()) return ChildFailure(6, s.ToString());
        return DescriptorEchoLoop(channel);
      });
  ASSERT_NE(session, nullptr);
  SKIP_WITHOUT_DESCRIPTORS(session->parent());
  const std::string id = absl::StrCat(mine_stat.st_dev, ":", mine_stat.st_ino);
  const int raw = mine.get();
  CONFORMANCE_ASSERT_OK(
      session->driver().SendPartsWithDescriptors({id}, nullptr, {raw}));
  CONFORMANCE_ASSERT_OK(session->driver().PumpUntilFrames(1, kTimeout));
  ASSERT_EQ(session->frames()[0], "two");
  absl::StatusOr<std::vector<UniqueFd>> fds =
      session->parent().TakeDescriptors(2);
  ASSERT_TRUE(fds.ok()) << fds.status();
  struct stat back;
  ASSERT_EQ(fstat((*fds)[0].get(), &back), 0);
  EXPECT_EQ(back.st_ino, mine_stat.st_ino);
  EXPECT_EQ(back.st_dev, mine_stat.st_dev);
  EXPECT_NE((*fds)[0].get(), mine.get());
  EXPECT_TRUE(IsCloseOnExec((*fds)[0].get()));
  EXPECT_TRUE(IsCloseOnExec((*fds)[1].get()));
  EXPECT_EQ(ReadFile(mine.get()), "Parent bytes");
  EXPECT_EQ(ReadFile((*fds)[1].get()), "child bytes");
  EXPECT_TRUE(absl::IsDataLoss(session->parent().TakeDescriptors(1).status()));
  EXPECT_TRUE(session->CloseAndExitsCleanly());
}

// Sends `count` frames, frame i carrying i % 4 descriptors (a memfd each)
// and `payload(i)`, echoed back; checks frames and descriptors in order.
void EchoDescriptorFrames(Session& session, int count,
                          const std::function<std::string(int)>& payload) {
  for (int i = 0; i < count; ++i) {
    const int n = i % 4;
    std::vector<UniqueFd> fds;
    std::vector<int> raw;
    for (int j = 0; j < n; ++j) {
      fds.push_back(MakeMemfd(DescriptorContent(i, j)));
      raw.push_back(fds.back().get());
    }
    auto frame = std::make_shared<std::string>(DescriptorFrame(n, payload(i)));
    CONFORMANCE_ASSERT_OK(session.driver().SendPartsWithDescriptors(
        {*frame}, frame, raw));
    // Ours close now: the channel holds what it still has to send.
  }
  CONFORMANCE_ASSERT_OK(session.driver().PumpUntilFrames(count, kTimeout));
  ASSERT_EQ(session.frames().size(), static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    const std::string& frame = session.frames()[i];
    ASSERT_EQ(frame, DescriptorFrame(i % 4, payload(i))) << "frame " << i;
    absl::StatusOr<std::vector<UniqueFd>> fds =
        session.parent().TakeDescriptors(i % 4);
    ASSERT_TRUE(fds.ok()) << "frame " << i << ": " << fds.status();
    for (int j = 0; j < i % 4; ++j) {
      EXPECT_EQ(ReadFile((*fds)[j].get()), DescriptorContent(i, j))
          << "frame " << i << " descriptor " << j;
    }
  }
  EXPECT_TRUE(absl::IsDataLoss(session.parent().TakeDescriptors(1).status()));
}

TEST_P(TransportConformanceTest, ManyFramesWithAndWithoutDescriptorsInOrder) {
  const int before = CountOpenFds();
  {
    std::unique_ptr<Session> session =
        Session::Start(transport_, DescriptorEchoLoop);
    ASSERT_NE(session, nullptr);
    SKIP_WITHOUT_DESCRIPTORS(session->parent());
    EchoDescriptorFrames(*session, 400, [](int i) { return NumberedFrame(i); });
    EXPECT_TRUE(session->CloseAndExitsCleanly());
  }
  EXPECT_EQ(CountOpenFds(), before);
}

// Several MiB per frame: many writes, ring wraps, partial sends.
TEST_P(TransportConformanceTest, LargeFramesWithDescriptors) {
  std::unique_ptr<Session> session =
      Session::Start(transport_, DescriptorEchoLoop);
  ASSERT_NE(session, nullptr);
  SKIP_WITHOUT_DESCRIPTORS(session->parent());
  EchoDescriptorFrames(*session, 8, [](int i) {
    return i % 2 == 1 ? Pattern((size_t{6} << 20) + i, i) : NumberedFrame(i);
  });
  EXPECT_TRUE(session->CloseAndExitsCleanly());
}

TEST_P(TransportConformanceTest, MaxDescriptorsPerFrame) {
  constexpr size_t kMax = Channel::kMaxDescriptorsPerFrame;
  std::unique_ptr<Session> session = Session::Start(
      transport_, [](Channel& channel) {
        // The child's side refuses one too many without harm, too.
        UniqueFd fd = MakeMemfd("x");
        const std::vector<int> too_many(kMax + 1, fd.get());
        absl::Status s = channel.SendBlockingPartsWithDescriptors(
            {absl::string_view("refused")}, too_many);
        if (!absl::IsInvalidArgument(s)) return ChildFailure(1, s.ToString());
        const int bad = -1;
        s = channel.SendBlockingPartsWithDescriptors(
            {absl::string_view("refused")}, {bad});
        if (!absl::IsInvalidArgument(s)) return ChildFailure(2, s.ToString());
        return DescriptorEchoLoop(channel);
      });
  ASSERT_NE(session, nullptr);
  SKIP_WITHOUT_DESCRIPTORS(session->parent());
  UniqueFd fd = MakeMemfd("shared by all");
  const std::vector<int> max(kMax, fd.get());
  const std::vector<int> too_many(kMax + 1, fd.get());
  const std::string frame = DescriptorFrame(kMax, "max");
  absl::Status refused =
      session->driver().SendPartsWithDescriptors({frame}, nullptr, too_many);
  EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
  CONFORMANCE_ASSERT_OK(
      session->driver().SendPartsWithDescriptors({frame}, nullptr, max));
  const int bad = -1;
  EXPECT_TRUE(absl::IsInvalidArgument(session->driver().SendPartsWithDescriptors(
      {frame}, nullptr, {bad})));
  CONFORMANCE_ASSERT_OK(session->driver().Send(DescriptorFrame(0, "after")));
  CONFORMANCE_ASSERT_OK(session->driver().PumpUntilFrames(2, kTimeout));
  EXPECT_EQ(session->frames()[0], frame);
  EXPECT_EQ(session->frames()[1], DescriptorFrame(0, "after"));
  absl::StatusOr<std::vector<UniqueFd>> fds =
      session->parent().TakeDescriptors(kMax + 1);
  EXPECT_TRUE(absl::IsDataLoss(fds.status())) << fds.status();
  fds = session->parent().TakeDescriptors(kMax);
  ASSERT_TRUE(fds.ok()) << fds.status();
  for (const UniqueFd& got : *fds) {
    EXPECT_EQ(ReadFile(got.get()), "shared by all");
  }
  EXPECT_TRUE(session->CloseAndExitsCleanly());
}

// Descriptors nobody took are closed with the channel, on both sides; so are
// those of a frame cut short when its sender dies.
TEST_P(TransportConformanceTest, UntakenDescriptorsDoNotLeak) {
  const int before = CountOpenFds();
  {
    absl::StatusOr<ChannelPair> pair = transport_->CreatePair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    if (!pair->parent->CarriesDescriptors()) {
      pair->parent.reset();
      CloseEndpoint(&pair->child);
      GTEST_SKIP() << GetParam() << " channels do not carry descriptors";
    }
    const ChildEndpoint endpoint = pair->child;
    Transport* transport = transport_;
    SignalPipe done;
    absl::StatusOr<ForkedChild> child = ForkedChild::Start(
        [transport, &endpoint, &done]() {
          const int child_before = CountOpenFds();
          {
            absl::StatusOr<std::unique_ptr<Channel>> channel =
                transport->OpenChild(endpoint);
            if (!channel.ok()) {
              return ChildFailure(kChildOpenFailed,
                                  channel.status().ToString());
            }
            // Three frames with descriptors, none taken; then some back.
            for (int i = 0; i < 3; ++i) {
              absl::StatusOr<std::string> frame = (*channel)->ReceiveBlocking();
              if (!frame.ok()) return ChildFailure(1, frame.status().ToString());
            }
            UniqueFd fd = MakeMemfd("from the child");
            const int raw[3] = {fd.get(), fd.get(), fd.get()};
            for (int i = 0; i < 3; ++i) {
              absl::Status s = (*channel)->SendBlockingPartsWithDescriptors(
                  {absl::string_view("back")}, raw);
              if (!s.ok()) return ChildFailure(2, s.ToString());
            }
            absl::StatusOr<std::string> end = (*channel)->ReceiveBlocking();
            if (end.ok()) return ChildFailure(3, "a frame after the last");
          }
          const int want =
              child_before - static_cast<int>(endpoint.fds.size());
          if (CountOpenFds() != want) {
            return ChildFailure(4, absl::StrCat("child has ", CountOpenFds(),
                                                " descriptors, want ", want));
          }
          return 0;
        },
        endpoint.fds);
    CloseEndpoint(&pair->child);
    ASSERT_TRUE(child.ok()) << child.status();
    {
      ChannelDriver driver(pair->parent.get());
      UniqueFd fd = MakeMemfd("from the parent");
      const int raw[2] = {fd.get(), fd.get()};
      for (int i = 0; i < 3; ++i) {
        CONFORMANCE_ASSERT_OK(
            driver.SendPartsWithDescriptors({"x"}, nullptr, raw));
      }
      CONFORMANCE_ASSERT_OK(driver.PumpUntilFrames(3, kTimeout));
    }
    pair->parent.reset();  // 9 descriptors untaken
    EXPECT_TRUE(ExitsCleanly(*child, kTimeout));
  }
  EXPECT_EQ(CountOpenFds(), before);

  // The child dies in the middle of a large frame that carries descriptors,
  // after frames with descriptors that the parent does not take.
  {
    ScopedDefaultSigpipe sigpipe;
    SignalPipe started;
    std::unique_ptr<Session> session = Session::Start(
        transport_,
        [&started](Channel& channel) {
          UniqueFd fd = MakeMemfd("doomed");
          const int raw[4] = {fd.get(), fd.get(), fd.get(), fd.get()};
          for (int i = 0; i < 2; ++i) {
            absl::Status s = channel.SendBlockingPartsWithDescriptors(
                {absl::string_view("small")}, raw);
            if (!s.ok()) return ChildFailure(4, s.ToString());
          }
          started.Signal();
          const std::string large = Pattern(kLargeFrame, 5);
          (void)channel.SendBlockingPartsWithDescriptors(
              {absl::string_view(large)}, raw);
          pause();
          return 0;
        },
        {started.write_fd()});
    ASSERT_NE(session, nullptr);
    ASSERT_TRUE(started.Await(kTimeout));
    // Part of the large frame (and its descriptors) is out: the child waits
    // for room.
    ASSERT_TRUE(AwaitAsleep(session->child().pid(), kTimeout))
        << "the child never blocked in the large frame";
    session->child().Kill();
    const absl::Status status = session->driver().PumpUntilError(kTimeout);
    EXPECT_TRUE(absl::IsUnavailable(status)) << status;
    ASSERT_GE(session->frames().size(), 2u);
    absl::StatusOr<std::vector<UniqueFd>> first =
        session->parent().TakeDescriptors(4);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_EQ(ReadFile((*first)[3].get()), "doomed");
  }
  EXPECT_EQ(CountOpenFds(), before);
}

}  // namespace
}  // namespace transport_testing
}  // namespace procpool
