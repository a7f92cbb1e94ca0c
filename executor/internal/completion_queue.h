// The completion queue: futures the pool completes only after it has let go
// of its locks.
//
// Completing a future runs its done callbacks and wakes its waiters, and a
// done callback may call back into the pool (Submit, Shutdown...). So the
// pool never completes a future while it holds mu_ or io_mu_: whatever it
// decides under io_mu_ (a result arrived, a worker died, the pool broke, an
// interrupt cancelled a task) is queued here as a Completion, and the thread
// that queued it takes the whole queue (TakeAll) once it has released io_mu_
// and runs each one (RunCompletion). Done callbacks therefore run on
// whichever thread completed the future: the manager, or a caller that was
// driving the pool's I/O.
//
// Example:
//   // under io_mu_
//   queue.Error(state, std::make_exception_ptr(BrokenProcessPool("...")));
//   std::vector<Completion> done;
//   queue.TakeAll(&done);
//   io_mu_.Unlock();
//   for (Completion& c : done) absl::Status s = RunCompletion(c);
//
// Thread safety: none of its own; the pool guards its queue with io_mu_.
// RunCompletion must be called with no pool lock held. A Completion owns a
// reference to its future's state until it is destroyed.
#ifndef PROCPOOL_EXECUTOR_INTERNAL_COMPLETION_QUEUE_H_
#define PROCPOOL_EXECUTOR_INTERNAL_COMPLETION_QUEUE_H_

#include <sys/types.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/errors.h"
#include "executor/internal/future_state.h"

namespace procpool {
namespace internal {

// A future to complete once the pool's locks are released.
struct Completion {
  enum class Kind {
    kOutcomes,  // a worker's Result: StateBase::Complete(outcomes)
    kError,     // StateBase::TrySetException(error)
    kCancel,    // StateBase::ForceCancel() (an interrupted running task)
    kLogError,  // LOG(ERROR) of error's what(), after the futures before it
  };
  Kind kind;
  std::shared_ptr<StateBase> state;
  CallOutcomes outcomes;     // kOutcomes
  std::exception_ptr error;  // kError
  // kOutcomes: where they came from, should they fail to decode.
  pid_t pid = 0;
  std::string task;
  uint64_t work_id = 0;
};

class CompletionQueue {
 public:
  // Queues a Result's completion (kOutcomes, filled by the caller).
  void Push(Completion&& c) { queue_.push_back(std::move(c)); }
  // Queues failing `state` with `error` (a no-op if it is done by then).
  void Error(std::shared_ptr<StateBase> state, std::exception_ptr error) {
    Completion c{Completion::Kind::kError, std::move(state)};
    c.error = std::move(error);
    queue_.push_back(std::move(c));
  }
  // Queues writing "procpool: " and `error`'s what() to the error log: after
  // the completions queued before it, so that they do not wait for the text
  // (a BrokenProcessPool's what() symbolizes the worker's stack).
  void LogError(std::exception_ptr error) {
    Completion c{Completion::Kind::kLogError, nullptr};
    c.error = std::move(error);
    queue_.push_back(std::move(c));
  }
  // Queues cancelling running `state` (ForceCancel).
  void Cancel(std::shared_ptr<StateBase> state) {
    queue_.push_back(Completion{Completion::Kind::kCancel, std::move(state)});
  }

  bool empty() const { return queue_.empty(); }
  size_t size() const { return queue_.size(); }

  // Moves every queued completion, in the order queued, into `*out` (which
  // must be empty) and leaves the queue empty.
  void TakeAll(std::vector<Completion>* out) { out->swap(queue_); }

 private:
  std::vector<Completion> queue_;
};

// Completes c's future (moves from `c`). Returns the decoding error, leaving
// the state untouched, if c's outcomes cannot be decoded (the pool then
// breaks: S5); OK otherwise. Call with no pool lock held.
absl::Status RunCompletion(Completion& c);

// The crash details of a Result that could not be decoded (`error`, from
// RunCompletion): the worker's pid, the task and its work id.
WorkerCrash UndecodableResultCrash(const Completion& c,
                                   const absl::Status& error);

}  // namespace internal
}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_INTERNAL_COMPLETION_QUEUE_H_
