// Remote capnp channels over TCP on 127.0.0.1: frames both ways (also with
// TLS), authentication refused on both sides, and every way a connection
// fails, each reported by the parent's channel with the peer's address. The
// worker's end runs on a thread of this process, or in a forked child when
// the test stops or kills it. Every wait is bounded.
//
// testdata/localhost.{pem,key}: a self-signed certificate for "localhost"
// (P-256, valid until 2124), made for this test only with
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes
//     -days 36500 -subj /CN=localhost -addext subjectAltName=DNS:localhost
#include "transport/capnp/remote.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "gtest/gtest.h"
#include "common/auth/handshake.h"
#include "transport/transport.h"

namespace procpool {
namespace {

constexpr absl::Duration kTimeout = absl::Seconds(10);
constexpr char kKey[] = "correct horse battery staple";
constexpr char kCert[] = "transport/capnp/testdata/localhost.pem";
constexpr char kCertKey[] = "transport/capnp/testdata/localhost.key";

// A listening TCP socket on 127.0.0.1 and an ephemeral port.
struct Listener {
  int fd = -1;
  int port = 0;
  std::string address() const { return absl::StrCat("127.0.0.1:", port); }
  ~Listener() {
    if (fd >= 0) close(fd);
  }
};

std::unique_ptr<Listener> Listen() {
  auto l = std::make_unique<Listener>();
  l->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQ(bind(l->fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  CHECK_EQ(listen(l->fd, 8), 0);
  socklen_t len = sizeof(addr);
  getsockname(l->fd, reinterpret_cast<sockaddr*>(&addr), &len);
  l->port = ntohs(addr.sin_port);
  return l;
}

// Accepts one connection within kTimeout; -1 if none came.
int AcceptOne(int listen_fd) {
  struct pollfd p = {listen_fd, POLLIN, 0};
  if (poll(&p, 1, absl::ToInt64Milliseconds(kTimeout)) != 1) return -1;
  return accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
}

struct Pumped {
  std::vector<std::string> frames;
  absl::Status status;  // the channel's error, or kDeadlineExceeded
};

// Pumps `channel` until `want` frames arrived, it fails, or `timeout` passes.
Pumped PumpFor(Channel& channel, size_t want,
               absl::Duration timeout = kTimeout) {
  Pumped out;
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    out.status = channel.Pump(&out.frames);
    if (!out.status.ok() || out.frames.size() >= want) return out;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      out.status = absl::DeadlineExceededError("the test's bound passed");
      return out;
    }
    struct pollfd p = {channel.PollFd(), POLLIN, 0};
    poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
  }
}

// Pumps until the channel fails (with a frame count of "infinity").
absl::Status PumpUntilError(Channel& channel,
                            absl::Duration timeout = kTimeout) {
  absl::Status status = PumpFor(channel, ~size_t{0}, timeout).status;
  LOG(INFO) << "the channel's error: " << status;
  return status;
}

RemoteParentOptions WorkerSide(std::string key = kKey) {
  RemoteParentOptions o;
  o.key = std::move(key);
  o.peer_address = "test-parent";
  o.auth_timeout = kTimeout;
  return o;
}

RemoteWorkerOptions ParentSide(const Listener& l, std::string key = kKey) {
  RemoteWorkerOptions o;
  o.address = l.address();
  o.key = std::move(key);
  return o;
}

// The worker's end, accepted on a thread of this process.
class InProcessWorker {
 public:
  InProcessWorker(const Listener& l, RemoteParentOptions options)
      : thread_([this, &l, options] {
          const int fd = AcceptOne(l.fd);
          if (fd < 0) {
            result_ = absl::DeadlineExceededError("no connection");
          } else {
            result_ = AcceptRemoteParent(fd, options);
          }
        }) {}
  ~InProcessWorker() {
    if (thread_.joinable()) thread_.join();
  }

