// Remote workers through the executor (issue 5): a worker daemon on
// 127.0.0.1 (the executor's test_worker binary with --listen), and a pool whose
// Options::remote_workers name it. The same tasks and futures as local
// workers; a dead or silent daemon and a wrong key end every future with
// BrokenProcessPool naming the host. (worker/daemon_netns_test.cc runs the
// daemon on a second network namespace.) Every wait is bounded.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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

// The same shared-array code as with local workers: arrays go by value, and
// what the tasks write into an output array comes back before the futures
// are done.
TEST_F(RemotePoolTest, SharedArraysAndOutputArraysWorkRemotely) {
  ProcessPoolExecutor pool(RemoteOptions());
  SharedArray<double> xs(1000);
  for (size_t j = 0; j < xs.size(); ++j) xs[j] = 1.5;
  EXPECT_EQ(pool.Submit(tt::SumArray, xs).Get(kWait), 1500.0);
  SharedArray<double> out(4099, SharedArrayMode::kOutput);
  std::vector<Future<int64_t>> parts;
  for (int64_t p = 0; p < 5; ++p) {
    parts.push_back(pool.Submit(tt::SquaresInto, out, p, int64_t{5}));
  }
  int64_t written = 0;
  for (auto& f : parts) written += f.Get(kWait);
  EXPECT_EQ(written, 4099);
  for (size_t j = 0; j < out.size(); ++j) {
    ASSERT_EQ(out[j], static_cast<double>(j) * j) << j;
  }
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

// kReplaceWorker with max_retries at 127.0.0.1 (remote_netns_test covers the
// same across two hosts, as root): a task whose remote worker dies is run
// again on a fresh worker of the same daemon and succeeds; retries are
// bounded.
TEST_F(RemotePoolTest, ATaskWhoseRemoteWorkerDiedIsRunAgain) {
  const char* tmp = getenv("TEST_TMPDIR");
  const std::string dir = tmp != nullptr ? tmp : "/tmp";
  Options o = RemoteOptions(1);
  o.on_worker_death = WorkerDeathPolicy::kReplaceWorker;
  o.max_retries = 1;
  ProcessPoolExecutor pool(o);
  // The worker's first task dies (a death after its Hello, not a failed
  // start): DieOnceThenReturn SIGKILLs its worker when the marker is absent
  // (creating it) and returns 7 when it is there.
  const std::string first_marker = dir + "/remote_die_first";
  unlink(first_marker.c_str());
  EXPECT_EQ(pool.Submit(tt::DieOnceThenReturn, first_marker).Get(kWait), 7);
  EXPECT_EQ(access(first_marker.c_str(), F_OK), 0) << "the first run never ran";
  // A worker that has run tasks dies in one: the task runs again elsewhere.
  const int before = pool.Submit(tt::GetPid).Get(kWait);
  EXPECT_EQ(ParentOf(before), daemon_->pid);
  const std::string marker = dir + "/remote_die_once";
  unlink(marker.c_str());
  EXPECT_EQ(pool.Submit(tt::DieOnceThenReturn, marker).Get(kWait), 7);
  EXPECT_EQ(access(marker.c_str(), F_OK), 0) << "the first run never ran";
  const int after = pool.Submit(tt::GetPid).Get(kWait);
  EXPECT_NE(after, before) << "the worker that ran the dying task lives on";
  EXPECT_EQ(ParentOf(after), daemon_->pid);
  // One retry, no more: a task that always dies fails with the crash report.
  try {
    pool.Submit(tt::DieBy, std::string("SIGKILL")).Get(kWait);
    ADD_FAILURE() << "a task that kills its worker succeeded";
  } catch (const WorkerDiedError& e) {
    // (The daemon's child died: this side sees the connection end, not the
    // signal, which stays on the worker's host.)
    EXPECT_EQ(e.crash().host, daemon_->address) << e.what();
    EXPECT_TRUE(absl::StrContains(e.what(), "tt::DieBy")) << e.what();
  }
  EXPECT_EQ(pool.Submit(tt::Pow, 2, 3).Get(kWait), 8);  // and goes on
}

// The key file is checked at the constructor: missing, or readable by group
// or others, it is refused with std::invalid_argument naming the file and
// the problem (common/auth/key_file.h).
TEST_F(RemotePoolTest, AMissingOrLooseKeyFileIsRefusedAtConstruction) {
  Options missing = RemoteOptions(1);
  missing.auth_key_file = key_file_ + ".absent";
  try {
    ProcessPoolExecutor pool(missing);
    ADD_FAILURE() << "a pool was made with a missing key file";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(absl::StrContains(e.what(), "cannot open the key file"))
        << e.what();
    EXPECT_TRUE(absl::StrContains(e.what(), missing.auth_key_file)) << e.what();
    EXPECT_TRUE(absl::StrContains(e.what(), "No such file")) << e.what();
  }
  for (mode_t mode : {0640, 0604, 0660}) {
    SCOPED_TRACE(absl::StrFormat("mode %04o", mode));
    Options loose = RemoteOptions(1);
    loose.auth_key_file = WriteKeyFile("loose.key", "the shared secret");
    ASSERT_EQ(chmod(loose.auth_key_file.c_str(), mode), 0);
    try {
      ProcessPoolExecutor pool(loose);
      ADD_FAILURE() << "a pool was made with a loose key file";
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(absl::StrContains(e.what(), "accessible by group or others"))
          << e.what();
      EXPECT_TRUE(absl::StrContains(e.what(), loose.auth_key_file)) << e.what();
      EXPECT_TRUE(absl::StrContains(e.what(), "chmod 600")) << e.what();
    }
  }
  // The same file, made private, is accepted (the key is the daemon's).
  Options fixed = RemoteOptions(1);
  fixed.auth_key_file = WriteKeyFile("loose.key", "the shared secret");
  ASSERT_EQ(chmod(fixed.auth_key_file.c_str(), 0600), 0);
  ProcessPoolExecutor pool(fixed);
  EXPECT_EQ(pool.Submit(tt::Pow, 2, 2).Get(kWait), 4);
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

// A remote worker still connecting when the pool shuts down (a daemon that
// accepts but never answers, as a host that went away would leave it until
// remote_connect_timeout) is dropped at once: nothing runs there yet. (It
// used to wait out the 5 s exit grace of a worker told to shut down.)
TEST_F(RemotePoolTest, ShutdownDoesNotWaitForAWorkerStillConnecting) {
  // A listening socket that nobody accepts on: connect() completes in the
  // backlog, and the handshake never gets an answer.
  const int silent = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(silent, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(silent, 8), 0);
  socklen_t len = sizeof(addr);
  getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len);
  Options o;
  o.remote_workers = {absl::StrCat("127.0.0.1:", ntohs(addr.sin_port))};
  o.auth_key_file = key_file_;
  o.remote_connect_timeout = absl::Seconds(60);
  Future<int> f;
  absl::Time start;
  {
    ProcessPoolExecutor pool(o);
    f = pool.Submit(tt::Pow, 2, 3);
    absl::SleepFor(absl::Milliseconds(200));  // connecting, not answered
    EXPECT_FALSE(f.Done());
    start = absl::Now();
    pool.Shutdown(/*wait=*/true, /*cancel_futures=*/true);
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_TRUE(f.Done());
  close(silent);
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

// A daemon whose certificate names another host: the pool reaches it as
// 127.0.0.1, the certificate is for "localhost" (and trusted), so the TLS
// handshake fails and every future does too, naming the address and the
// certificate; nothing runs.
TEST(RemoteTlsPoolTest, ACertificateForAnotherHostNameIsRefused) {
  const std::string testdata =
      absl::StrCat(getenv("TEST_SRCDIR"), "/procpool/transport/capnp/testdata/");
  const std::string key_file =
      WriteKeyFile("remote_tls_host.key", "a TLS secret");
  absl::StatusOr<std::unique_ptr<Daemon>> d = StartDaemon(
      {TestWorkerBinary(), "--listen=127.0.0.1:0",
       absl::StrCat("--auth_key_file=", key_file),
       absl::StrCat("--tls_cert_file=", testdata, "localhost.pem"),
       absl::StrCat("--tls_key_file=", testdata, "localhost.key")},
      "remote_tls_host_daemon");
  ASSERT_TRUE(d.ok()) << d.status();
  Options o = RemotePoolOptions((*d)->address, key_file, 1);  // 127.0.0.1:PORT
  o.remote_tls = true;
  o.remote_tls_ca_file = testdata + "localhost.pem";
  o.remote_connect_timeout = absl::Seconds(10);
  ProcessPoolExecutor pool(o);
  try {
    pool.Submit(tt::Pow, 2, 2).Get(kWait);
    FAIL() << "a task ran on a daemon whose certificate names another host";
  } catch (const BrokenProcessPool& e) {
    EXPECT_TRUE(absl::StrContains(e.what(), (*d)->address)) << e.what();
    EXPECT_TRUE(absl::StrContains(e.what(), "TLS")) << e.what();
    EXPECT_TRUE(absl::StrContains(absl::AsciiStrToLower(e.what()),
                                  "certificate"))
        << e.what();
  }
}

}  // namespace
}  // namespace procpool
