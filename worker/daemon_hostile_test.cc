// The worker daemon facing hostile peers on 127.0.0.1 (issue 16 point 5):
//  * a flood of connections that never speak, or trickle a byte at a time,
//    is bounded by --max_unauthenticated (the oldest pending one is evicted)
//    while good parents go on being served, and the daemon's children stay
//    bounded; --auth_timeout still ends silent peers below the bound;
//  * refusals are logged once per cause per --refusal_log_interval (the first
//    in full, then "N more refused for <cause> ..."), not once per peer;
//  * after authenticating, frames that name unregistered tasks, arguments
//    that declare huge sizes and frames whose Cap'n Proto header declares a
//    huge segment are answered with an error or refused, ending at most that
//    connection: the daemon and the other connections live on.
// Every wait is bounded.
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"
#include "serialization/task_value.h"
#include "worker/testing/daemon_harness.h"

namespace procpool {
namespace daemon_testing {
namespace {

constexpr char kKey[] = "the hostile test's shared secret";

// A TCP connection to `address` ("127.0.0.1:PORT") that has said nothing;
// invalid on failure.
UniqueFd ConnectRaw(const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return UniqueFd();
  }
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in to = {};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &to.sin_addr);
  if (!fd.valid() ||
      connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
    return UniqueFd();
  }
  return fd;
}

// True once the other end closed `fd` (EOF or reset), reading and dropping
// what it sent meanwhile; waits up to `timeout`.
bool ClosedByPeer(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    char buffer[256];
    const ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
    if (n > 0) continue;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    struct pollfd p = {fd, POLLIN, 0};
    poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
  }
}

// True if `pid` has a SIGKILL pending: killed, and on its way out.
bool BeingKilled(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (!absl::StartsWith(line, "ShdPnd:") &&
        !absl::StartsWith(line, "SigPnd:")) {
      continue;
    }
    uint64_t pending = 0;
    const std::string hex(absl::StripAsciiWhitespace(line.substr(7)));
    if (absl::SimpleHexAtoi(hex, &pending) && (pending >> (SIGKILL - 1)) & 1) {
      return true;
    }
  }
  return false;
}

// The children of `parent` that are alive (not zombies, not being killed).
int LiveChildren(pid_t parent) {
  int count = 0;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return -1;
  while (dirent* e = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid)) continue;
    if (ParentOf(pid) == parent && IsAlive(pid) && !BeingKilled(pid)) ++count;
  }
  closedir(proc);
  return count;
}

// The lines of `log` that contain `needle`.
std::vector<std::string> Lines(const std::string& log,
                               absl::string_view needle) {
  std::vector<std::string> found;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (absl::StrContains(line, needle)) found.emplace_back(line);
  }
  return found;
}

