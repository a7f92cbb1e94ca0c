#include "worker/init.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "glog/logging.h"
#include "transport/transport.h"
#include "worker/crash_reporter.h"
#include "worker/fork_server.h"
#include "worker/worker_loop.h"

namespace procpool {
namespace {

[[noreturn]] void Die(const std::string& message) {
  fprintf(stderr, "procpool worker: %s\n", message.c_str());
  _exit(3);
}

[[noreturn]] void ServeSpawnedWorker(int argc, char** argv) {
  // BINARY --procpool-internal-worker TRANSPORT PARENT_PID NFDS SPEC CRASH_FD
  if (argc < 7) Die("bad worker command line");
  int parent = 0, nfds = 0;
  if (!absl::SimpleAtoi(argv[3], &parent) || !absl::SimpleAtoi(argv[4], &nfds)) {
    Die("bad worker command line");
  }
  BecomeWorkerProcess(parent);
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

}  // namespace

bool IsInternalRole(int argc, char** argv) {
  return argc >= 2 && (strcmp(argv[1], kWorkerRoleFlag) == 0 ||
                       strcmp(argv[1], kForkServerRoleFlag) == 0);
}

void Init(int argc, char** argv) {
  if (!IsInternalRole(argc, argv)) return;
  if (!google::IsGoogleLoggingInitialized()) {
    google::InitGoogleLogging(argv[0]);
  }
  if (strcmp(argv[1], kWorkerRoleFlag) == 0) ServeSpawnedWorker(argc, argv);
  // BINARY --procpool-internal-forkserver PARENT_PID
  int parent = 0;
  if (argc < 3 || !absl::SimpleAtoi(argv[2], &parent)) {
    Die("bad fork server command line");
  }
  int code = RunForkServer(3, parent);
  fflush(stdout);
  fflush(stderr);
  _exit(code);
}

}  // namespace procpool
