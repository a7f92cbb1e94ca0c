// Test support for the worker daemon: start it as a subprocess (possibly
// under `ip netns exec`), and talk to it as a parent does, frame by frame
// (Config -> Hello, Call -> Result) over ConnectRemoteWorker(). Every wait is
// bounded.
#ifndef PROCPOOL_WORKER_TESTING_DAEMON_HARNESS_H_
#define PROCPOOL_WORKER_TESTING_DAEMON_HARNESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "serialization/codec.h"
#include "serialization/task_value.h"
#include "serialization/wire.h"
#include "transport/capnp/remote.h"
#include "transport/transport.h"

namespace procpool {
namespace daemon_testing {

inline constexpr absl::Duration kTimeout = absl::Seconds(10);

// Writes `key` to a new mode-0600 file under TEST_TMPDIR; returns its path.
std::string WriteKeyFile(const std::string& name, const std::string& key);

// A path under TEST_TMPDIR, unique in this process and not there yet, for a
// task to create (DaemonTestMarkAndSleep's `started`).
std::string MarkerPath(const std::string& name);

// Waits up to `timeout` for `path` to exist.
bool AwaitFile(const std::string& path, absl::Duration timeout = kTimeout);

// The daemon tests' worker binary (a procpool_worker_binary), in the runfiles.
std::string WorkerBinary();

// A daemon subprocess; killed (SIGKILL) and reaped on destruction if still
// running.
struct Daemon {
  pid_t pid = -1;
  std::string address;   // from its "listening on HOST:PORT" line
  std::string log_path;  // its stderr
  std::string Log() const;
  // Sends `signal` and waits up to `timeout` for the exit; the wait status,
  // or -1 if it did not exit.
  int SignalAndWait(int signal, absl::Duration timeout);
  ~Daemon();
};

// Runs `argv` (argv[0] a path) with stdout on a pipe and stderr in a file, and
// waits up to kTimeout for its "listening on" line. An error carries its log.
absl::StatusOr<std::unique_ptr<Daemon>> StartDaemon(
    const std::vector<std::string>& argv, const std::string& log_name);

// A parent's side of one remote worker.
class RemoteSession {
 public:
  // Connects; with `handshake`, sends Config and waits for Hello.
  static absl::StatusOr<std::unique_ptr<RemoteSession>> Open(
      const RemoteWorkerOptions& options, bool handshake = true);

  Channel& channel() { return *channel_; }
  const wire::Hello& hello() const { return hello_; }

  // Sends Call{work_id, task, {EncodeTaskArgs(args)}}.
  template <typename... A>
  absl::Status Call(uint64_t work_id, const std::string& task, A... args) {
    wire::Call call;
    call.work_id = work_id;
    call.task = task;
    call.args.push_back(EncodeTaskArgs(std::make_tuple(args...)));
    return channel_->Send(wire::EncodeMessage(call));
  }

  // The next Result (with an Outcome per element: wire::Unpack), or the
  // channel's error, within `timeout`.
  absl::StatusOr<wire::Result> AwaitResult(absl::Duration timeout = kTimeout);

  // Pumps until the channel fails; kDeadlineExceeded if it has not within
  // `timeout`.
  absl::Status AwaitError(absl::Duration timeout = kTimeout);

  // The next frame, decoded, or the channel's error.
  absl::StatusOr<wire::Message> Next(absl::Duration timeout);

 private:
  std::unique_ptr<Channel> channel_;
  wire::Hello hello_;
  std::vector<std::string> pending_;  // frames pumped and not yet returned
};

// The value of a Result's first outcome, decoded as T; the remote exception
// as an error status.
template <typename T>
absl::StatusOr<T> Value(const wire::Result& result) {
  if (result.outcomes.empty()) return absl::DataLossError("no outcome");
  const wire::Outcome& o = result.outcomes[0];
  if (!o.ok) {
    return absl::AbortedError(o.exception.type_name + ": " + o.exception.message);
  }
  return DecodeTaskValue<T>(o.value);
}

// True while `pid` exists and is not a zombie.
bool IsAlive(pid_t pid);

// The parent pid of `pid` (from /proc), or -1.
pid_t ParentOf(pid_t pid);

}  // namespace daemon_testing
}  // namespace procpool

#endif  // PROCPOOL_WORKER_TESTING_DAEMON_HARNESS_H_
