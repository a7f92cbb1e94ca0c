#include "executor/internal/completion_queue.h"

#include <exception>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

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
  return c.state->Complete(std::move(c.outcomes));
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
