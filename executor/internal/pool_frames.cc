// The frames a worker sends and what the pool does with them: the
// handshake, results, and protocol errors. Runs under io_mu_, on the manager
// or on a caller driving the I/O (see pool.h for who owns what).
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/big_buffers.h"
#include "common/unique_fd.h"
#include "core/exception_registry.h"
#include "core/task.h"
#include "executor/internal/pool.h"
#include "glog/logging.h"
#include "shared_array/transfer.h"

namespace procpool {
namespace internal {

void Pool::PumpWorker(Worker& w) {
  if (w.channel == nullptr) return;
  std::vector<std::string> frames;
  absl::Status status = w.channel->Pump(&frames);
  HandleFrames(w, frames, status);
}

bool Pool::HandleFrames(Worker& w, std::vector<std::string>& frames,
                        const absl::Status& status) {
  for (std::string& frame : frames) {
    if (!HandleFrame(w, std::move(frame))) return false;
  }
  if (!status.ok()) {
    OnChannelError(w, status);
    return !state_.broken();
  }
  UpdateEvents(w);
  return true;
}

void Pool::OnChannelError(Worker& w, const absl::Status& status) {
  VLOG(1) << "procpool: channel to worker pid " << w.process.pid
          << " failed: " << status;
  CloseChannel(w);
  if (!w.remote.empty() && !absl::IsDataLoss(status)) {
    // The connection is the only sign of life a remote worker gives: it is
    // gone (the manager settles its futures: OnRemoteWorkerGone).
    if (w.lost_cause.empty()) w.lost_cause = std::string(status.message());
    wake_manager_ = true;
    return;
  }
  if (absl::IsResourceExhausted(status)) {
    // This process could not hold what the worker sent (no memory left for
    // a big result): the worker is fine, but its channel stopped mid-frame.
    WorkerCrash crash = CrashOf(w, /*with_task=*/true);
    crash.cause = std::string(status.message());
    BreakPool("The pool ran out of memory for a worker's message", crash);
    return;
  }
  if (absl::IsDataLoss(status)) {
    WorkerCrash crash = CrashOf(w, /*with_task=*/true);
    crash.cause = absl::StrCat("corrupted data from the worker: ",
                               status.message());
    BreakPool("A worker sent data the pool could not read", crash);
    return;
  }
  // The worker closed its end: it is exiting. Its pidfd tells us when; if it
  // lingers, it is killed.
  w.kill_deadline = std::min(w.kill_deadline, absl::Now() + kExitGrace);
}

bool Pool::HandleFrame(Worker& w, std::string frame) {
  absl::StatusOr<wire::Message> message =
      wire::DecodeOwnedMessage(std::move(frame));
  if (!message.ok()) {
    OnChannelError(w, message.status());
    return false;
  }
  if (auto* hello = std::get_if<wire::Hello>(&*message)) {
    HandleHello(w, *hello);
  } else if (auto* result = std::get_if<wire::Result>(&*message)) {
    HandleResult(w, *result);
  } else if (auto* failed = std::get_if<wire::InitFailed>(&*message)) {
    WorkerCrash crash = CrashOf(w, /*with_task=*/false);
    crash.cause = absl::StrCat("initializer ", config_.initializer->task,
                               " failed: ", failed->exception.type_name, ": ",
                               failed->exception.message);
    BreakPool(
        "A process in the process pool failed its initializer; the pool is "
        "not usable anymore",
        crash);
  } else if (auto* fatal = std::get_if<wire::Fatal>(&*message)) {
    WorkerCrash crash = CrashOf(w, /*with_task=*/true);
    crash.cause = fatal->exception.message;
    BreakPool("A worker hit a protocol error", crash);
  } else {
    OnChannelError(w, absl::DataLossError(absl::StrCat(
                          "unexpected ", wire::MessageKind(*message),
                          " message from a worker")));
  }
  return !state_.broken();
}

void Pool::HandleHello(Worker& w, const wire::Hello& hello) {
  // A remote worker's pid is on its host: for messages only.
  if (!w.remote.empty()) w.process.pid = hello.pid;
  // Who built the worker: the binary we started, or a remote daemon.
  const std::string who =
      w.remote.empty() ? absl::StrCat("The worker binary ", config_.worker_binary)
                       : absl::StrCat("The worker daemon at ", w.remote);
  if (hello.protocol_version != wire::kProtocolVersion) {
    WorkerCrash crash = CrashOf(w, /*with_task=*/false);
    crash.cause = absl::StrCat("protocol version ", hello.protocol_version,
                               " in the worker, ", wire::kProtocolVersion,
                               " in this program");
    BreakPool(absl::StrCat(who, " speaks another procpool protocol"), crash);
    return;
  }
  if (w.greeted()) {
    // The handshake happens once: a second Hello is a worker that lies or
    // lost its place in the conversation.
    OnChannelError(w, absl::DataLossError(
                          "a second hello from a worker that had already "
                          "greeted"));
    return;
  }
  if (hello.fingerprint != TaskFingerprint()) {
    // Tasks the two sides both have must agree; the worker may have fewer.
    for (const wire::TaskSignature& theirs : hello.tasks) {
      const TaskInfo* ours = FindTaskByName(theirs.name);
      if (ours != nullptr && ours->signature != theirs.signature) {
        WorkerCrash crash = CrashOf(w, /*with_task=*/false);
        crash.cause = absl::StrCat(
            "handshake fingerprint mismatch: task ", theirs.name, " is ",
            ours->signature, " in this program but ", theirs.signature,
            " in the worker");
        BreakPool(absl::StrCat(who,
                               " was built from different task code; rebuild "
                               "it from the same sources"),
                  crash);
        return;
      }
    }
  }
  workers_.Greet(w);
  if (!w.remote.empty()) return;
  if (config_.max_rss_growth_bytes > 0) w.base_rss = ResidentBytes(w.process.pid);
}

void Pool::HandleResult(Worker& w, wire::Result& result) {
  if (w.assigned.empty() || w.assigned.front().work_id != result.work_id) {
    OnChannelError(w, absl::DataLossError(absl::StrCat(
                          "result for unexpected work id ", result.work_id)));
    return;
  }
  {
    const Assigned& a = w.assigned.front();
    const size_t elements =
        a.sent != nullptr ? a.sent->call.size() : a.item.size();
    if (result.size() != elements) {
      OnChannelError(w, absl::DataLossError(absl::StrCat(
                            "result with ", result.size(), " outcomes for ",
                            elements, " elements (work id ", result.work_id,
                            ")")));
      return;
    }
  }
  std::shared_ptr<ArrayTransfer> arrays;
  if (result.descriptors > 0 || !result.held_arrays.empty()) {
    std::vector<UniqueFd> fds;
    if (result.descriptors > 0) {
      absl::StatusOr<std::vector<UniqueFd>> taken =
          w.channel->TakeDescriptors(result.descriptors);
      if (!taken.ok()) {
        OnChannelError(w, taken.status());
        return;
      }
      fds = *std::move(taken);
    }
    arrays = std::make_shared<ArrayTransfer>(ArrayTransfer::Way::kByReference);
    arrays->SetIncoming(std::move(fds), std::move(result.held_arrays),
                        /*cache=*/nullptr);
    // The arrays the result names as held: the call's own.
    arrays->Keep(std::move(w.assigned.front().item.arrays));
  }
  if (!result.output_writes.empty()) {
    // Written into the call's output arrays before its futures complete
    // (RunCompletion), off this thread.
    if (arrays == nullptr) {
      arrays = std::make_shared<ArrayTransfer>(ArrayTransfer::Way::kByValue);
    }
    arrays->SetOutputWrites(std::move(result.output_writes),
                            std::move(w.assigned.front().item.output_copies));
  }
  Assigned done = std::move(w.assigned.front());
  w.assigned.pop_front();
  ++w.tasks_run;
  if (!w.assigned.empty()) {
    Assigned& next = w.assigned.front();
    if (next.item.timeout != absl::InfiniteDuration()) {
      next.deadline = absl::Now() + next.item.timeout;
    }
  } else {
    w.idle_since = absl::Now();
  }
  auto rebuild = [&](wire::ExceptionInfo& e) {
    RemoteTracebackInfo info;
    info.pid = w.process.pid;
    info.task_name = done.item.task;
    info.traceback = std::move(e.traceback);
    return RebuildException(e.type_name, e.message, std::move(info));
  };
  CallOutcomes outcomes;
  outcomes.arrays = std::move(arrays);
  if (result.outcomes.empty()) {
    // Packed: the values stay in one buffer (CallOutcomes).
    outcomes.values = std::move(result.packed_values);
    outcomes.errors.reserve(result.failures.size());
    for (wire::Failure& f : result.failures) {
      outcomes.errors.emplace_back(f.index, rebuild(f.exception));
    }
  } else {
    outcomes.elements.reserve(result.outcomes.size());
    for (wire::Outcome& o : result.outcomes) {
      ElementOutcome& out = outcomes.elements.emplace_back();
      if (o.ok) {
        out.value = std::move(o.value);
      } else {
        out.error = rebuild(o.exception);
      }
    }
  }
  // The arguments were kept to run the work again; a big buffer serves the
  // next message (common/big_buffers.h). (The transport has let go of a
  // Call sent as parts: the worker read all of it. If not, it frees them.)
  if (std::vector<std::string>* args = ReleasedArgs(done)) {
    for (std::string& a : *args) RecycleBigBuffer(std::move(a));
  }
  Completion c{Completion::Kind::kOutcomes, std::move(done.item.state)};
  c.outcomes = std::move(outcomes);
  c.pid = w.process.pid;
  c.task = std::move(done.item.task);
  c.work_id = done.work_id;
  completions_.Push(std::move(c));
  CheckMemory(w);  // pool_health.cc
}

}  // namespace internal
}  // namespace procpool