  // The accepted channel (or why not), once authentication ended: the thread
  // is joined (its waits are bounded), which also orders its writes before
  // our reads for ThreadSanitizer.
  absl::StatusOr<std::unique_ptr<Channel>>& Result() {
    if (thread_.joinable()) thread_.join();
    return result_;
  }

 private:
  absl::StatusOr<std::unique_ptr<Channel>> result_ =
      absl::UnknownError("not yet");
  std::thread thread_;
};

TEST(RemoteChannelTest, ExchangesFramesBothWays) {
  auto l = Listen();
  InProcessWorker worker(*l, WorkerSide());
  absl::StatusOr<std::unique_ptr<Channel>> parent =
      ConnectRemoteWorker(ParentSide(*l));
  ASSERT_TRUE(parent.ok()) << parent.status();
  // Queued before the connection is even made.
  ASSERT_TRUE((*parent)->Send("config").ok());
  ASSERT_TRUE((*parent)->Send(std::string(9 << 20, 'x')).ok());  // 3 chunks

  auto& w = worker.Result();
  ASSERT_TRUE(w.ok()) << w.status();
  // The worker's end receives on a thread while this one pumps the parent's
  // (a Send() that did not write everything leaves the rest to Pump()).
  absl::StatusOr<std::string> first, big;
  std::atomic<bool> received{false};
  std::thread receiver([&] {
    first = (*w)->ReceiveBlocking();
    if (first.ok()) big = (*w)->ReceiveBlocking();
    received = true;
  });
  const absl::Time deadline = absl::Now() + kTimeout;
  std::vector<std::string> early;
  while (!received && absl::Now() < deadline) {
    ASSERT_TRUE((*parent)->Pump(&early).ok());
    struct pollfd p = {(*parent)->PollFd(), POLLIN, 0};
    poll(&p, 1, 10);
  }
  receiver.join();
  EXPECT_TRUE(early.empty());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, "config");
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->size(), size_t{9} << 20);
  ASSERT_TRUE((*w)->SendBlocking("hello").ok());
  ASSERT_TRUE((*w)->SendBlocking("").ok());

  Pumped got = PumpFor(**parent, 2);
  ASSERT_TRUE(got.status.ok()) << got.status;
  ASSERT_EQ(got.frames.size(), 2u);
  EXPECT_EQ(got.frames[0], "hello");
  EXPECT_EQ(got.frames[1], "");
}

TEST(RemoteChannelTest, FrameSentJustBeforeTheWorkerClosesArrives) {
  auto l = Listen();
  InProcessWorker worker(*l, WorkerSide());
  absl::StatusOr<std::unique_ptr<Channel>> parent =
      ConnectRemoteWorker(ParentSide(*l));
  ASSERT_TRUE(parent.ok()) << parent.status();
  auto& w = worker.Result();
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->SendBlocking("last words").ok());
  w->reset();  // SendBlocking returned: the parent has the frame
  Pumped got = PumpFor(**parent, ~size_t{0});
  ASSERT_EQ(got.frames.size(), 1u);
  EXPECT_EQ(got.frames[0], "last words");
  EXPECT_TRUE(absl::IsUnavailable(got.status)) << got.status;
  EXPECT_TRUE(absl::StrContains(got.status.message(), l->address()))
      << got.status;
}

TEST(RemoteChannelTest, WrongKeyIsRefusedOnBothSides) {
  auto l = Listen();
  InProcessWorker worker(*l, WorkerSide("the daemon's key"));
  absl::StatusOr<std::unique_ptr<Channel>> parent =
      ConnectRemoteWorker(ParentSide(*l, "another key"));
  ASSERT_TRUE(parent.ok()) << parent.status();
  ASSERT_TRUE((*parent)->Send("must never arrive").ok());

  const absl::Status error = PumpUntilError(**parent);
  EXPECT_TRUE(absl::IsPermissionDenied(error)) << error;
  EXPECT_TRUE(absl::StrContains(
      error.message(), absl::StrCat("authentication with ", l->address(),
                                    " failed: the worker daemon rejected our "
                                    "key")))
      << error;
  EXPECT_TRUE(absl::StrContains(error.message(), "--auth_key_file")) << error;

  auto& w = worker.Result();
  ASSERT_FALSE(w.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(w.status())) << w.status();
  EXPECT_TRUE(absl::StrContains(w.status().message(),
                                "the parent at test-parent rejected our key"))
      << w.status();
}