// Waits up to `timeout` for a line of the daemon's log with `needle`.
bool AwaitLogLine(const Daemon& daemon, absl::string_view needle,
                  absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (!Lines(daemon.Log(), needle).empty()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

// The sum of N over the log's "N more refused for <cause>" lines.
int MoreRefused(const std::string& log, absl::string_view cause) {
  int total = 0;
  for (const std::string& line :
       Lines(log, absl::StrCat(" more refused for ", cause, " "))) {
    const size_t at = line.find(" more refused for ");
    const size_t start = line.rfind(' ', at - 1);
    int n = 0;
    if (absl::SimpleAtoi(line.substr(start + 1, at - start - 1), &n)) {
      total += n;
    }
  }
  return total;
}

class HostileTest : public ::testing::Test {
 protected:
  // Starts the daemon with `flags` besides --listen and --auth_key_file.
  void Start(const std::vector<std::string>& flags) {
    const std::string key_file =
        WriteKeyFile("hostile_test.key", absl::StrCat(kKey, "\n"));
    std::vector<std::string> argv = {
        WorkerBinary(), "--listen=127.0.0.1:0",
        absl::StrCat("--auth_key_file=", key_file)};
    argv.insert(argv.end(), flags.begin(), flags.end());
    absl::StatusOr<std::unique_ptr<Daemon>> d =
        StartDaemon(argv, "hostile_test.log");
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = *std::move(d);
  }

  RemoteWorkerOptions Options(std::string key = kKey) {
    RemoteWorkerOptions o;
    o.address = daemon_->address;
    o.key = std::move(key);
    return o;
  }

  // A good parent: connects, authenticates, runs DaemonTestAdd(2, 40).
  void ExpectServed(std::vector<std::unique_ptr<RemoteSession>>* keep) {
    const absl::Time start = absl::Now();
    absl::StatusOr<std::unique_ptr<RemoteSession>> s =
        RemoteSession::Open(Options());
    ASSERT_TRUE(s.ok()) << s.status() << "\n" << daemon_->Log();
    ASSERT_TRUE((*s)->Call(1, "DaemonTestAdd", int64_t{2}, int64_t{40}).ok());
    absl::StatusOr<wire::Result> r = (*s)->AwaitResult();
    ASSERT_TRUE(r.ok()) << r.status() << "\n" << daemon_->Log();
    EXPECT_EQ(*Value<int64_t>(*r), 42);
    const absl::Duration took = absl::Now() - start;
    slowest_good_ = std::max(slowest_good_, took);
    if (keep != nullptr) keep->push_back(*std::move(s));
  }

  std::unique_ptr<Daemon> daemon_;
  absl::Duration slowest_good_ = absl::ZeroDuration();
};

// A flood of silent and trickling connections against --max_unauthenticated
// = 16 and an --auth_timeout (60 s) longer than the test: only the bound can
// end them. Good parents are served meanwhile, and the daemon never has more
// than the bound + the good parents' workers (+ a few killed ones still
// exiting) children.
TEST_F(HostileTest, FloodIsBoundedWhileGoodParentsAreServed) {
  constexpr int kBound = 16;
  constexpr int kSilent = 200;
  constexpr int kSlow = 10;
  constexpr int kGood = 5;
  Start({absl::StrCat("--max_unauthenticated=", kBound), "--auth_timeout=60s",
         "--refusal_log_interval=60s"});

  std::atomic<bool> stop{false};
  std::atomic<int> most_children{0};
  std::thread sampler([&] {
    while (!stop.load()) {
      const int n = LiveChildren(daemon_->pid);
      if (n > most_children.load()) most_children.store(n);
      absl::SleepFor(absl::Milliseconds(2));
    }
  });

  // Slow peers: the start of a Hello, one byte every 100 ms.
  std::vector<UniqueFd> slow;
  for (int i = 0; i < kSlow; ++i) {
    slow.push_back(ConnectRaw(daemon_->address));
    ASSERT_TRUE(slow.back().valid()) << strerror(errno);
  }
  std::thread trickle([&] {
    for (int step = 0; !stop.load(); ++step) {
      for (UniqueFd& fd : slow) {
        const char byte = "PPAUTH01"[step % 8];
        send(fd.get(), &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
  });

  std::vector<UniqueFd> silent;
  for (int i = 0; i < kSilent; ++i) {
    silent.push_back(ConnectRaw(daemon_->address));
    ASSERT_TRUE(silent.back().valid()) << i << ": " << strerror(errno);
  }
  // The daemon works through the burst (all but the newest kBound evicted)
  // before the good parents come, so that they do not wait in the listen
  // backlog behind it (measured from the parent, that wait would be counted
  // as their handshake; it took 1 s under ASan).
  {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    int burst_closed = 0;
    while (absl::Now() < deadline) {
      burst_closed = 0;
      for (const UniqueFd& fd : slow) {
        burst_closed += ClosedByPeer(fd.get(), absl::ZeroDuration());
      }
      for (const UniqueFd& fd : silent) {
        burst_closed += ClosedByPeer(fd.get(), absl::ZeroDuration());
      }
      if (burst_closed >= kSlow + kSilent - kBound) break;
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_GE(burst_closed, kSlow + kSilent - kBound) << daemon_->Log();
  }
  // The flood goes on while good parents connect: a new silent connection
  // every 100 ms, so that a pending connection is evicted 16 * 100 ms after
  // it was accepted (a good parent needs 80 ms here, up to 600 ms with five
  // of these tests at once on 2 cores).
  std::vector<UniqueFd> during;
  std::thread flood([&] {
    while (!stop.load() && during.size() < 500) {
      during.push_back(ConnectRaw(daemon_->address));
      absl::SleepFor(absl::Milliseconds(100));
    }
  });

  std::vector<std::unique_ptr<RemoteSession>> good;
  for (int i = 0; i < kGood; ++i) {
    ExpectServed(&good);
    if (HasFatalFailure()) break;
  }
  stop.store(true);
  flood.join();
  trickle.join();
  sampler.join();
  ASSERT_EQ(good.size(), static_cast<size_t>(kGood));

  // The daemon closed all but the newest kBound of the flood's connections
  // (and one it may not have accepted yet), long before --auth_timeout. (Up
  // to 3 s in all for the last ones killed to be gone.)
  int closed = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(3);
  auto closed_by_daemon = [&](const UniqueFd& fd) {
    return fd.valid() &&
           ClosedByPeer(fd.get(),
                        std::max(absl::ZeroDuration(), deadline - absl::Now()));
  };
  for (const UniqueFd& fd : slow) closed += closed_by_daemon(fd);
  for (const UniqueFd& fd : silent) closed += closed_by_daemon(fd);
  for (const UniqueFd& fd : during) closed += closed_by_daemon(fd);
  const int opened = kSlow + kSilent + static_cast<int>(during.size());
  EXPECT_GE(closed, opened - kBound - 1) << daemon_->Log();

  // Children: at most the bound and the good parents' workers, not counting
  // those already sent SIGKILL (without the bound: every flood connection).
  std::cerr << "hostile: " << opened << " flood connections, " << closed
            << " closed by the daemon, at most " << most_children.load()
            << " live children (bound " << kBound << " + " << kGood
            << " good), slowest good parent "
            << absl::FormatDuration(slowest_good_) << "\n";
  EXPECT_LE(most_children.load(), kBound + kGood);
  EXPECT_GE(most_children.load(), kBound) << "the flood never filled the bound";

  // The good parents still work, and the evictions were logged once.
  for (auto& s : good) {
    ASSERT_TRUE(s->Call(2, "DaemonTestAdd", int64_t{1}, int64_t{1}).ok());
    absl::StatusOr<wire::Result> r = s->AwaitResult();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*Value<int64_t>(*r), 2);
  }
  const std::string log = daemon_->Log();
  EXPECT_EQ(Lines(log, "when a newer connection needed its place").size(), 1u)
      << log;
  EXPECT_LE(Lines(log, "refused the connection from").size(), 2u) << log;
}

// Below the bound, --auth_timeout (1 s) ends silent peers, no sooner; the
// five refusals are logged as one line and one count.
TEST_F(HostileTest, AuthTimeoutStillEndsSilentPeers) {
  Start({"--auth_timeout=1s", "--refusal_log_interval=3s"});
  std::vector<UniqueFd> silent;
  const absl::Time start = absl::Now();
  for (int i = 0; i < 5; ++i) {
    silent.push_back(ConnectRaw(daemon_->address));
    ASSERT_TRUE(silent.back().valid());
  }
  for (const UniqueFd& fd : silent) {
    EXPECT_TRUE(ClosedByPeer(fd.get(), absl::Seconds(10))) << daemon_->Log();
  }
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Milliseconds(900));
  EXPECT_TRUE(AwaitLogLine(*daemon_, "4 more refused for no authentication",
                           absl::Seconds(10)))
      << daemon_->Log();
  const std::string log = daemon_->Log();
  const std::vector<std::string> full =
      Lines(log, "refused the connection from 127.0.0.1:");
  ASSERT_EQ(full.size(), 1u) << log;
  EXPECT_TRUE(absl::StrContains(full[0], "did not authenticate within 1s"))
      << full[0];
}

// 100 bad peers (50 not procpool, 50 with a wrong key): two full lines, one
// per cause, and one count per cause; the daemon's log does not grow by a
// line per peer.
TEST_F(HostileTest, FloodOfBadPeersIsLoggedOncePerCause) {
  constexpr int kEach = 50;
  Start({"--refusal_log_interval=8s", "--max_unauthenticated=1000"});
  ExpectServed(nullptr);  // a worker has started: its lines are logged
  const size_t lines_before = Lines(daemon_->Log(), "").size();
  const absl::Time start = absl::Now();
  for (int batch = 0; batch < kEach / 10; ++batch) {
    std::vector<UniqueFd> peers;
    for (int i = 0; i < 10; ++i) {
      peers.push_back(ConnectRaw(daemon_->address));
      ASSERT_TRUE(peers.back().valid());
      const std::string http =
          "GET / HTTP/1.1\r\nHost: procpool\r\nUser-Agent: hostile\r\n\r\n";
      ASSERT_EQ(
          send(peers.back().get(), http.data(), http.size(), MSG_NOSIGNAL),
          static_cast<ssize_t>(http.size()));
    }
    for (int i = 0; i < 10; ++i) {
      absl::StatusOr<std::unique_ptr<RemoteSession>> s =
          RemoteSession::Open(Options("not the key"), /*handshake=*/false);
      ASSERT_TRUE(s.ok()) << s.status();
      const absl::Status error = (*s)->AwaitError();
      EXPECT_TRUE(absl::IsPermissionDenied(error)) << error;
    }
    for (const UniqueFd& fd : peers) {
      EXPECT_TRUE(ClosedByPeer(fd.get(), kTimeout)) << daemon_->Log();
    }
  }
  const absl::Duration flood_took = absl::Now() - start;
  ASSERT_LT(flood_took, absl::Seconds(8))
      << "the flood outlasted one --refusal_log_interval; its counts split";
  ASSERT_TRUE(
      AwaitLogLine(*daemon_, "more refused for wrong key", absl::Seconds(15)));
  ASSERT_TRUE(AwaitLogLine(*daemon_, "more refused for not a procpool peer",
                           absl::Seconds(15)));
  const std::string log = daemon_->Log();
  const std::vector<std::string> full =
      Lines(log, "refused the connection from 127.0.0.1:");
  ASSERT_EQ(full.size(), 2u) << log;
  EXPECT_EQ(Lines(log, "did not start procpool's authentication").size(), 1u)
      << log;
  EXPECT_EQ(Lines(log, "rejected our key").size(), 1u) << log;
  EXPECT_EQ(MoreRefused(log, "not a procpool peer"), kEach - 1) << log;
  EXPECT_EQ(MoreRefused(log, "wrong key"), kEach - 1) << log;
  const size_t added = Lines(log, "").size() - lines_before;
  std::cerr << "hostile: " << 2 * kEach << " bad peers in "
            << absl::FormatDuration(flood_took) << " added " << added
            << " lines to the daemon's log\n";
  EXPECT_LE(added, 6u) << log;
}

// After authentication: an unregistered task gets an error outcome; an
// argument declaring 2^62 bytes and a frame whose header declares a 4 GiB
// segment are refused (a Fatal frame, and that worker exits); the daemon,
// another parent and a new parent carry on.
TEST_F(HostileTest, HostileFramesAfterAuthenticationEndOnlyTheirConnection) {
  Start({});
  std::vector<std::unique_ptr<RemoteSession>> good;
  ExpectServed(&good);

  absl::StatusOr<std::unique_ptr<RemoteSession>> s =
      RemoteSession::Open(Options());
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE((*s)->Call(1, "NoSuchTask", int64_t{1}).ok());
  absl::StatusOr<wire::Result> r = (*s)->AwaitResult();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_FALSE(r->outcomes[0].ok);
  EXPECT_TRUE(
      absl::StrContains(r->outcomes[0].exception.message, "is not registered"))
      << r->outcomes[0].exception.message;

  // DaemonTestLength(std::vector<int64_t>) with the vector's length (a varint
  // before its elements) raised to 2^62.
  const std::string args =
      EncodeTaskArgs(std::make_tuple(std::vector<int64_t>{7, 7, 7}));
  const size_t at = args.find('\x03');
  ASSERT_NE(at, std::string::npos) << absl::CHexEscape(args);
  wire::Call call;
  call.work_id = 2;
  call.task = "DaemonTestLength";
  call.args.push_back(args.substr(0, at) +
                      std::string("\x80\x80\x80\x80\x80\x80\x80\x80\x40", 9) +
                      args.substr(at + 1));
  ASSERT_TRUE((*s)->channel().Send(wire::EncodeMessage(call)).ok());
  absl::StatusOr<wire::Message> m = (*s)->Next(kTimeout);
  ASSERT_TRUE(m.ok()) << m.status();
  const wire::Fatal* fatal = std::get_if<wire::Fatal>(&*m);
  ASSERT_NE(fatal, nullptr) << wire::MessageKind(*m);
  EXPECT_TRUE(absl::StrContains(fatal->exception.message,
                                "could not decode the arguments of task "
                                "DaemonTestLength"))
      << fatal->exception.message;
  EXPECT_TRUE(absl::IsUnavailable((*s)->AwaitError())) << daemon_->Log();

  // A frame whose Cap'n Proto segment table declares one segment of 2^29
  // words (4 GiB) and holds 8 bytes.
  absl::StatusOr<std::unique_ptr<RemoteSession>> t =
      RemoteSession::Open(Options());
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_TRUE((*t)->channel()
                  .Send(std::string("\x00\x00\x00\x00\x00\x00\x00\x20", 8))
                  .ok());
  m = (*t)->Next(kTimeout);
  ASSERT_TRUE(m.ok()) << m.status();
  fatal = std::get_if<wire::Fatal>(&*m);
  ASSERT_NE(fatal, nullptr) << wire::MessageKind(*m);
  std::cerr << "hostile: huge segment -> " << fatal->exception.message << "\n";
  EXPECT_TRUE(absl::IsUnavailable((*t)->AwaitError())) << daemon_->Log();

  // The daemon and the other parent live on; a new parent is served.
  EXPECT_TRUE(IsAlive(daemon_->pid));
  ASSERT_TRUE(
      good[0]
          ->Call(3, "DaemonTestLength", std::vector<int64_t>{1, 2, 3, 4})
          .ok());
  r = good[0]->AwaitResult();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*Value<int64_t>(*r), 4);
  ExpectServed(nullptr);
}

}  // namespace
}  // namespace daemon_testing
}  // namespace procpool
