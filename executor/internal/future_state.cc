#include "executor/internal/future_state.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/errors.h"
#include "glog/logging.h"

namespace procpool {
namespace internal {

void Waiter::Notify(StateBase* state) {
  absl::MutexLock lock(&mu);
  completed.push_back(state);
  count.store(completed.size(), std::memory_order_release);
}

std::shared_ptr<Driver> StateBase::driver() const {
  absl::MutexLock lock(&mu_);
  return driver_;
}

bool StateBase::Cancel() {
  {
    absl::MutexLock lock(&mu_);
    if (phase_ == Phase::kCancelled) return true;
    if (phase_ != Phase::kPending) return false;
    phase_ = Phase::kCancelled;
    done_flag_.store(true, std::memory_order_release);
  }
  RunCompletion();
  return true;
}

bool StateBase::cancelled() const {
  absl::MutexLock lock(&mu_);
  return phase_ == Phase::kCancelled;
}

bool StateBase::running() const {
  absl::MutexLock lock(&mu_);
  return phase_ == Phase::kRunning;
}

bool StateBase::done() const {
  absl::MutexLock lock(&mu_);
  return DoneLocked();
}

bool StateBase::failed() const {
  absl::MutexLock lock(&mu_);
  return phase_ == Phase::kFinished && error_ != nullptr;
}

bool StateBase::WaitDone(absl::Duration timeout) const {
  if (done_fast()) return true;
  std::shared_ptr<Driver> driver;
  {
    absl::MutexLock lock(&mu_);
    if (DoneLocked()) return true;
    driver = driver_;
  }
  if (driver != nullptr && timeout > absl::ZeroDuration()) {
    const absl::Time start = absl::Now();
    driver->DriveIoWhileWaiting([this] { return done_fast(); }, timeout);
    if (done_fast()) return true;
    timeout -= absl::Now() - start;
  }
  absl::MutexLock lock(&mu_);
  auto is_done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return DoneLocked();
  };
  return mu_.AwaitWithTimeout(absl::Condition(&is_done), timeout);
}

void ThrowFutureTimeout(absl::Duration timeout) {
  throw TimeoutError(absl::StrCat("future not done within ",
                                  absl::FormatDuration(timeout)));
}

std::exception_ptr StateBase::WaitException(absl::Duration timeout) const {
  if (!WaitDone(timeout)) ThrowFutureTimeout(timeout);
  absl::MutexLock lock(&mu_);
  if (phase_ == Phase::kCancelled) throw CancelledError("future was cancelled");
  return error_;
}

void StateBase::WaitAndRethrow(absl::Duration timeout) const {
  std::exception_ptr error = WaitException(timeout);
  if (error) std::rethrow_exception(error);
}

void StateBase::AddDoneCallback(std::function<void()> fn) {
  {
    absl::MutexLock lock(&mu_);
    if (!DoneLocked()) {
      callbacks_.push_back(std::move(fn));
      return;
    }
  }
  try {
    fn();
  } catch (const std::exception& e) {
    LOG(ERROR) << "exception calling callback for future: " << e.what();
  } catch (...) {
    LOG(ERROR) << "exception calling callback for future (not a std::exception)";
  }
}

bool StateBase::SetRunningOrNotifyCancel() {
  absl::MutexLock lock(&mu_);
  if (phase_ == Phase::kCancelled) return false;
  CHECK(phase_ == Phase::kPending) << "future handed out twice";
  phase_ = Phase::kRunning;
  return true;
}

void StateBase::SetException(std::exception_ptr error) {
  if (!TrySetException(std::move(error))) {
    throw InvalidStateError("future is already done; it cannot be set twice");
  }
}

bool StateBase::TrySetException(std::exception_ptr error) {
  {
    absl::MutexLock lock(&mu_);
    if (DoneLocked()) return false;
    error_ = std::move(error);
    phase_ = Phase::kFinished;
    done_flag_.store(true, std::memory_order_release);
  }
  RunCompletion();
  return true;
}

void StateBase::FinishWith(const std::function<void()>& store) {
  {
    absl::MutexLock lock(&mu_);
    if (DoneLocked()) {
      throw InvalidStateError("future is already done; it cannot be set twice");
    }
    store();
    phase_ = Phase::kFinished;
    done_flag_.store(true, std::memory_order_release);
  }
  RunCompletion();
}

void StateBase::RunCompletion() {
  std::vector<std::function<void()>> callbacks;
  {
    absl::MutexLock lock(&mu_);
    callbacks.swap(callbacks_);
    // Waiters are notified under mu_ so that RemoveWaiter() (which takes mu_)
    // guarantees no notification reaches a waiter after it returns.
    for (Waiter* w : waiters_) w->Notify(this);
    waiters_.clear();
  }
  for (auto& fn : callbacks) {
    try {
      fn();
    } catch (const std::exception& e) {
      LOG(ERROR) << "exception calling callback for future: " << e.what();
    } catch (...) {
      LOG(ERROR) << "exception calling callback for future (not a std::exception)";
    }
  }
}

bool StateBase::ForceCancel() {
  {
    absl::MutexLock lock(&mu_);
    if (DoneLocked()) return false;
    phase_ = Phase::kCancelled;
    done_flag_.store(true, std::memory_order_release);
  }
  RunCompletion();
  return true;
}

bool StateBase::Interrupt() {
  if (Cancel()) return true;
  std::shared_ptr<Driver> driver;
  {
    absl::MutexLock lock(&mu_);
    if (DoneLocked()) return phase_ == Phase::kCancelled;
    driver = driver_;
  }
  if (driver == nullptr) return false;
  driver->Interrupt(this);
  return true;
}

void StateBase::SetDriver(std::shared_ptr<Driver> driver) {
  absl::MutexLock lock(&mu_);
  driver_ = std::move(driver);
}

bool StateBase::AddWaiter(Waiter* w) {
  absl::MutexLock lock(&mu_);
  if (DoneLocked()) return true;
  waiters_.push_back(w);
  return false;
}

void StateBase::RemoveWaiter(Waiter* w) {
  absl::MutexLock lock(&mu_);
  waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), w),
                 waiters_.end());
}

}  // namespace internal
}  // namespace procpool