TEST(RemoteChannelTest, MissingKeyIsRefusedAtOnce) {
  auto l = Listen();
  absl::StatusOr<std::unique_ptr<Channel>> parent =
      ConnectRemoteWorker(ParentSide(*l, ""));
  ASSERT_FALSE(parent.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(parent.status())) << parent.status();
  EXPECT_TRUE(absl::StrContains(parent.status().message(), l->address()))
      << parent.status();
  EXPECT_TRUE(absl::StrContains(parent.status().message(), "key is empty"))
      << parent.status();
}

// A parent that connects and says nothing (or is not procpool) is dropped by
// the worker's end after auth_timeout, and nothing runs.
TEST(RemoteChannelTest, SilentParentIsDroppedAfterTheAuthTimeout) {
  auto l = Listen();
  RemoteParentOptions options = WorkerSide();
  options.auth_timeout = absl::Milliseconds(300);
  InProcessWorker worker(*l, options);
  const int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(l->port);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
            0);
  auto& w = worker.Result();
  ASSERT_FALSE(w.ok());
  EXPECT_TRUE(absl::IsUnavailable(w.status())) << w.status();
  EXPECT_TRUE(absl::StrContains(w.status().message(),
                                "did not authenticate within"))
      << w.status();
  close(client);
}

TEST(RemoteChannelTest, NotAProcpoolDaemonIsRefused) {
  auto l = Listen();
  std::thread fake([&l] {
    const int fd = AcceptOne(l->fd);
    if (fd < 0) return;
    const std::string reply = "HTTP/1.1 400 Bad Request\r\n\r\nxxxxxxxxxxxxxx";
    (void)!write(fd, reply.data(), reply.size());
    char buffer[64];
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, 5000) == 1 && read(fd, buffer, sizeof(buffer)) > 0) {
    }
    close(fd);
  });
  absl::StatusOr<std::unique_ptr<Channel>> parent =
      ConnectRemoteWorker(ParentSide(*l));
  ASSERT_TRUE(parent.ok()) << parent.status();
  const absl::Status error = PumpUntilError(**parent);
  EXPECT_TRUE(absl::IsPermissionDenied(error)) << error;
  EXPECT_TRUE(absl::StrContains(error.message(), "did not start procpool's"))
      << error;
  EXPECT_FALSE(absl::StrContains(error.message(), "--auth_key_file")) << error;
  parent->reset();
  fake.join();
}

TEST(RemoteChannelTest, ConnectionRefusedNamesTheAddress) {
  int port;
  {
    auto l = Listen();
    port = l->port;
  }  // closed: nothing listens there now
  RemoteWorkerOptions options;
  options.address = absl::StrCat("127.0.0.1:", port);
  options.key = kKey;
  absl::StatusOr<std::unique_ptr<Channel>> parent =
      ConnectRemoteWorker(options);
  ASSERT_TRUE(parent.ok()) << parent.status();
  const absl::Status error = PumpUntilError(**parent);
  EXPECT_TRUE(absl::IsUnavailable(error)) << error;
  EXPECT_TRUE(absl::StrContains(
      error.message(),
      absl::StrCat("cannot connect to the worker daemon at ", options.address)))
      << error;
  EXPECT_TRUE(absl::StrContains(absl::AsciiStrToLower(error.message()),
                                "refused"))
      << error;
}

