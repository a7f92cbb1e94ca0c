// Remote workers through the executor (issue 5): a worker daemon on
// 127.0.0.1 (the executor's test_worker binary with --listen), and a pool whose
// Options::remote_workers name it. The same tasks and futures as local
// workers; a dead or silent daemon and a wrong key end every future with
// BrokenProcessPool naming the host. (worker/daemon_netns_test.cc runs the
// daemon on a second network namespace.) Every wait is bounded.
#include <signal.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/auth/key_file.h"
#include "core/cluster.h"
#include "executor/process_pool_executor.h"
#include "executor/testdata/test_tasks.h"
#include "executor/testdata/test_worker.h"
#include "gtest/gtest.h"
#include "worker/testing/daemon_harness.h"

namespace procpool {
namespace {

namespace tt = test_tasks;
using testing::RemotePoolOptions;
using testing::TestWorkerBinary;
using daemon_testing::Daemon;
using daemon_testing::ParentOf;
using daemon_testing::StartDaemon;
using daemon_testing::WriteKeyFile;

constexpr absl::Duration kWait = absl::Seconds(20);

class RemotePoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    key_file_ = WriteKeyFile("remote_pool.key", "the shared secret");
    absl::StatusOr<std::unique_ptr<Daemon>> d = StartDaemon(
        {TestWorkerBinary(), "--listen=127.0.0.1:0",
         absl::StrCat("--auth_key_file=", key_file_)},
        "remote_pool_daemon");
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = *std::move(d);
  }

  Options RemoteOptions(int slots = 2) {
    Options o = RemotePoolOptions(daemon_->address, key_file_, slots);
    o.remote_heartbeat_timeout = absl::Seconds(1);
    return o;
  }

