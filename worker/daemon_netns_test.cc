// Two "hosts" on one machine: the worker daemon runs in a network namespace
// of its own (`ip netns exec NS daemon_test_worker --listen=10.R.S.2:0`),
// joined to this one by a veth pair (10.R.S.1 here, 10.R.S.2 there). A
// parent here authenticates over that link and its tasks run there (they
// report the other namespace); a wrong key is refused on both sides; a link
// that goes silent is caught by heartbeats, and killing the daemon breaks the
// channel, both within the default bound.
//
// Needs root and iproute2 (`ip netns`). Where the namespace or the link
// cannot be made, every test SKIPS and says why. The namespace and the links
// are removed when the test ends, also when it fails (the fixture's
// TearDown, and a guard that runs at exit). Traffic goes only to the
// addresses made here. The topology is worker/testing/netns.h's, shared with
// executor/remote_netns_test.cc.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "worker/testing/daemon_harness.h"
#include "worker/testing/netns.h"

namespace procpool {
namespace daemon_testing {
namespace {

constexpr char kKey[] = "the two-host test's shared secret";

using netns_testing::NetnsOf;
using netns_testing::OwnNetns;
using netns_testing::TheTopology;
using netns_testing::Topology;

class TwoHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = netns_testing::MakeTopology(TheTopology());
    if (!why.empty()) GTEST_SKIP() << "two-host test skipped: " << why;
    made_ = true;
    const Topology& t = TheTopology();
    key_file_ = WriteKeyFile("netns.key", kKey);
    absl::StatusOr<std::unique_ptr<Daemon>> d = StartDaemon(
        {"ip", "netns", "exec", t.ns, WorkerBinary(),
         absl::StrCat("--listen=", t.there_ip, ":0"),
         absl::StrCat("--auth_key_file=", key_file_)},
        "netns_daemon.log");
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = *std::move(d);
    ASSERT_TRUE(absl::StartsWith(daemon_->address, t.there_ip + ":"))
        << daemon_->address;
  }

  void TearDown() override {
    daemon_.reset();
    if (made_) TheTopology().Remove();
  }

  RemoteWorkerOptions Options(std::string key = kKey) {
    RemoteWorkerOptions o;
    o.address = daemon_->address;
    o.key = std::move(key);
    return o;
  }

  bool made_ = false;
  std::string key_file_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(TwoHostTest, TasksRunOnTheOtherHost) {
  absl::StatusOr<std::unique_ptr<RemoteSession>> s =
      RemoteSession::Open(Options());
  ASSERT_TRUE(s.ok()) << s.status() << "\n" << daemon_->Log();
  ASSERT_TRUE((*s)->Call(1, "DaemonTestNetns").ok());
  absl::StatusOr<wire::Result> r = (*s)->AwaitResult();
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<std::string> netns = Value<std::string>(*r);
  ASSERT_TRUE(netns.ok()) << netns.status();
  // Not ours: the daemon's (`ip netns exec` execs the daemon in place).
  EXPECT_NE(*netns, OwnNetns());
  EXPECT_EQ(*netns, NetnsOf(daemon_->pid));
  EXPECT_EQ(ParentOf((*s)->hello().pid), daemon_->pid);
  // The daemon saw us come from this side of the link.
  ASSERT_TRUE((*s)->Call(2, "DaemonTestAdd", int64_t{20}, int64_t{22}).ok());
  absl::StatusOr<wire::Result> sum = (*s)->AwaitResult();
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(*Value<int64_t>(*sum), 42);
}

TEST_F(TwoHostTest, WrongKeyIsRefused) {
  absl::StatusOr<std::unique_ptr<RemoteSession>> s =
      RemoteSession::Open(Options("a guess"));
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(s.status())) << s.status();
  EXPECT_TRUE(absl::StrContains(s.status().message(), daemon_->address))
      << s.status();
  const std::string expected = absl::StrCat(
      "refused the connection from ", TheTopology().here_ip, ":");
  const absl::Time deadline = absl::Now() + kTimeout;
  while (!absl::StrContains(daemon_->Log(), expected) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(absl::StrContains(daemon_->Log(), expected)) << daemon_->Log();
}

TEST_F(TwoHostTest, KillingTheDaemonBreaksTheChannelWithinTheBound) {
  absl::StatusOr<std::unique_ptr<RemoteSession>> s =
      RemoteSession::Open(Options());
  ASSERT_TRUE(s.ok()) << s.status();
  const std::string started = MarkerPath("killing_the_daemon");
  ASSERT_TRUE(
      (*s)->Call(1, "DaemonTestMarkAndSleep", started, int32_t{20000}).ok());
  ASSERT_TRUE(AwaitFile(started)) << "the call never started\n"
                                  << daemon_->Log();
  const absl::Time start = absl::Now();
  daemon_->SignalAndWait(SIGKILL, kTimeout);
  const absl::Status error = (*s)->AwaitError();
  const absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(absl::IsUnavailable(error)) << error;
  EXPECT_TRUE(absl::StrContains(error.message(), TheTopology().there_ip))
      << error;
  const RemoteWorkerOptions defaults;
  EXPECT_LT(took, defaults.heartbeat_timeout * 9 / 8 + absl::Milliseconds(750))
      << took;
}

TEST_F(TwoHostTest, ASilentLinkIsCaughtByHeartbeats) {
  absl::StatusOr<std::unique_ptr<RemoteSession>> s =
      RemoteSession::Open(Options());
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE((*s)->Call(1, "DaemonTestSleep", int32_t{20000}).ok());
  // Packets to the other host are dropped from now on: no FIN, no RST.
  std::string out;
  ASSERT_EQ(TheTopology().SetLink(/*up=*/false, &out), 0) << out;
  const absl::Time start = absl::Now();
  const absl::Status error = (*s)->AwaitError();
  const absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(absl::IsUnavailable(error)) << error;
  EXPECT_TRUE(absl::StrContains(
      error.message(),
      absl::StrCat("no heartbeat from the worker daemon at ", daemon_->address)))
      << error;
  const RemoteWorkerOptions defaults;
  EXPECT_LT(took, defaults.heartbeat_timeout * 9 / 8 + absl::Milliseconds(750))
      << took;
}

}  // namespace
}  // namespace daemon_testing
}  // namespace procpool