TEST(RemoteChannelTest, DaemonThatNeverAnswersTimesOut) {
  auto l = Listen();  // listens, but nobody accepts or speaks
  RemoteWorkerOptions options = ParentSide(*l);
  options.connect_timeout = absl::Milliseconds(300);
  absl::StatusOr<std::unique_ptr<Channel>> parent =
      ConnectRemoteWorker(options);
  ASSERT_TRUE(parent.ok()) << parent.status();
  const absl::Time start = absl::Now();
  const absl::Status error = PumpUntilError(**parent);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_TRUE(absl::IsUnavailable(error)) << error;
  EXPECT_TRUE(absl::StrContains(error.message(), "did not connect and "
                                                 "authenticate within 300ms"))
      << error;
  EXPECT_TRUE(absl::StrContains(error.message(), l->address())) << error;
}

TEST(RemoteChannelTest, DestroyingAChannelThatIsStillConnectingIsQuick) {
  auto l = Listen();  // never accepts
  absl::StatusOr<std::unique_ptr<Channel>> parent =
      ConnectRemoteWorker(ParentSide(*l));
  ASSERT_TRUE(parent.ok()) << parent.status();
  const absl::Time start = absl::Now();
  parent->reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST(RemoteChannelTest, WorkerEndLearnsThatTheParentWentAway) {
  auto l = Listen();
  std::atomic<bool> lost{false};
  RemoteParentOptions options = WorkerSide();
  options.on_connection_lost = [&lost](const absl::Status&) { lost = true; };
  InProcessWorker worker(*l, options);
  absl::StatusOr<std::unique_ptr<Channel>> parent =
      ConnectRemoteWorker(ParentSide(*l));
  ASSERT_TRUE(parent.ok()) << parent.status();
  auto& w = worker.Result();
  ASSERT_TRUE(w.ok()) << w.status();
  parent->reset();
  absl::StatusOr<std::string> frame = (*w)->ReceiveBlocking();
  EXPECT_TRUE(absl::IsUnavailable(frame.status())) << frame.status();
  const absl::Time deadline = absl::Now() + kTimeout;
  while (!lost && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_TRUE(lost);
}

// Writes all of `bytes` to the blocking socket `fd`.
bool WriteAll(int fd, absl::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads exactly `size` bytes from `fd` (within kTimeout per read).
std::string ReadExactly(int fd, size_t size) {
  std::string out(size, '\0');
  size_t have = 0;
  while (have < size) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, absl::ToInt64Milliseconds(kTimeout)) != 1) break;
    const ssize_t n = recv(fd, &out[have], size - have, 0);
    if (n <= 0) break;
    have += static_cast<size_t>(n);
  }
  out.resize(have);
  return out;
}

