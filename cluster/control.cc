#include "cluster/control.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/auth/hmac.h"
#include "common/posix_error.h"

namespace procpool {
namespace cluster {
namespace {

constexpr char kGoodbye = 'G';

std::string FormatIp(const in_addr& addr) {
  char text[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &addr, text, sizeof(text));
  return text;
}

// Reads exactly `n` bytes before `deadline`; false on EOF, error or timeout.
// (common/posix_error.h's ReadFully has no deadline: a silent stranger must
// not hold rank 0 up.)
bool ReadWithin(int fd, char* out, size_t n, absl::Time deadline) {
  size_t got = 0;
  while (got < n) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) return false;
    struct pollfd p = {fd, POLLIN, 0};
    const int rc = poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1000)));
    if (rc < 0 && errno != EINTR) return false;
    if (rc <= 0) continue;
    const ssize_t r = read(fd, out + got, n - got);
    if (r == 0) return false;
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return false;
    }
    got += static_cast<size_t>(r);
  }
  return true;
}

// Sends all of `data` with MSG_NOSIGNAL: the goodbye runs at rank 0's exit,
// where a SIGPIPE from a rank already gone would replace the exit status
// (common/posix_error.h's WriteFully uses write()).
bool SendAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// "IP:PORT" -> sockaddr_in; false if it is not that.
bool ParseIpv4(const std::string& address, sockaddr_in* out) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port <= 0 ||
      port > 65535) {
    return false;
  }
  *out = {};
  out->sin_family = AF_INET;
  out->sin_port = htons(static_cast<uint16_t>(port));
  return inet_pton(AF_INET, address.substr(0, colon).c_str(),
                   &out->sin_addr) == 1;
}

// Connects with a bound on the time; the socket is left blocking.
absl::StatusOr<UniqueFd> ConnectWithin(const sockaddr_in& to,
                                       absl::Duration timeout) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return PosixError("socket", errno);
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&to), sizeof(to)) !=
          0 &&
      errno != EINPROGRESS) {
    return PosixError("connect", errno);
  }
  struct pollfd p = {fd.get(), POLLOUT, 0};
  const int rc = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (rc == 0) return absl::DeadlineExceededError("no answer");
  if (rc < 0) return PosixError("poll", errno);
  int error = 0;
  socklen_t len = sizeof(error);
  getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &len);
  if (error != 0) return PosixError("connect", error);
  const int flags = fcntl(fd.get(), F_GETFL);
  fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

std::vector<int>& GoodbyeFds() {
  static auto* fds = new std::vector<int>();
  return *fds;
}

// The process that holds the connections; a child forked from it (a kFork
// worker whose task calls exit()) inherits the handler but must not say
// goodbye for it.
pid_t goodbye_owner = 0;

void SayGoodbyeAtExit(int status, void*) {
  if (getpid() == goodbye_owner) SendGoodbye(GoodbyeFds(), status);
}

}  // namespace

absl::StatusOr<ControlListener> ListenForRanks() {
  ControlListener listener;
  listener.fd.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener.fd.valid()) return PosixError("socket", errno);
  sockaddr_in any = {};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(listener.fd.get(), reinterpret_cast<sockaddr*>(&any), sizeof(any)) !=
          0 ||
      listen(listener.fd.get(), 1024) != 0) {
    return PosixError("listening for the cluster's ranks", errno);
  }
  socklen_t len = sizeof(any);
  getsockname(listener.fd.get(), reinterpret_cast<sockaddr*>(&any), &len);
  const int port = ntohs(any.sin_port);
  struct ifaddrs* interfaces = nullptr;
  if (getifaddrs(&interfaces) != 0) return PosixError("getifaddrs", errno);
  std::vector<std::string> loopback;
  for (struct ifaddrs* i = interfaces; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET ||
        (i->ifa_flags & IFF_UP) == 0) {
      continue;
    }
    const auto* in = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    const std::string address = absl::StrCat(FormatIp(in->sin_addr), ":", port);
    ((i->ifa_flags & IFF_LOOPBACK) ? loopback : listener.addresses)
        .push_back(address);
  }
  freeifaddrs(interfaces);
  listener.addresses.insert(listener.addresses.end(), loopback.begin(),
                            loopback.end());
  if (listener.addresses.empty()) {
    return absl::UnavailableError("this host has no IPv4 interface that is up");
  }
  return listener;
}

std::string RankProof(absl::string_view key, int rank) {
  std::string proof(4, '\0');
  const uint32_t r = htonl(static_cast<uint32_t>(rank));
  memcpy(proof.data(), &r, 4);
  proof += auth::HmacSha256(key, absl::StrCat("procpool-cluster/1 control ", rank));
  return proof;
}

