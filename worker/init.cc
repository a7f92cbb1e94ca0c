#include "worker/init.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "glog/logging.h"
#include "worker/child/serve.h"
#include "worker/fork_server/fork_server.h"
#include "worker/fork_server/protocol.h"

namespace procpool {

bool IsInternalRole(int argc, char** argv) {
  return argc >= 2 && (strcmp(argv[1], kWorkerRoleFlag) == 0 ||
                       strcmp(argv[1], kForkServerRoleFlag) == 0);
}

void Init(int argc, char** argv) {
  if (!IsInternalRole(argc, argv)) return;
  if (!google::IsGoogleLoggingInitialized()) {
    google::InitGoogleLogging(argv[0]);
  }
  if (strcmp(argv[1], kWorkerRoleFlag) == 0) {
    internal::ServeSpawnedWorker(argc, argv);
  }
  // BINARY --procpool-internal-forkserver PARENT_PID
  int parent = 0;
  if (argc < 3 || !absl::SimpleAtoi(argv[2], &parent)) {
    fprintf(stderr, "procpool worker: bad fork server command line\n");
    _exit(3);
  }
  int code = RunForkServer(3, parent);
  fflush(stdout);
  fflush(stderr);
  _exit(code);
}

}  // namespace procpool