// A worker end written by hand: authenticates properly, reads the framed
// link's preamble, then sends `after` raw. Runs on a thread; the socket stays
// open until the object goes.
class HandWrittenWorker {
 public:
  HandWrittenWorker(const Listener& l, std::string after)
      : thread_([this, &l, after] {
          fd_ = AcceptOne(l.fd);
          if (fd_ < 0) return;
          absl::StatusOr<auth::Handshake> h = auth::Handshake::Start(
              auth::AuthRole::kWorker, kKey, "the parent");
          if (!h.ok() || !WriteAll(fd_, h->hello())) return;
          absl::StatusOr<std::string> proof =
              h->Prove(ReadExactly(fd_, auth::Handshake::kHelloSize));
          if (!proof.ok() || !WriteAll(fd_, *proof)) return;
          if (!WriteAll(fd_, h->Judge(ReadExactly(
                                 fd_, auth::Handshake::kProofSize)))) {
            return;
          }
          if (!h->Finish(ReadExactly(fd_, auth::Handshake::kVerdictSize))
                   .ok()) {
            return;
          }
          preamble_ = ReadExactly(fd_, 16);
          WriteAll(fd_, after);
        }) {}
  ~HandWrittenWorker() {
    Join();
    if (fd_ >= 0) close(fd_);
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  const std::string& preamble() const { return preamble_; }

 private:
  int fd_ = -1;
  std::string preamble_;
  std::thread thread_;
};

// Without TLS the link after authentication is framed (framed_remote.h): a
// frame whose trailer byte is neither "frame" nor "keepalive" is corruption,
// reported with the daemon's address after the good frame before it.
TEST(RemoteChannelTest, FramedLinkWithABadTrailerIsDataLoss) {
  auto l = Listen();
  std::string after;
  for (absl::string_view payload :
       {absl::string_view("good\0", 5), absl::string_view("bad\7", 4)}) {
    char header[16] = {'P', 'P', 'T', '1'};
    header[8] = static_cast<char>(payload.size());
    after.append(header, 16);
    after.append(payload.data(), payload.size());
  }
  HandWrittenWorker worker(*l, after);
  absl::StatusOr<std::unique_ptr<Channel>> parent =
      ConnectRemoteWorker(ParentSide(*l));
  ASSERT_TRUE(parent.ok()) << parent.status();
  Pumped got = PumpFor(**parent, ~size_t{0});
  worker.Join();
  EXPECT_EQ(worker.preamble().substr(0, 4), "PPL1");
  ASSERT_EQ(got.frames.size(), 1u);
  EXPECT_EQ(got.frames[0], "good");
  EXPECT_TRUE(absl::IsDataLoss(got.status)) << got.status;
  EXPECT_TRUE(absl::StrContains(got.status.message(), l->address()))
      << got.status;
}

TEST(RemoteChannelTest, TlsCarriesFrames) {
  auto l = Listen();
  RemoteParentOptions worker_options = WorkerSide();
  worker_options.use_tls = true;
  worker_options.tls_cert_file = kCert;
  worker_options.tls_key_file = kCertKey;
  InProcessWorker worker(*l, worker_options);
  RemoteWorkerOptions options = ParentSide(*l);
  options.use_tls = true;
  options.tls_ca_file = kCert;
  options.tls_server_name = "localhost";
  absl::StatusOr<std::unique_ptr<Channel>> parent =
      ConnectRemoteWorker(options);
  ASSERT_TRUE(parent.ok()) << parent.status();
  ASSERT_TRUE((*parent)->Send("over tls").ok());
  auto& w = worker.Result();
  ASSERT_TRUE(w.ok()) << w.status();
  absl::StatusOr<std::string> frame = (*w)->ReceiveBlocking();
  ASSERT_TRUE(frame.ok()) << frame.status();
  EXPECT_EQ(*frame, "over tls");
  ASSERT_TRUE((*w)->SendBlocking("back").ok());
  Pumped got = PumpFor(**parent, 1);
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(got.frames[0], "back");
}

TEST(RemoteChannelTest, TlsWithAnUntrustedCertificateFails) {
  auto l = Listen();
  RemoteParentOptions worker_options = WorkerSide();
  worker_options.use_tls = true;
  worker_options.tls_cert_file = kCert;
  worker_options.tls_key_file = kCertKey;
  InProcessWorker worker(*l, worker_options);
  RemoteWorkerOptions options = ParentSide(*l);
  options.use_tls = true;  // trusts the system's store only
  options.tls_server_name = "localhost";
  absl::StatusOr<std::unique_ptr<Channel>> parent =
      ConnectRemoteWorker(options);
  ASSERT_TRUE(parent.ok()) << parent.status();
  const absl::Status error = PumpUntilError(**parent);
  EXPECT_TRUE(absl::IsUnavailable(error)) << error;
  EXPECT_TRUE(absl::StrContains(
      error.message(), absl::StrCat("TLS with the worker daemon at ",
                                    l->address(), " failed")))
      << error;
  EXPECT_FALSE(worker.Result().ok());
}

TEST(ParseHostPortTest, AcceptsNamesAndAddresses) {
  absl::StatusOr<HostPort> a = ParseHostPort("10.0.0.2:7000");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "10.0.0.2");
  EXPECT_EQ(a->port, 7000);
  absl::StatusOr<HostPort> b = ParseHostPort("[::1]:0");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 0);
  EXPECT_EQ(ParseHostPort("worker-3.example:80")->host, "worker-3.example");
  for (const char* bad : {"", "host", ":80", "host:", "host:65536", "::1:80",
                          "[::1]80", "host:port"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(ParseHostPort(bad).status())) << bad;
  }
}

