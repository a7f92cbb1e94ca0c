// procpool::Future<T>: the result of work submitted to a ProcessPoolExecutor.
//
// As in Python's concurrent.futures.Future: a future is PENDING (submitted, not
// yet handed to a worker), RUNNING (handed to a worker), CANCELLED, or
// FINISHED (with a value or an exception). Copies are cheap and share one
// state; operator== compares that state.
//
// Example:
//   procpool::Future<int> f = pool.Submit(Square, 7);
//   f.AddDoneCallback([](const procpool::Future<int>& done) { ... });
//   int v = f.Get(absl::Seconds(5));  // throws TimeoutError if not done by then
//
// Thread safety: every method may be called from any thread. Done callbacks run
// on the thread that completes the future (the executor's manager thread, or
// the thread calling Cancel()), or at once on the caller's thread if the future
// is already done; a callback that throws is logged and the next still runs.
#ifndef PROCPOOL_EXECUTOR_FUTURE_H_
#define PROCPOOL_EXECUTOR_FUTURE_H_

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "common/big_buffers.h"
#include "core/errors.h"
#include "executor/internal/future_state.h"
#include "serialization/codec.h"
#include "serialization/task_value.h"

namespace procpool {
namespace internal {

// What a Map chunk comes back as: one value or exception per element.
template <typename R>
struct ChunkElement {
  std::optional<std::conditional_t<std::is_void_v<R>, Unit, R>> value;
  std::exception_ptr error;
};
template <typename R>
using ChunkResult = std::vector<ChunkElement<R>>;

template <typename T>
struct IsChunkResult : std::false_type {};
template <typename R>
struct IsChunkResult<std::vector<ChunkElement<R>>> : std::true_type {
  using Element = R;
};

// The typed state: decodes the worker's single outcome into a T.
template <typename T>
class State : public StateBase {
 public:
  using Stored = std::conditional_t<std::is_void_v<T>, Unit, T>;

  using StateBase::Complete;
  absl::Status Complete(CallOutcomes&& outcomes) override {
    if constexpr (IsChunkResult<T>::value) {
      return CompleteChunk(std::move(outcomes));
    } else {
      return CompleteOne(std::move(outcomes));
    }
  }

  // Only after WaitAndRethrow() returned (the state is finished with a value).
  const Stored& value() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return *value_;
  }

  // A big string result's buffer (most often the received frame's, which it
  // took over) serves the next big frame instead of going back to the
  // system, whose fresh pages the kernel would zero again (common/
  // big_buffers.h).
  ~State() override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if constexpr (std::is_same_v<T, std::string>) {
      if (value_.has_value() && value_->capacity() >= kMinBigBuffer) {
        RecycleBigBuffer(std::move(*value_));
      }
    }
  }

 private:
  absl::Status CompleteChunk(CallOutcomes&& outcomes) {
    using R = typename IsChunkResult<T>::Element;
    T chunk(outcomes.size());
    if (outcomes.elements.empty()) {
      // Packed: each value decodes from its bytes in place, into its slot
      // (one exception guard for the chunk: a user type's constructor may
      // throw).
      size_t k = 0;  // the next failure
      absl::Status decoded = internal::CatchExceptions([&]() -> absl::Status {
        for (size_t i = 0; i < chunk.size(); ++i) {
          if (k < outcomes.errors.size() && outcomes.errors[k].first == i) {
            chunk[i].error = std::move(outcomes.errors[k++].second);
          } else if constexpr (std::is_void_v<R>) {
            chunk[i].value.emplace();
          } else if constexpr (kIsLoneString<R>) {
            chunk[i].value.emplace(outcomes.values[i]);
          } else {
            absl::Status s =
                DecodeValueInto(outcomes.values[i], &chunk[i].value.emplace());
            if (!s.ok()) return s;
          }
        }
        return absl::OkStatus();
      });
      if (!decoded.ok()) return decoded;
    }
    std::vector<ElementOutcome>& elements = outcomes.elements;
    for (size_t i = 0; i < elements.size(); ++i) {
      if (elements[i].error) {
        chunk[i].error = std::move(elements[i].error);
      } else if constexpr (std::is_void_v<R>) {
        chunk[i].value.emplace();
      } else {
        absl::StatusOr<R> v = DecodeTaskValue<R>(std::move(elements[i].value));
        if (!v.ok()) return v.status();
        chunk[i].value.emplace(*std::move(v));
      }
    }
    FinishWith([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(this->mu_) {
      value_.emplace(std::move(chunk));
    });
    return absl::OkStatus();
  }

  absl::Status CompleteOne(CallOutcomes&& outcomes) {
    if (outcomes.size() != 1) {
      return absl::DataLossError("result carries a wrong number of outcomes");
    }
    // Packed (a small value: decoded from its bytes) or a string of its own.
    const bool packed = outcomes.elements.empty();
    std::exception_ptr error =
        packed ? (outcomes.errors.empty() ? nullptr : outcomes.errors[0].second)
               : outcomes.elements[0].error;
    if (error) {
      SetException(std::move(error));
      return absl::OkStatus();
    }
    if constexpr (std::is_void_v<T>) {
      if (!(packed ? outcomes.values[0].empty()
                   : outcomes.elements[0].value.empty())) {
        return absl::DataLossError("void result carries a value");
      }
      FinishWith([] {});
    } else {
      absl::StatusOr<T> v =
          packed ? DecodeTaskValueView<T>(outcomes.values[0])
                 : DecodeTaskValue<T>(std::move(outcomes.elements[0].value));
      if (!v.ok()) return v.status();
      FinishWith([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(this->mu_) {
        value_.emplace(*std::move(v));
      });
    }
    return absl::OkStatus();
  }

  std::optional<Stored> value_ ABSL_GUARDED_BY(mu_);
};

}  // namespace internal

template <typename T>
class Future {
 public:
  // An empty future (no state); only assignable. Futures come from Submit().
  Future() = default;

