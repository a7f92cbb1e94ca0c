#include "executor/internal/worker_start.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/posix_error.h"
#include "common/sys.h"
#include "common/unique_fd.h"

namespace procpool {
namespace internal {

bool LaunchLocalWorker(Transport& transport, Launcher& launcher,
                       const std::string& binary, LaunchedWorker* out,
                       StartFailure* failure) {
  absl::StatusOr<ChannelPair> pair = transport.CreatePair();
  if (!pair.ok()) {
    failure->message = "A child process could not be started";
    failure->crash.cause = std::string(pair.status().message());
    failure->resource_exhausted =
        pair.status().code() == absl::StatusCode::kResourceExhausted;
    return false;
  }
  // The child's ends are ours to close, on every path (the launcher dups
  // what it passes on).
  std::vector<UniqueFd> child_fds;
  for (int fd : pair->child.fds) child_fds.emplace_back(fd);
  // The pipe the worker's failure handler reports its stack into.
  int crash_pipe[2];
  if (GetSys().Pipe2(crash_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    const absl::Status error = PosixError("pipe2 (its crash report)", errno);
    failure->message = "A child process could not be started";
    failure->crash.cause = std::string(error.message());
    failure->resource_exhausted =
        error.code() == absl::StatusCode::kResourceExhausted;
    return false;
  }
  UniqueFd crash_read(crash_pipe[0]);
  UniqueFd crash_write(crash_pipe[1]);
  LaunchRequest request{std::string(transport.name()), pair->child, binary,
                        crash_write.get()};
  absl::StatusOr<WorkerProcess> process = launcher.Start(request);
  child_fds.clear();
  crash_write.reset();
  if (!process.ok()) {
    // Launchers say "could not be started: ..." (launcher.h); anything else
    // gets those words too.
    const absl::string_view why = process.status().message();
    failure->message =
        absl::StartsWith(why, "could not be started")
            ? absl::StrCat("A child process ", why)
            : absl::StrCat("A child process could not be started: ", why);
    failure->crash = WorkerCrash{};
    failure->resource_exhausted =
        process.status().code() == absl::StatusCode::kResourceExhausted;
    return false;
  }
  out->process = *std::move(process);
  out->channel = std::move(pair->parent);
  out->crash_fd = std::move(crash_read);
  return true;
}

int FreeRemoteSlot(const WorkerTable& table, const std::vector<bool>& lost,
                   int slots) {
  // The first slot with no live worker (an address may fill several).
  for (int i = 0; i < slots; ++i) {
    if (static_cast<size_t>(i) < lost.size() && lost[i]) continue;
    bool taken = false;
    for (const auto& [id, w] : table) taken = taken || w.remote_slot == i;
    if (!taken) return i;
  }
  return -1;
}

}  // namespace internal
}  // namespace procpool