// --- A worker's end in a forked child, to stop or kill it. -----------------

// Forks a child that accepts one connection and echoes frames until its
// channel fails.
pid_t ForkEchoWorker(const Listener& l) {
  const pid_t pid = fork();
  CHECK_GE(pid, 0);
  if (pid == 0) {
    const int fd = AcceptOne(l.fd);
    if (fd < 0) _exit(3);
    absl::StatusOr<std::unique_ptr<Channel>> channel =
        AcceptRemoteParent(fd, WorkerSide());
    if (!channel.ok()) _exit(4);
    for (;;) {
      absl::StatusOr<std::string> frame = (*channel)->ReceiveBlocking();
      if (!frame.ok() || !(*channel)->SendBlocking(*frame).ok()) _exit(0);
    }
  }
  return pid;
}

void Reap(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

TEST(RemoteChannelFaultTest, KilledWorkerIsReportedWithItsAddress) {
  auto l = Listen();
  const pid_t pid = ForkEchoWorker(*l);
  absl::StatusOr<std::unique_ptr<Channel>> parent =
      ConnectRemoteWorker(ParentSide(*l));
  ASSERT_TRUE(parent.ok()) << parent.status();
  ASSERT_TRUE((*parent)->Send("ping").ok());
  Pumped echo = PumpFor(**parent, 1);
  ASSERT_TRUE(echo.status.ok()) << echo.status;
  kill(pid, SIGKILL);
  const absl::Time start = absl::Now();
  const absl::Status error = PumpUntilError(**parent);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_TRUE(absl::IsUnavailable(error)) << error;
  EXPECT_TRUE(absl::StrContains(error.message(), l->address())) << error;
  Reap(pid);
}

TEST(RemoteChannelFaultTest, StoppedWorkerIsCaughtByHeartbeats) {
  auto l = Listen();
  const pid_t pid = ForkEchoWorker(*l);
  RemoteWorkerOptions options = ParentSide(*l);
  options.heartbeat_interval = absl::Milliseconds(100);
  options.heartbeat_timeout = absl::Seconds(1);
  absl::StatusOr<std::unique_ptr<Channel>> parent =
      ConnectRemoteWorker(options);
  ASSERT_TRUE(parent.ok()) << parent.status();
  ASSERT_TRUE((*parent)->Send("ping").ok());
  ASSERT_TRUE(PumpFor(**parent, 1).status.ok());
  // Quiet for a while with heartbeats answered: no error.
  Pumped idle = PumpFor(**parent, 1, absl::Milliseconds(1500));
  EXPECT_TRUE(absl::IsDeadlineExceeded(idle.status)) << idle.status;

  kill(pid, SIGSTOP);
  const absl::Time start = absl::Now();
  const absl::Status error = PumpUntilError(**parent);
  const absl::Duration took = absl::Now() - start;
  EXPECT_TRUE(absl::IsUnavailable(error)) << error;
  EXPECT_TRUE(absl::StrContains(
      error.message(),
      absl::StrCat("no heartbeat from the worker daemon at ", l->address(),
                   " for 1s")))
      << error;
  // The bound: timeout * 9/8, and some slack for a loaded machine.
  EXPECT_LT(took, absl::Milliseconds(1125 + 750)) << took;
  EXPECT_GE(took, absl::Milliseconds(800)) << took;
  Reap(pid);
}

}  // namespace
}  // namespace procpool