  std::string key_file_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(RemotePoolTest, TasksRunInTheDaemonsChildren) {
  ProcessPoolExecutor pool(RemoteOptions());
  std::vector<Future<int>> squares;
  for (int i = 0; i < 20; ++i) squares.push_back(pool.Submit(tt::Pow, i, 2));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(squares[i].Get(kWait), i * i);
  // Two slots: two workers, each a child of the daemon (not of this process).
  std::set<int> pids;
  std::vector<Future<int>> fs;
  for (int i = 0; i < 8; ++i) fs.push_back(pool.Submit(tt::SleepThenPid, 50));
  for (auto& f : fs) pids.insert(f.Get(kWait));
  EXPECT_EQ(pids.size(), 2u);
  for (int pid : pids) EXPECT_EQ(ParentOf(pid), daemon_->pid) << pid;
  EXPECT_TRUE(pool.WorkerPids().empty());  // none is a local process
  int sum = 0;
  for (int v : pool.Map(tt::Pow, std::vector<std::pair<int, int>>{
                                     {1, 1}, {2, 2}, {3, 3}})) {
    sum += v;
  }
  EXPECT_EQ(sum, 1 + 4 + 27);
  EXPECT_EQ(pool.Submit(tt::Echo, std::string(3 << 20, 'x')).Get(kWait).size(),
            size_t{3} << 20);
}

TEST_F(RemotePoolTest, ExceptionsComeBackAsForLocalWorkers) {
  ProcessPoolExecutor pool(RemoteOptions(1));
  Future<int> f = pool.Submit(tt::Throw, std::string("runtime_error"));
  EXPECT_THROW(f.Get(kWait), std::runtime_error);
  EXPECT_EQ(pool.Submit(tt::Pow, 3, 3).Get(kWait), 27);  // the pool goes on
}

TEST_F(RemotePoolTest, KillingTheDaemonBreaksThePoolNamingTheHost) {
  ProcessPoolExecutor pool(RemoteOptions(1));
  EXPECT_EQ(pool.Submit(tt::Pow, 2, 5).Get(kWait), 32);
  Future<int> running = pool.Submit(tt::SleepMs, 20000);
  absl::SleepFor(absl::Milliseconds(200));
  const absl::Time start = absl::Now();
  daemon_->SignalAndWait(SIGKILL, kWait);
  try {
    running.Get(kWait);
    FAIL() << "the future of a task on a killed daemon succeeded";
  } catch (const BrokenProcessPool& e) {
    EXPECT_TRUE(absl::StrContains(e.what(), daemon_->address)) << e.what();
    EXPECT_EQ(e.crash().host, daemon_->address);
  }
  // Within the heartbeat bound (1 s here), with room for a loaded machine.
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_THROW(pool.Submit(tt::Noop), BrokenProcessPool);
}

// A cluster's worker rank that dies is this: under kReplaceWorker the dead
// daemon's slot is lost for good and the pool goes on with the others; only
// when the last slot is lost does the pool break.
TEST_F(RemotePoolTest, ReplacingPoolGoesOnWithoutADeadDaemonsSlot) {
  absl::StatusOr<std::unique_ptr<Daemon>> second = StartDaemon(
      {TestWorkerBinary(), "--listen=127.0.0.1:0",
       absl::StrCat("--auth_key_file=", key_file_)},
      "remote_pool_daemon_2");
  ASSERT_TRUE(second.ok()) << second.status();
  Options o = RemoteOptions(1);
  o.remote_workers = {daemon_->address, (*second)->address};
  o.on_worker_death = WorkerDeathPolicy::kReplaceWorker;
  ProcessPoolExecutor pool(o);
  // Both slots hold a worker.
  std::set<int> parents;
  std::vector<Future<int>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(pool.Submit(tt::SleepThenPid, 100));
  for (auto& f : fs) parents.insert(ParentOf(f.Get(kWait)));
  ASSERT_EQ(parents.size(), 2u);

  Future<int> running = pool.Submit(tt::SleepMs, 20000);
  Future<int> other = pool.Submit(tt::SleepMs, 300);
  absl::SleepFor(absl::Milliseconds(200));
  daemon_->SignalAndWait(SIGKILL, kWait);
  // The killed daemon's task failed alone (which of the two it ran is the
  // pool's choice: one of the futures fails, the other succeeds).
  int died = 0;
  for (Future<int>* f : {&running, &other}) {
    try {
      f->Get(kWait);
    } catch (const WorkerDiedError& e) {
      ++died;
      EXPECT_TRUE(absl::StrContains(e.what(), daemon_->address)) << e.what();
    }
  }
  EXPECT_EQ(died, 1);
  // The pool goes on, every task now on the second daemon.
  std::vector<Future<int>> after;
  for (int i = 0; i < 6; ++i) after.push_back(pool.Submit(tt::SleepThenPid, 20));
  for (auto& f : after) {
    EXPECT_EQ(ParentOf(f.Get(kWait)), (*second)->pid);
  }
  // Losing the last slot breaks it: a task may first fail with its idle
  // worker (WorkerDiedError), then reconnecting finds no daemon.
  (*second)->SignalAndWait(SIGKILL, kWait);
  bool broken = false;
  for (int i = 0; i < 5 && !broken; ++i) {
    try {
      pool.Submit(tt::Pow, 2, 2).Get(kWait);
      ADD_FAILURE() << "a task ran with both daemons dead";
    } catch (const WorkerDiedError&) {
    } catch (const BrokenExecutor&) {
      broken = true;
    }
  }
  EXPECT_TRUE(broken);
}

// What rank 0 of a cluster job sees (cluster/mpi.h): its bootstrap recorded
// the slots and the key, and pools with empty Options use them; a pool that
// names a local transport does not; max_workers takes the first N slots.
TEST_F(RemotePoolTest, ClusterSlotsStandInForEmptyOptions) {
  absl::StatusOr<std::string> key = auth::ReadKeyFile(key_file_);
  ASSERT_TRUE(key.ok());
  internal::ClusterWorkers cluster;
  cluster.addresses = {daemon_->address, daemon_->address, daemon_->address};
  cluster.labels = {daemon_->address + " (rank 1 on a)",
                    daemon_->address + " (rank 2 on b)",
                    daemon_->address + " (rank 1 on a)"};
  cluster.key = *key;
  cluster.launcher = "mpirun";
  internal::SetClusterWorkers(cluster);
  struct Reset {
    ~Reset() { internal::SetClusterWorkers({}); }
  } reset;
  {
    ProcessPoolExecutor pool;  // empty Options: the cluster's 3 slots
    std::vector<Future<int>> fs;
    for (int i = 0; i < 9; ++i) fs.push_back(pool.Submit(tt::SleepThenPid, 50));
    std::set<int> pids;
    for (auto& f : fs) pids.insert(f.Get(kWait));
    EXPECT_EQ(pids.size(), 3u);
    for (int pid : pids) EXPECT_EQ(ParentOf(pid), daemon_->pid);
    EXPECT_TRUE(pool.WorkerPids().empty());
    // A crash names the slot by its label.
    Future<int> crash = pool.Submit(tt::DieBy, std::string("SIGKILL"));
    try {
      crash.Get(kWait);
      ADD_FAILURE() << "a killed worker's future succeeded";
    } catch (const BrokenProcessPool& e) {
      EXPECT_TRUE(absl::StrContains(e.what(), "(rank ")) << e.what();
    }
  }
  {
    Options o;
    o.max_workers = 1;
    ProcessPoolExecutor pool(o);
    std::set<int> pids;
    for (int i = 0; i < 4; ++i) pids.insert(pool.Submit(tt::GetPid).Get(kWait));
    EXPECT_EQ(pids.size(), 1u);
    EXPECT_EQ(ParentOf(*pids.begin()), daemon_->pid);
  }
  {
    Options o;
    o.transport = "unix";  // local workers, as asked
    o.max_workers = 1;
    ProcessPoolExecutor pool(o);
    const int pid = pool.Submit(tt::GetPid).Get(kWait);
    EXPECT_NE(ParentOf(pid), daemon_->pid);
    EXPECT_EQ(pool.WorkerPids(), std::vector<pid_t>{pid});  // a local worker
  }
  Options too_many;
  too_many.max_workers = 4;
  try {
    ProcessPoolExecutor pool(too_many);
    ADD_FAILURE() << "4 workers from 3 slots were accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(absl::StrContains(e.what(), "3 worker slot(s) mpirun"))
        << e.what();
  }
}

TEST_F(RemotePoolTest, AStoppedWorkerIsCaughtByHeartbeats) {
  ProcessPoolExecutor pool(RemoteOptions(1));
  const int pid = pool.Submit(tt::GetPid).Get(kWait);
  Future<int> running = pool.Submit(tt::SleepMs, 20000);
  absl::SleepFor(absl::Milliseconds(200));
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  const absl::Time start = absl::Now();
  EXPECT_THROW(running.Get(kWait), BrokenProcessPool);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  kill(pid, SIGKILL);
  kill(pid, SIGCONT);
}

TEST_F(RemotePoolTest, AWrongKeyIsRefused) {
  Options o = RemoteOptions(1);
  o.auth_key_file = WriteKeyFile("wrong.key", "not the shared secret");
  ProcessPoolExecutor pool(o);
  try {
    pool.Submit(tt::Pow, 2, 2).Get(kWait);
    FAIL() << "a pool with the wrong key ran a task";
  } catch (const BrokenProcessPool& e) {
    EXPECT_TRUE(absl::StrContains(e.what(), "rejected our key")) << e.what();
    EXPECT_TRUE(absl::StrContains(e.what(), daemon_->address)) << e.what();
  }
}

TEST_F(RemotePoolTest, NoDaemonAtTheAddressBreaksThePool) {
  Options o;
  o.remote_workers = {"127.0.0.1:1"};  // nothing listens on port 1
  o.auth_key_file = key_file_;
  ProcessPoolExecutor pool(o);
  try {
    pool.Submit(tt::Noop).Get(kWait);
    FAIL() << "a task ran without a daemon";
  } catch (const BrokenProcessPool& e) {
    EXPECT_TRUE(absl::StrContains(e.what(), "127.0.0.1:1")) << e.what();
  }
}

TEST_F(RemotePoolTest, BadOptionsAreRefusedAtConstruction) {
  Options no_key;
  no_key.remote_workers = {daemon_->address};
  EXPECT_THROW(ProcessPoolExecutor{no_key}, std::invalid_argument);
  Options bad_address = RemoteOptions(1);
  bad_address.remote_workers = {"no-port-here"};
  EXPECT_THROW(ProcessPoolExecutor{bad_address}, std::invalid_argument);
  Options other_transport = RemoteOptions(1);
  other_transport.transport = "shm";
  EXPECT_THROW(ProcessPoolExecutor{other_transport}, std::invalid_argument);
  Options wrong_count = RemoteOptions(2);
  wrong_count.max_workers = 3;
  EXPECT_THROW(ProcessPoolExecutor{wrong_count}, std::invalid_argument);
}

// The daemon with --tls_cert_file/--tls_key_file and a pool with remote_tls:
// tasks run over TLS (the certificate names "localhost", so the pool names
// the daemon so too); a pool without TLS is refused, saying where.
TEST(RemoteTlsPoolTest, TasksRunOverTlsAndAPlainPoolIsRefused) {
  const std::string testdata =
      absl::StrCat(getenv("TEST_SRCDIR"), "/procpool/transport/capnp/testdata/");
  const std::string key_file = WriteKeyFile("remote_tls.key", "a TLS secret");
  absl::StatusOr<std::unique_ptr<Daemon>> d = StartDaemon(
      {TestWorkerBinary(), "--listen=127.0.0.1:0",
       absl::StrCat("--auth_key_file=", key_file),
       absl::StrCat("--tls_cert_file=", testdata, "localhost.pem"),
       absl::StrCat("--tls_key_file=", testdata, "localhost.key")},
      "remote_tls_daemon");
  ASSERT_TRUE(d.ok()) << d.status();
  const std::string port =
      (*d)->address.substr((*d)->address.rfind(':') + 1);
  const std::string address = absl::StrCat("localhost:", port);
  {
    Options o = RemotePoolOptions(address, key_file, 1);
    o.remote_tls = true;
    o.remote_tls_ca_file = testdata + "localhost.pem";
    ProcessPoolExecutor pool(o);
    EXPECT_EQ(pool.Submit(tt::Pow, 3, 4).Get(kWait), 81);
    EXPECT_EQ(pool.Submit(tt::Echo, std::string(1 << 20, 't')).Get(kWait),
              std::string(1 << 20, 't'));
  }
  {
    Options o = RemotePoolOptions(address, key_file, 1);
    o.remote_connect_timeout = absl::Seconds(5);
    ProcessPoolExecutor pool(o);
    try {
      pool.Submit(tt::Pow, 2, 2).Get(kWait);
      FAIL() << "a pool without TLS ran a task on a TLS daemon";
    } catch (const BrokenProcessPool& e) {
      EXPECT_TRUE(absl::StrContains(e.what(), address)) << e.what();
      EXPECT_TRUE(absl::StrContains(e.what(), "TLS")) << e.what();
    }
  }
}

}  // namespace
}  // namespace procpool
