// Remote workers through the executor, across two "hosts" (issue 5): the
// worker daemon (the executor's test_worker binary with --listen) runs in a
// network namespace of its own, joined to this one by a veth pair
// (worker/testing/netns.h), and a ProcessPoolExecutor whose
// Options::remote_workers name it runs tasks there. Its tasks report the
// other namespace and its addresses; Map works; killing the daemon, or a link
// that goes down, fails the pending future with BrokenProcessPool naming
// HOST:PORT within the default heartbeat bound; a wrong key is refused; with
// kReplaceWorker a dead remote worker fails only its futures (or its task is
// retried on a fresh connection).
//
// Needs root and iproute2 (`ip netns`); where the namespace or the link
// cannot be made, every test SKIPS and says why. The namespace and the links
// are removed after each test, also when it fails (TearDown, and a guard that
// runs at exit). Every wait is bounded.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "executor/process_pool_executor.h"
#include "executor/testdata/test_tasks.h"
#include "executor/testdata/test_worker.h"
#include "gtest/gtest.h"
#include "worker/testing/daemon_harness.h"
#include "worker/testing/netns.h"

namespace procpool {
namespace {

namespace tt = test_tasks;
using testing::RemotePoolOptions;
using testing::TestWorkerBinary;
using daemon_testing::Daemon;
using daemon_testing::ParentOf;
using daemon_testing::StartDaemon;
using daemon_testing::WriteKeyFile;
using netns_testing::NetnsOf;
using netns_testing::OwnNetns;
using netns_testing::TheTopology;
using netns_testing::Topology;

constexpr char kKey[] = "the executor's two-host secret";
constexpr absl::Duration kWait = absl::Seconds(20);
// The failure must come within remote_heartbeat_timeout * 9/8 (remote.h);
// this much more for a loaded 2-core machine (the manager thread, the future).
constexpr absl::Duration kSlack = absl::Milliseconds(1000);

class RemoteTwoHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = netns_testing::MakeTopology(TheTopology());
    if (!why.empty()) GTEST_SKIP() << "two-host test skipped: " << why;
    made_ = true;
    const Topology& t = TheTopology();
    key_file_ = WriteKeyFile("remote_netns.key", kKey);
    absl::StatusOr<std::unique_ptr<Daemon>> d = StartDaemon(
        {"ip", "netns", "exec", t.ns, TestWorkerBinary(),
         absl::StrCat("--listen=", t.there_ip, ":0"),
         absl::StrCat("--auth_key_file=", key_file_)},
        "remote_netns_daemon.log");
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = *std::move(d);
    ASSERT_TRUE(absl::StartsWith(daemon_->address, t.there_ip + ":"))
        << daemon_->address;
  }

  void TearDown() override {
    daemon_.reset();  // SIGKILL; its children die with it (PDEATHSIG)
    if (made_) TheTopology().Remove();
  }

  // Two worker slots on the other host, default heartbeats (2 s).
  Options RemoteOptions(int slots = 2) {
    return RemotePoolOptions(daemon_->address, key_file_, slots);
  }

  // Runs `get` (a future's Get) expecting BrokenProcessPool naming the
  // daemon; returns its what() and how long it took from `start`.
  template <typename F>
  std::pair<std::string, absl::Duration> ExpectBroken(F get,
                                                      absl::Time start) {
    try {
      get();
      ADD_FAILURE() << "the future succeeded";
      return {"", absl::Now() - start};
    } catch (const BrokenProcessPool& e) {
      const absl::Duration took = absl::Now() - start;
      EXPECT_TRUE(absl::StrContains(e.what(), daemon_->address)) << e.what();
      EXPECT_EQ(e.crash().host, daemon_->address) << e.what();
      return {e.what(), took};
    }
  }

