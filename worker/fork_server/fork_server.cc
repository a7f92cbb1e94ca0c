#include "worker/fork_server/fork_server.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/unique_fd.h"
#include "glog/logging.h"
#include "serialization/codec.h"
#include "transport/transport.h"
#include "worker/child/serve.h"
#include "worker/fork_server/protocol.h"

namespace procpool {

using fork_server::kError;
using fork_server::kExited;
using fork_server::kStarted;
using fork_server::ReceivePacket;
using fork_server::Reply;
using fork_server::Request;
using fork_server::SendPacket;

int RunForkServer(int control_fd, pid_t parent) {
  // Not PR_SET_PDEATHSIG: it fires when the parent *thread* that spawned us
  // exits (a pool's manager thread), not the parent process. The server
  // lives as long as the parent process: its control socket reaches end of
  // file when that process dies (the kernel closes its descriptors), and a
  // re-parenting check catches a socket kept open by a forked grandchild.
  signal(SIGINT, SIG_IGN);
  if (getppid() != parent) return 0;
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  UniqueFd signal_fd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  PCHECK(signal_fd.valid()) << "signalfd";
  const pid_t self = getpid();
  while (true) {
    struct pollfd p[2] = {{control_fd, POLLIN, 0},
                          {signal_fd.get(), POLLIN, 0}};
    int n = poll(p, 2, 1000);
    if (getppid() != parent) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      PLOG(ERROR) << "fork server poll";
      return 1;
    }
    if (p[1].revents) {
      struct signalfd_siginfo info;
      while (read(signal_fd.get(), &info, sizeof(info)) == sizeof(info)) {
      }
      int status;
      pid_t pid;
      while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (!SendPacket(control_fd, EncodeValue(Reply{kExited, pid, status, ""}),
                        {})
                 .ok()) {
          return 0;
        }
      }
    }
    if (p[0].revents) {
      std::vector<UniqueFd> received;  // the endpoint's fds (and crash pipe)
      absl::StatusOr<std::string> packet = ReceivePacket(control_fd, &received);
      if (!packet.ok()) return 0;  // the parent closed its end
      absl::StatusOr<Request> request = DecodeValue<Request>(*packet);
      Reply reply;
      if (!request.ok()) {
        reply = Reply{kError, 0, 0,
                      absl::StrCat("bad fork request: ", request.status().message())};
      } else {
        // The numbers the child serves on; `received` owns them here, and the
        // child keeps them open (ServeAsForkedWorker closes everything else).
        std::vector<int> endpoint_fds;
        for (const UniqueFd& fd : received) endpoint_fds.push_back(fd.get());
        int crash_fd = -1;
        if (std::get<2>(*request) && !endpoint_fds.empty()) {
          crash_fd = endpoint_fds.back();
          endpoint_fds.pop_back();
        }
        pid_t pid = fork();
        if (pid == 0) {
          // The child drops the server's own descriptors (plain close(); it
          // never returns, so `received` stays open for it).
          CloseFd(control_fd);
          signal_fd.reset();
          sigprocmask(SIG_UNBLOCK, &mask, nullptr);
          internal::ServeAsForkedWorker(
              std::get<0>(*request),
              ChildEndpoint{endpoint_fds, std::get<1>(*request)}, crash_fd,
              self);
        }
        const int fork_error = errno;
        reply = pid < 0 ? Reply{kError, 0, fork_error,
                                absl::StrCat("fork: ", strerror(fork_error))}
                        : Reply{kStarted, pid, 0, ""};
      }
      received.clear();  // our copies; the child has its own
      if (!SendPacket(control_fd, EncodeValue(reply), {}).ok()) return 0;
    }
  }
}

}  // namespace procpool