absl::StatusOr<UniqueFd> ConnectToParent(
    const std::vector<std::string>& addresses, absl::string_view key, int rank,
    absl::Duration timeout, std::string* local_ip) {
  std::vector<std::string> failures;
  for (const std::string& address : addresses) {
    sockaddr_in to;
    if (!ParseIpv4(address, &to)) {
      failures.push_back(absl::StrCat(address, ": not IPv4 IP:PORT"));
      continue;
    }
    absl::StatusOr<UniqueFd> fd = ConnectWithin(to, timeout);
    if (!fd.ok()) {
      failures.push_back(absl::StrCat(address, ": ", fd.status().message()));
      continue;
    }
    const int one = 1, idle = 2, interval = 1, count = 3;
    setsockopt(fd->get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd->get(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd->get(), IPPROTO_TCP, TCP_KEEPINTVL, &interval,
               sizeof(interval));
    setsockopt(fd->get(), IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
    const std::string proof = RankProof(key, rank);
    if (!SendAll(fd->get(), proof.data(), proof.size())) {
      failures.push_back(absl::StrCat(address, ": ", strerror(errno)));
      continue;
    }
    sockaddr_in local = {};
    socklen_t len = sizeof(local);
    getsockname(fd->get(), reinterpret_cast<sockaddr*>(&local), &len);
    *local_ip = FormatIp(local.sin_addr);
    return fd;
  }
  return absl::UnavailableError(
      absl::StrCat("rank ", rank, " cannot reach rank 0 at any of its addresses (",
                   absl::StrJoin(failures, "; "), ")"));
}

absl::StatusOr<std::vector<UniqueFd>> AcceptRanks(int listen_fd,
                                                  absl::string_view key,
                                                  int size,
                                                  absl::Time deadline) {
  std::vector<UniqueFd> ranks(static_cast<size_t>(std::max(size, 1)));
  int missing = size - 1;
  while (missing > 0) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) break;
    struct pollfd p = {listen_fd, POLLIN, 0};
    const int rc = poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1000)));
    if (rc <= 0) continue;
    UniqueFd fd(accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd.valid()) continue;
    char proof[kRankProofSize];
    // A silent peer may hold us up to a second, not up to the deadline.
    if (!ReadWithin(fd.get(), proof, sizeof(proof),
                   std::min(deadline, absl::Now() + absl::Seconds(1)))) {
      continue;
    }
    uint32_t r;
    memcpy(&r, proof, 4);
    const int rank = static_cast<int>(ntohl(r));
    if (rank < 1 || rank >= size || ranks[rank].valid() ||
        !auth::ConstantTimeEquals(absl::string_view(proof, sizeof(proof)),
                                  RankProof(key, rank))) {
      continue;  // a stranger, or a rank twice: dropped
    }
    ranks[rank] = std::move(fd);
    --missing;
  }
  if (missing > 0) {
    std::vector<int> absent;
    for (int r = 1; r < size; ++r) {
      if (!ranks[r].valid()) absent.push_back(r);
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "rank(s) ", absl::StrJoin(absent, ", "),
        " did not connect to rank 0 in time"));
  }
  return ranks;
}

void HoldUntilExit(std::vector<UniqueFd> connections) {
  for (UniqueFd& fd : connections) {
    if (fd.valid()) GoodbyeFds().push_back(fd.release());
  }
  goodbye_owner = getpid();
  on_exit(&SayGoodbyeAtExit, nullptr);
}

void SendGoodbye(const std::vector<int>& fds, int status) {
  const char message[2] = {kGoodbye, static_cast<char>(status & 0xff)};
  for (int fd : fds) SendAll(fd, message, sizeof(message));
}

ParentEnd ReadParentEnd(int fd) {
  ParentEnd end;
  char message[2];
  size_t got = 0;
  while (got < sizeof(message)) {
    const ssize_t r = read(fd, message + got, sizeof(message) - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      end.what = r == 0 ? "rank 0's connection closed without a goodbye (it "
                          "died, or was ended with _exit)"
                        : absl::StrCat("rank 0's connection failed (",
                                       strerror(errno),
                                       "): its host is gone or unreachable");
      return end;
    }
    got += static_cast<size_t>(r);
  }
  if (message[0] != kGoodbye) {
    end.what = "rank 0 sent something other than a goodbye";
    return end;
  }
  end.said_goodbye = true;
  end.status = static_cast<unsigned char>(message[1]);
  end.what = absl::StrCat("rank 0 exited with status ", end.status);
  return end;
}

}  // namespace cluster
}  // namespace procpool
