#include "executor/internal/completion_queue.h"

#include <exception>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "shared_array/transfer.h"

namespace procpool {
namespace internal {

absl::Status RunCompletion(Completion& c) {
  switch (c.kind) {
    case Completion::Kind::kCancel:
      c.state->ForceCancel();
      return absl::OkStatus();
    case Completion::Kind::kError:
      c.state->TrySetException(std::move(c.error));
      return absl::OkStatus();
    case Completion::Kind::kLogError:
      try {
        std::rethrow_exception(c.error);
      } catch (const std::exception& e) {
        LOG(ERROR) << "procpool: " << e.what();
      }
      return absl::OkStatus();
    case Completion::Kind::kOutcomes:
      break;
  }
  // Shared arrays in the values resolve against the descriptors that came
  // with the Result.
  const std::shared_ptr<ArrayTransfer> arrays = c.outcomes.arrays;
  if (arrays != nullptr) {
    // What the tasks wrote into their copies of output arrays lands before
    // anyone sees the futures done.
    const absl::Status applied = arrays->ApplyOutputWrites();
    if (!applied.ok()) {
      c.state->TrySetException(std::make_exception_ptr(Error(absl::StrCat(
          "The writes of task ", c.task,
          " to its output arrays could not be applied: ",
          applied.message()))));
      return absl::OkStatus();
    }
  }
  ArrayTransferScope scope(arrays.get());
  absl::Status completed = c.state->Complete(std::move(c.outcomes));
  if (!completed.ok() && arrays != nullptr) {
    // A shared array of the result could not be mapped here (a forged or
    // stale handle, no descriptor or memory left): that future fails, the
    // pool goes on.
    const absl::Status array_error = arrays->TakeArrayError();
    if (!array_error.ok()) {
      c.state->TrySetException(std::make_exception_ptr(Error(absl::StrCat(
          "A shared array in the result of task ", c.task,
          " could not be used: ", array_error.message()))));
      return absl::OkStatus();
    }
  }
  return completed;
}

WorkerCrash UndecodableResultCrash(const Completion& c,
                                   const absl::Status& error) {
  WorkerCrash crash;
  crash.pid = c.pid;
  crash.task_name = c.task;
  crash.work_id = static_cast<int64_t>(c.work_id);
  crash.cause = absl::StrCat("could not decode the result: ", error.message());
  return crash;
}

}  // namespace internal
}  // namespace procpool