  // Cancels the work if it is still pending. Returns true if the future is
  // now cancelled (including when it already was), false if it is running or
  // finished.
  bool Cancel() { return state_->Cancel(); }
  // True once the future was cancelled (by Cancel(), Interrupt(), Map's
  // timeout or Shutdown(cancel_futures)).
  bool Cancelled() const { return state_->cancelled(); }
  // Beyond CPython: cancels the work even while it runs. Pending work is
  // cancelled as by Cancel(); running work has its worker killed (and
  // replaced; the pool stays usable) and the future ends cancelled shortly
  // after. Returns false if the future had already finished.
  bool Interrupt() { return state_->Interrupt(); }
  // True while the work is handed to a worker and not yet finished (a worker
  // may hold one queued item beyond the one it runs: that counts as running).
  bool Running() const { return state_->running(); }
  // Finished (with a value or an exception) or cancelled.
  bool Done() const { return state_->done(); }

  // Waits up to `timeout` and returns the value, or throws: the task's
  // exception, CancelledError, BrokenProcessPool; TimeoutError if not done
  // within `timeout` (absl::ZeroDuration() polls).
  template <typename U = T>
  std::enable_if_t<!std::is_void_v<U>, const U&> Get(
      absl::Duration timeout = absl::InfiniteDuration()) const {
    state_->WaitAndRethrow(timeout);
    return state_->value();
  }
  template <typename U = T>
  std::enable_if_t<std::is_void_v<U>> Get(
      absl::Duration timeout = absl::InfiniteDuration()) const {
    state_->WaitAndRethrow(timeout);
  }

  // Waits up to `timeout` and returns the exception the work ended with
  // (null on success) without throwing it. Throws CancelledError if the
  // future was cancelled, TimeoutError if not done in time.
  std::exception_ptr Exception(
      absl::Duration timeout = absl::InfiniteDuration()) const {
    return state_->WaitException(timeout);
  }

  // Calls fn(*this) when the future completes, or at once if it is done.
  void AddDoneCallback(std::function<void(const Future<T>&)> fn) const {
    Future<T> self = *this;
    state_->AddDoneCallback(
        [self, fn = std::move(fn)]() { fn(self); });
  }

  // Futures are equal when they share one state (copies of one Future).
  friend bool operator==(const Future& a, const Future& b) {
    return a.state_ == b.state_;
  }
  friend bool operator!=(const Future& a, const Future& b) {
    return !(a == b);
  }

  // Internal: the shared state.
  explicit Future(std::shared_ptr<internal::State<T>> state)
      : state_(std::move(state)) {}
  const std::shared_ptr<internal::State<T>>& state() const { return state_; }

 private:
  std::shared_ptr<internal::State<T>> state_;
};

}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_FUTURE_H_