  bool made_ = false;
  std::string key_file_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(RemoteTwoHostTest, TasksRunOnTheOtherHost) {
  ProcessPoolExecutor pool(RemoteOptions());
  // The other namespace: the daemon's (`ip netns exec` execs it in place).
  const std::string netns = pool.Submit(tt::NetnsId).Get(kWait);
  EXPECT_NE(netns, OwnNetns());
  EXPECT_EQ(netns, NetnsOf(daemon_->pid));
  // Its interfaces: the far end of the veth pair, not ours.
  const std::vector<std::string> addresses =
      pool.Submit(tt::Ipv4Addresses).Get(kWait);
  EXPECT_NE(std::find(addresses.begin(), addresses.end(),
                      TheTopology().there_ip),
            addresses.end());
  EXPECT_EQ(std::find(addresses.begin(), addresses.end(),
                      TheTopology().here_ip),
            addresses.end());
  // Two slots: two workers, each a child of the daemon.
  std::set<int> pids;
  std::vector<Future<int>> fs;
  for (int i = 0; i < 8; ++i) fs.push_back(pool.Submit(tt::SleepThenPid, 50));
  for (auto& f : fs) pids.insert(f.Get(kWait));
  EXPECT_EQ(pids.size(), 2u);
  for (int pid : pids) {
    EXPECT_EQ(ParentOf(pid), daemon_->pid) << pid;
    EXPECT_EQ(NetnsOf(pid), netns) << pid;
  }
  EXPECT_TRUE(pool.WorkerPids().empty());  // no local worker
  // Map, in order.
  std::vector<std::pair<int, int>> inputs;
  for (int i = 0; i < 50; ++i) inputs.emplace_back(i, 2);
  std::vector<int> squares;
  for (int v : pool.Map(tt::Pow, inputs)) {
    squares.push_back(v);
  }
  ASSERT_EQ(squares.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(squares[i], i * i) << i;
  // A payload larger than one 4 MiB chunk crosses the link both ways.
  EXPECT_EQ(pool.Submit(tt::Echo, std::string(5 << 20, 'x')).Get(kWait).size(),
            size_t{5} << 20);
}

TEST_F(RemoteTwoHostTest, KillingTheDaemonBreaksThePoolWithinTheBound) {
  ProcessPoolExecutor pool(RemoteOptions());
  EXPECT_EQ(pool.Submit(tt::Pow, 2, 5).Get(kWait), 32);  // connected
  Future<int> running = pool.Submit(tt::SleepMs, 20000);
  absl::SleepFor(absl::Milliseconds(200));
  const absl::Time start = absl::Now();
  ASSERT_NE(daemon_->SignalAndWait(SIGKILL, kWait), -1);
  const auto [what, took] =
      ExpectBroken([&] { running.Get(kWait); }, start);
  EXPECT_LT(took, Options().remote_heartbeat_timeout * 9 / 8 + kSlack)
      << took << ": " << what;
  EXPECT_THROW(pool.Submit(tt::Noop), BrokenProcessPool);
}

TEST_F(RemoteTwoHostTest, ALinkDownIsCaughtByHeartbeatsWithinTheBound) {
  ProcessPoolExecutor pool(RemoteOptions(1));
  EXPECT_EQ(pool.Submit(tt::Pow, 3, 3).Get(kWait), 27);  // connected
  Future<int> running = pool.Submit(tt::SleepMs, 20000);
  absl::SleepFor(absl::Milliseconds(200));
  // From now on packets to the other host are dropped: no FIN, no RST.
  std::string out;
  ASSERT_EQ(TheTopology().SetLink(/*up=*/false, &out), 0) << out;
  const absl::Time start = absl::Now();
  const auto [what, took] =
      ExpectBroken([&] { running.Get(kWait); }, start);
  EXPECT_TRUE(absl::StrContains(
      what, absl::StrCat("no heartbeat from the worker daemon at ",
                         daemon_->address)))
      << what;
  EXPECT_LT(took, Options().remote_heartbeat_timeout * 9 / 8 + kSlack)
      << took << ": " << what;
}

TEST_F(RemoteTwoHostTest, AWrongKeyIsRefused) {
  Options o = RemoteOptions(1);
  o.auth_key_file = WriteKeyFile("remote_netns_wrong.key", "a guess");
  ProcessPoolExecutor pool(o);
  const auto [what, took] = ExpectBroken(
      [&] { pool.Submit(tt::Pow, 2, 2).Get(kWait); }, absl::Now());
  EXPECT_TRUE(absl::StrContains(what, "rejected our key")) << what;
  // The daemon's side says so too, naming us (this side of the link).
  const std::string expected = absl::StrCat("refused the connection from ",
                                            TheTopology().here_ip, ":");
  const absl::Time deadline = absl::Now() + kWait;
  while (!absl::StrContains(daemon_->Log(), expected) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(absl::StrContains(daemon_->Log(), expected)) << daemon_->Log();
}

TEST_F(RemoteTwoHostTest, ADeadRemoteWorkerIsReplacedWithKReplaceWorker) {
  Options o = RemoteOptions(1);
  o.on_worker_death = WorkerDeathPolicy::kReplaceWorker;
  ProcessPoolExecutor pool(o);
  const int pid = pool.Submit(tt::GetPid).Get(kWait);
  ASSERT_EQ(ParentOf(pid), daemon_->pid);
  Future<int> running = pool.Submit(tt::SleepMs, 20000);
  absl::SleepFor(absl::Milliseconds(200));
  ASSERT_EQ(kill(pid, SIGKILL), 0);  // the daemon's child, not the daemon
  try {
    running.Get(kWait);
    FAIL() << "the future of a killed remote worker succeeded";
  } catch (const WorkerDiedError& e) {
    EXPECT_EQ(e.crash().host, daemon_->address) << e.what();
    EXPECT_TRUE(absl::StrContains(e.what(), daemon_->address)) << e.what();
  }
  // The pool goes on, over a fresh connection to the same daemon.
  const int next = pool.Submit(tt::GetPid).Get(kWait);
  EXPECT_NE(next, pid);
  EXPECT_EQ(ParentOf(next), daemon_->pid);
}

TEST_F(RemoteTwoHostTest, ATaskIsRetriedOnAFreshRemoteWorker) {
  Options o = RemoteOptions(1);
  o.on_worker_death = WorkerDeathPolicy::kReplaceWorker;
  o.max_retries = 1;
  ProcessPoolExecutor pool(o);
  // The worker has run a task (the next test covers a first task).
  EXPECT_EQ(pool.Submit(tt::Pow, 2, 3).Get(kWait), 8);
  // Dies (SIGKILL) the first time, returns 7 the second; the marker file is
  // on the filesystem both "hosts" share.
  const std::string marker =
      absl::StrCat(getenv("TEST_TMPDIR"), "/remote_netns_die_once");
  unlink(marker.c_str());
  EXPECT_EQ(pool.Submit(tt::DieOnceThenReturn, marker).Get(kWait), 7);
}

// A worker that dies in its first task (after its Hello) is a death, not a
// failure to start: it is replaced and the task retried.
TEST_F(RemoteTwoHostTest, AWorkerDyingInItsFirstTaskIsReplaced) {
  Options o = RemoteOptions(1);
  o.on_worker_death = WorkerDeathPolicy::kReplaceWorker;
  o.max_retries = 1;
  ProcessPoolExecutor pool(o);
  const std::string marker =
      absl::StrCat(getenv("TEST_TMPDIR"), "/remote_netns_die_first");
  unlink(marker.c_str());
  EXPECT_EQ(pool.Submit(tt::DieOnceThenReturn, marker).Get(kWait), 7);
}

}  // namespace
}  // namespace procpool
