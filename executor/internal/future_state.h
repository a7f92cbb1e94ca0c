// The shared state behind procpool::Future<T> (internal).
//
// A StateBase is created by Submit/Map, shared by every copy of the Future and
// by the executor while the work is pending or running, and released by the
// executor as soon as the work is done (S4). Its transitions follow CPython's
// Future: PENDING -> RUNNING -> FINISHED, or PENDING -> CANCELLED.
//
// Thread safety: every method is thread-safe. Done callbacks and waiter
// notifications run on the thread that completes the state (the executor's
// manager thread, or the thread that calls Cancel()), after mu_ is released.
#ifndef PROCPOOL_EXECUTOR_INTERNAL_FUTURE_STATE_H_
#define PROCPOOL_EXECUTOR_INTERNAL_FUTURE_STATE_H_

#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "serialization/packed.h"

namespace procpool {

class ArrayTransfer;  // shared_array/transfer.h
namespace internal {

class StateBase;

// The executor running a state's work, as the state sees it. Installed by the
// pool when the work is queued; outlives the pool (it then does nothing).
class Driver {
 public:
  virtual ~Driver() = default;
  // Future::Interrupt() of running work: asks the pool to kill its worker.
  virtual void Interrupt(StateBase* state) = 0;
  // Called by a thread about to block until `done()` (a future is done, or
  // any of several) for at most `timeout`: may do the pool's work on this
  // thread (polling the workers' channels) for a while (the pool decides how
  // long, never past `timeout`), so that a result that is about to arrive is
  // taken without waking anyone. Returns early once done() is true; done()
  // must be cheap (it is called every polling round).
  virtual void DriveIoWhileWaiting(const std::function<bool()>& done,
                    absl::Duration timeout) = 0;
};

// Collects completions of several states for Wait() and AsCompleted().
class Waiter {
 public:
  // Called by a state when it completes (finished, failed or cancelled).
  void Notify(StateBase* state);

  absl::Mutex mu;
  std::vector<StateBase*> completed ABSL_GUARDED_BY(mu);
  // completed.size(), readable without mu (for a waiter that polls).
  std::atomic<size_t> count{0};
};

// The outcome of one element of a call, as the executor hands it over:
// encoded value bytes, or an exception already rebuilt in the parent.
struct ElementOutcome {
  std::string value;
  std::exception_ptr error;  // set: the element failed
};

// The outcomes of a call's elements, in order, in one of two forms (as
// wire::Result has them): an ElementOutcome each (a big value keeps its own
// buffer), or, when `elements` is empty, the encoded values packed in
// `values` (a failed element's is empty) and the exceptions of the failed
// ones in `errors`, by increasing index: a Map chunk of small values then
// costs no string per element.
struct CallOutcomes {
  std::vector<ElementOutcome> elements;
  PackedElements values;
  std::vector<std::pair<size_t, std::exception_ptr>> errors;
  // The descriptors that came beside the Result, for the shared arrays its
  // values name by reference (decoded in its scope: completion_queue.cc);
  // null if none came.
  std::shared_ptr<ArrayTransfer> arrays;

  size_t size() const {
    return elements.empty() ? values.size() : elements.size();
  }
};

class StateBase : public std::enable_shared_from_this<StateBase> {
 public:
  enum class Phase { kPending, kRunning, kCancelled, kFinished };

  virtual ~StateBase() = default;

  // Future's API.
  bool Cancel();
  bool cancelled() const;
  bool running() const;
  bool done() const;
  // Finished with an exception (not cancelled).
  bool failed() const;
  // Blocks until done or `timeout`; returns false on timeout.
  bool WaitDone(absl::Duration timeout) const;
  // Waits, then throws CancelledError if cancelled or TimeoutError if not done
  // in time; returns the exception (null on success).
  std::exception_ptr WaitException(absl::Duration timeout) const;
  // Waits, then rethrows the exception if any (or CancelledError/TimeoutError).
  void WaitAndRethrow(absl::Duration timeout) const;
  void AddDoneCallback(std::function<void()> fn);

  // Executor's API.

  // PENDING -> RUNNING and true; false if the state was cancelled (the
  // executor then drops the work). Any other phase is a bug (CHECK).
  bool SetRunningOrNotifyCancel();
  // Completes the state from the worker's outcomes. Returns an error (and
  // leaves the state untouched) if the values cannot be decoded; the executor
  // then breaks the pool (S5).
  virtual absl::Status Complete(CallOutcomes&& outcomes) = 0;
  absl::Status Complete(std::vector<ElementOutcome>&& elements) {
    CallOutcomes outcomes;
    outcomes.elements = std::move(elements);
    return Complete(std::move(outcomes));
  }
  // Completes the state with `error`. Throws InvalidStateError if it is
  // already finished or cancelled.
  void SetException(std::exception_ptr error);
  // Like SetException but a no-op on a done state; true if it completed it.
  bool TrySetException(std::exception_ptr error);

  // RUNNING -> CANCELLED (the pool killed the worker running it on request);
  // false if the state is already done.
  bool ForceCancel();

  // Future::Interrupt(): cancels if pending; if running, asks the pool that
  // runs it (through the hook it installed) to kill the worker. Returns false
  // if the state is already finished.
  bool Interrupt();
  // Installed by the pool at Submit, before the state is shared: who to ask
  // to interrupt it, and who may drive the pool's I/O for a waiter.
  void SetDriver(std::shared_ptr<Driver> driver);

  // The driver installed by SetDriver (null if none).
  std::shared_ptr<Driver> driver() const;

  // done() without the lock (acquire: what completed it is visible).
  bool done_fast() const { return done_flag_.load(std::memory_order_acquire); }

  // Wait()/AsCompleted(): registers `w` to be notified on completion.
  // Returns true (and does not register) if the state is already done.
  bool AddWaiter(Waiter* w);
  void RemoveWaiter(Waiter* w);

 protected:
  // For Complete(): stores the value with `store` under the lock and finishes.
  // `store` runs with mu_ held.
  void FinishWith(const std::function<void()>& store);

  mutable absl::Mutex mu_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kPending;
  std::exception_ptr error_ ABSL_GUARDED_BY(mu_);

 private:
  bool DoneLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return phase_ == Phase::kCancelled || phase_ == Phase::kFinished;
  }
  // Runs callbacks and notifies waiters; mu_ must not be held.
  void RunCompletion();

  std::vector<std::function<void()>> callbacks_ ABSL_GUARDED_BY(mu_);
  std::vector<Waiter*> waiters_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Driver> driver_ ABSL_GUARDED_BY(mu_);
  // Mirrors DoneLocked(); written under mu_, read without it.
  std::atomic<bool> done_flag_{false};
};

// Throws the TimeoutError Get()/Exception() report.
[[noreturn]] void ThrowFutureTimeout(absl::Duration timeout);

// The empty value stored for void results.
struct Unit {};

}  // namespace internal
}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_INTERNAL_FUTURE_STATE_H_
