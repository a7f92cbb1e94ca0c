#include "executor/internal/worker_start.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/posix_error.h"

namespace procpool {
namespace internal {

bool LaunchLocalWorker(Transport& transport, Launcher& launcher,
                       const std::string& binary, LaunchedWorker* out,
                       StartFailure* failure) {
  absl::StatusOr<ChannelPair> pair = transport.CreatePair();
  if (!pair.ok()) {
    failure->message = "A child process could not be started";
    failure->crash.cause = std::string(pair.status().message());
    return false;
  }
  // The pipe the worker's failure handler reports its stack into.
  int crash_pipe[2];
  if (pipe2(crash_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    for (int fd : pair->child.fds) close(fd);
    failure->message = "A child process could not be started";
    failure->crash.cause = std::string(PosixError("pipe2", errno).message());
    return false;
  }
  LaunchRequest request{std::string(transport.name()), pair->child, binary,
                        crash_pipe[1]};
  absl::StatusOr<WorkerProcess> process = launcher.Start(request);
  for (int fd : pair->child.fds) close(fd);
  close(crash_pipe[1]);
  if (!process.ok()) {
    close(crash_pipe[0]);
    failure->message =
        absl::StrCat("A child process ", process.status().message());
    failure->crash = WorkerCrash{};
    return false;
  }
  out->process = *process;
  out->channel = std::move(pair->parent);
  out->crash_fd = crash_pipe[0];
  return true;
}

int FreeRemoteSlot(const WorkerTable& table, int slots) {
  // The first slot with no live worker (an address may fill several).
  for (int i = 0; i < slots; ++i) {
    bool taken = false;
    for (const auto& [id, w] : table) taken = taken || w.remote_slot == i;
    if (!taken) return i;
  }
  return -1;
}

}  // namespace internal
}  // namespace procpool
