// The worker daemon on 127.0.0.1, as a subprocess (the daemon tests' worker
// binary with --listen): a parent that authenticates runs tasks in a fresh
// child of the daemon; a wrong key is refused on both sides; a killed or
// stopped child, and a stopped daemon, become the parent's channel error
// within the bound; a child dies with its connection. Every wait is bounded.
#include "worker/daemon/daemon.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "worker/testing/daemon_harness.h"

namespace procpool {
namespace daemon_testing {
namespace {

constexpr char kKey[] = "the daemon test's shared secret";

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_file_ = WriteKeyFile("daemon_test.key", absl::StrCat(kKey, "\n"));
    absl::StatusOr<std::unique_ptr<Daemon>> d = StartDaemon(
        {WorkerBinary(), "--listen=127.0.0.1:0",
         absl::StrCat("--auth_key_file=", key_file_)},
        "daemon_test.log");
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = *std::move(d);
    ASSERT_TRUE(absl::StartsWith(daemon_->address, "127.0.0.1:"))
        << daemon_->address;
  }

  RemoteWorkerOptions Options(std::string key = kKey) {
    RemoteWorkerOptions o;
    o.address = daemon_->address;
    o.key = std::move(key);
    return o;
  }

  std::string key_file_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(DaemonTest, RunsTasksInAFreshChildAfterAuthentication) {
  absl::StatusOr<std::unique_ptr<RemoteSession>> s =
      RemoteSession::Open(Options());
  ASSERT_TRUE(s.ok()) << s.status() << "\n" << daemon_->Log();
  const pid_t worker = (*s)->hello().pid;
  EXPECT_NE(worker, daemon_->pid);
  EXPECT_EQ(ParentOf(worker), daemon_->pid);

  ASSERT_TRUE((*s)->Call(1, "DaemonTestAdd", int64_t{2}, int64_t{40}).ok());
  ASSERT_TRUE((*s)->Call(2, "DaemonTestPid").ok());  // two calls in flight
  absl::StatusOr<wire::Result> r1 = (*s)->AwaitResult();
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->work_id, 1u);
  EXPECT_EQ(*Value<int64_t>(*r1), 42);
  absl::StatusOr<wire::Result> r2 = (*s)->AwaitResult();
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(*Value<int32_t>(*r2), worker);

  // Only registered tasks run.
  ASSERT_TRUE((*s)->Call(3, "system", std::string("rm -rf /")).ok());
  absl::StatusOr<wire::Result> r3 = (*s)->AwaitResult();
  ASSERT_TRUE(r3.ok()) << r3.status();
  ASSERT_FALSE(r3->outcomes[0].ok);
  EXPECT_TRUE(absl::StrContains(r3->outcomes[0].exception.message,
                                "is not registered"));

  // Orderly shutdown: the worker exits and closes.
  ASSERT_TRUE((*s)->channel().Send(wire::EncodeMessage(wire::Shutdown{})).ok());
  const absl::Status closed = (*s)->AwaitError();
  EXPECT_TRUE(absl::IsUnavailable(closed)) << closed;
  EXPECT_TRUE(absl::StrContains(closed.message(), daemon_->address)) << closed;
}

TEST_F(DaemonTest, EachConnectionGetsItsOwnWorker) {
  absl::StatusOr<std::unique_ptr<RemoteSession>> a =
      RemoteSession::Open(Options());
  absl::StatusOr<std::unique_ptr<RemoteSession>> b =
      RemoteSession::Open(Options());
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE((*a)->hello().pid, (*b)->hello().pid);
}

TEST_F(DaemonTest, WrongKeyIsRefusedOnBothSides) {
  absl::StatusOr<std::unique_ptr<RemoteSession>> s =
      RemoteSession::Open(Options("not the key"));
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(s.status())) << s.status();
  EXPECT_TRUE(absl::StrContains(
      s.status().message(),
      absl::StrCat("authentication with ", daemon_->address,
                   " failed: the worker daemon rejected our key")))
      << s.status();
  // The daemon's side says so too, naming the peer.
  const bool logged = [&] {
    const absl::Time deadline = absl::Now() + kTimeout;
    while (absl::Now() < deadline) {
      if (absl::StrContains(daemon_->Log(),
                            "refused the connection from 127.0.0.1:")) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }();
  EXPECT_TRUE(logged) << daemon_->Log();
  EXPECT_TRUE(absl::StrContains(daemon_->Log(), "rejected our key"))
      << daemon_->Log();
}

TEST_F(DaemonTest, KilledChildMidCallBreaksTheChannelNamingTheHost) {
  absl::StatusOr<std::unique_ptr<RemoteSession>> s =
      RemoteSession::Open(Options());
  ASSERT_TRUE(s.ok()) << s.status();
  const std::string started = MarkerPath("killed_child_mid_call");
  ASSERT_TRUE(
      (*s)->Call(1, "DaemonTestMarkAndSleep", started, int32_t{20000}).ok());
  ASSERT_TRUE(AwaitFile(started)) << "the call never started\n"
                                  << daemon_->Log();
  kill((*s)->hello().pid, SIGKILL);
  const absl::Time start = absl::Now();
  const absl::Status error = (*s)->AwaitError();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_TRUE(absl::IsUnavailable(error)) << error;
  EXPECT_TRUE(absl::StrContains(error.message(), daemon_->address)) << error;
}

TEST_F(DaemonTest, LongTaskKeepsAnsweringHeartbeats) {
  RemoteWorkerOptions options = Options();
  options.heartbeat_interval = absl::Milliseconds(100);
  options.heartbeat_timeout = absl::Milliseconds(800);
  absl::StatusOr<std::unique_ptr<RemoteSession>> s =
      RemoteSession::Open(options);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE((*s)->Call(1, "DaemonTestSleep", int32_t{2500}).ok());
  absl::StatusOr<wire::Result> r = (*s)->AwaitResult();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*Value<int32_t>(*r), 2500);
}

