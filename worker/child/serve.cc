#include "worker/child/serve.h"

#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "glog/logging.h"
#include "worker/child/crash_reporter.h"
#include "worker/child/worker_loop.h"

namespace procpool {
namespace internal {
namespace {

[[noreturn]] void Die(const std::string& message) {
  fprintf(stderr, "procpool worker: %s\n", message.c_str());
  _exit(3);
}

}  // namespace

void ServeSpawnedWorker(int argc, char** argv) {
  // BINARY --procpool-internal-worker TRANSPORT PARENT_PID NFDS SPEC CRASH_FD
  if (argc < 7) Die("bad worker command line");
  int parent = 0, nfds = 0;
  if (!absl::SimpleAtoi(argv[3], &parent) || !absl::SimpleAtoi(argv[4], &nfds)) {
    Die("bad worker command line");
  }
  BecomeWorkerProcess(parent);
  // The descriptors came across exec by number (worker/parent/
  // local_launchers.cc): the endpoint's as 3..3+NFDS-1, the crash pipe as
  // CRASH_FD. They stay ints: the transport takes the endpoint's over
  // (OpenChild), and the crash reporter keeps its one until the process exits.
  int crash_fd = -1;
  if (!absl::SimpleAtoi(argv[6], &crash_fd)) Die("bad worker command line");
  InstallCrashReporter(crash_fd);
  ChildEndpoint endpoint;
  for (int i = 0; i < nfds; ++i) endpoint.fds.push_back(3 + i);
  endpoint.spec = argv[5];
  absl::StatusOr<Transport*> transport = GetTransport(argv[2]);
  if (!transport.ok()) Die(std::string(transport.status().message()));
  absl::StatusOr<std::unique_ptr<Channel>> channel =
      (*transport)->OpenChild(endpoint);
  if (!channel.ok()) {
    Die("cannot open channel: " + std::string(channel.status().message()));
  }
  int code = RunWorker(*std::move(channel));
  fflush(stdout);
  fflush(stderr);
  _exit(code);
}

void ServeAsForkedWorker(const std::string& transport,
                         const ChildEndpoint& endpoint, int crash_fd,
                         pid_t parent) {
  BecomeWorkerProcess(parent);
  std::vector<int> keep = endpoint.fds;
  if (crash_fd >= 0) keep.push_back(crash_fd);
  std::sort(keep.begin(), keep.end());
  int next = 3;
  for (int fd : keep) {
    if (fd > next) syscall(SYS_close_range, next, fd - 1, 0);
    next = std::max(next, fd + 1);
  }
  syscall(SYS_close_range, next, ~0U, 0);
  InstallCrashReporter(crash_fd);
  absl::StatusOr<Transport*> t = GetTransport(transport);
  if (!t.ok()) {
    LOG(ERROR) << "procpool worker: " << t.status().message();
    _exit(3);
  }
  absl::StatusOr<std::unique_ptr<Channel>> channel = (*t)->OpenChild(endpoint);
  if (!channel.ok()) {
    LOG(ERROR) << "procpool worker: cannot open channel: "
               << channel.status().message();
    _exit(3);
  }
  int code = RunWorker(*std::move(channel));
  fflush(stdout);
  fflush(stderr);
  _exit(code);
}

}  // namespace internal
}  // namespace procpool