TEST_F(DaemonTest, StoppedChildIsCaughtWithinTheDefaultHeartbeatBound) {
  absl::StatusOr<std::unique_ptr<RemoteSession>> s =
      RemoteSession::Open(Options());
  ASSERT_TRUE(s.ok()) << s.status();
  const RemoteWorkerOptions defaults;
  ASSERT_LE(defaults.heartbeat_timeout, absl::Seconds(2));
  ASSERT_TRUE((*s)->Call(1, "DaemonTestSleep", int32_t{20000}).ok());
  const pid_t worker = (*s)->hello().pid;
  kill(worker, SIGSTOP);
  const absl::Time start = absl::Now();
  const absl::Status error = (*s)->AwaitError();
  const absl::Duration took = absl::Now() - start;
  kill(worker, SIGKILL);
  EXPECT_TRUE(absl::IsUnavailable(error)) << error;
  EXPECT_TRUE(absl::StrContains(
      error.message(),
      absl::StrCat("no heartbeat from the worker daemon at ", daemon_->address,
                   " for 2s")))
      << error;
  EXPECT_LT(took, defaults.heartbeat_timeout * 9 / 8 + absl::Milliseconds(750))
      << took;
}

TEST_F(DaemonTest, ChildDiesWithItsConnectionEvenMidTask) {
  absl::StatusOr<std::unique_ptr<RemoteSession>> s =
      RemoteSession::Open(Options());
  ASSERT_TRUE(s.ok()) << s.status();
  const pid_t worker = (*s)->hello().pid;
  const std::string started = MarkerPath("child_dies_mid_task");
  ASSERT_TRUE(
      (*s)->Call(1, "DaemonTestMarkAndSleep", started, int32_t{20000}).ok());
  ASSERT_TRUE(AwaitFile(started)) << "the task never started\n"
                                  << daemon_->Log();
  s->reset();  // the parent closes its end
  const absl::Time deadline = absl::Now() + absl::Seconds(3);
  while (IsAlive(worker) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_FALSE(IsAlive(worker)) << daemon_->Log();
}

TEST_F(DaemonTest, SigtermStopsTheDaemonAndItsWorkers) {
  absl::StatusOr<std::unique_ptr<RemoteSession>> s =
      RemoteSession::Open(Options());
  ASSERT_TRUE(s.ok()) << s.status();
  const pid_t worker = (*s)->hello().pid;
  const int status = daemon_->SignalAndWait(SIGTERM, absl::Seconds(5));
  ASSERT_TRUE(WIFEXITED(status)) << status << "\n" << daemon_->Log();
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(IsAlive(worker));
  const absl::Status error = (*s)->AwaitError(absl::Seconds(3));
  EXPECT_TRUE(absl::IsUnavailable(error)) << error;
}

TEST(DaemonFlagsTest, BadCommandLinesSayWhatIsWrong) {
  const std::string shared = WriteKeyFile("shared.key", "k");
  chmod(shared.c_str(), 0644);
  const std::string empty = WriteKeyFile("empty.key", "\n");
  struct Case {
    std::vector<std::string> args;
    const char* message;
  } cases[] = {
      {{"--listen=127.0.0.1:0"}, "--auth_key_file=FILE is required"},
      {{"--listen=127.0.0.1:0", "--auth_key_file=" + shared}, "chmod 600"},
      {{"--listen=127.0.0.1:0", "--auth_key_file=" + empty}, "is empty"},
      {{"--listen=nonsense", "--auth_key_file=" + empty}, "bad address"},
      {{"--listen=127.0.0.1:0", "--frobnicate=1"}, "unknown flag --frobnicate"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {"procpool_worker"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    std::vector<char*> raw;
    for (std::string& a : argv) raw.push_back(&a[0]);
    absl::StatusOr<DaemonOptions> options =
        ParseDaemonFlags(static_cast<int>(raw.size()), raw.data());
    ASSERT_FALSE(options.ok()) << c.message;
    EXPECT_TRUE(absl::StrContains(options.status().message(), c.message))
        << options.status();
  }
}

TEST(DaemonFlagsTest, RecognizesTheDaemonCommandLine) {
  char arg0[] = "w", listen[] = "--listen=0.0.0.0:7000", other[] = "--x=1";
  char* with[] = {arg0, other, listen};
  char* without[] = {arg0, other};
  EXPECT_TRUE(IsDaemonCommandLine(3, with));
  EXPECT_FALSE(IsDaemonCommandLine(2, without));
}

}  // namespace
}  // namespace daemon_testing
}  // namespace procpool
