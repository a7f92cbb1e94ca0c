#include "executor/wait.h"

#include "absl/strings/str_cat.h"
#include "core/errors.h"

namespace procpool {
namespace internal {
namespace {

bool Satisfied(ReturnWhen return_when, size_t done, size_t total,
               bool any_failed) {
  if (done == total) return true;
  switch (return_when) {
    case ReturnWhen::kFirstCompleted:
      return done > 0;
    case ReturnWhen::kFirstException:
      return any_failed;
    case ReturnWhen::kAllCompleted:
      return false;
  }
  return false;
}

// Before a waiter sleeps: let the pool (through one of the states' driver)
// take results on this thread until something new completes, for at most
// as long as the pool finds worth it (see Driver::DriveIoWhileWaiting).
void DriveIoBeforeWaiting(Driver* driver, Waiter& waiter, size_t consumed,
                       absl::Time deadline) {
  if (driver == nullptr) return;
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return;
  driver->DriveIoWhileWaiting(
      [&waiter, consumed] {
        return waiter.count.load(std::memory_order_acquire) > consumed;
      },
      left);
}

// The pool of the first of `states` that has one (they usually share it).
template <typename States, typename Get>
std::shared_ptr<Driver> FirstDriver(const States& states, Get state) {
  for (const auto& s : states) {
    if (std::shared_ptr<Driver> driver = state(s)->driver()) return driver;
  }
  return nullptr;
}

}  // namespace

std::vector<bool> WaitStates(const std::vector<StateBase*>& states,
                             absl::Duration timeout, ReturnWhen return_when) {
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<bool> done(states.size(), false);
  absl::flat_hash_map<StateBase*, size_t> index;
  Waiter waiter;
  size_t n_done = 0;
  bool any_failed = false;
  std::vector<size_t> registered;
  for (size_t i = 0; i < states.size(); ++i) {
    index[states[i]] = i;
    if (states[i]->AddWaiter(&waiter)) {
      done[i] = true;
      ++n_done;
      any_failed = any_failed || states[i]->failed();
    } else {
      registered.push_back(i);
    }
  }
  size_t consumed = 0;
  const std::shared_ptr<Driver> driver =
      FirstDriver(registered, [&states](size_t i) { return states[i]; });
  while (!Satisfied(return_when, n_done, states.size(), any_failed)) {
    DriveIoBeforeWaiting(driver.get(), waiter, consumed, deadline);
    std::vector<StateBase*> fresh;
    {
      absl::MutexLock lock(&waiter.mu);
      auto more = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(waiter.mu) {
        return waiter.completed.size() > consumed;
      };
      if (!waiter.mu.AwaitWithDeadline(absl::Condition(&more), deadline)) {
        break;
      }
      fresh.assign(waiter.completed.begin() + consumed,
                   waiter.completed.end());
      consumed = waiter.completed.size();
    }
    for (StateBase* s : fresh) {
      size_t i = index[s];
      if (done[i]) continue;
      done[i] = true;
      ++n_done;
      any_failed = any_failed || s->failed();
    }
  }
  for (size_t i : registered) states[i]->RemoveWaiter(&waiter);
  // A state may have completed after the last wake-up; report it as done.
  for (size_t i = 0; i < states.size(); ++i) {
    if (!done[i] && states[i]->done()) done[i] = true;
  }
  return done;
}

AsCompletedCore::AsCompletedCore(std::vector<StateBase*> states,
                                 absl::Duration timeout)
    : states_(std::move(states)),
      deadline_(absl::Now() + timeout),
      timeout_(timeout) {
  for (size_t i = 0; i < states_.size(); ++i) {
    index_[states_[i]] = static_cast<int>(i);
    if (states_[i]->AddWaiter(&waiter_)) ready_.push_back(static_cast<int>(i));
  }
}

AsCompletedCore::~AsCompletedCore() {
  for (StateBase* s : states_) s->RemoveWaiter(&waiter_);
}

int AsCompletedCore::Next() {
  if (ready_pos_ < ready_.size()) {
    ++yielded_;
    return ready_[ready_pos_++];
  }
  if (yielded_ == states_.size()) return -1;
  if (!driver_looked_up_) {
    driver_looked_up_ = true;
    driver_ = FirstDriver(states_, [](StateBase* s) { return s; });
  }
  DriveIoBeforeWaiting(driver_.get(), waiter_, consumed_, deadline_);
  absl::MutexLock lock(&waiter_.mu);
  auto more = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(waiter_.mu) {
    return waiter_.completed.size() > consumed_;
  };
  if (!waiter_.mu.AwaitWithDeadline(absl::Condition(&more), deadline_)) {
    throw TimeoutError(absl::StrCat(states_.size() - yielded_, " (of ",
                                    states_.size(), ") futures unfinished"));
  }
  ++yielded_;
  return index_[waiter_.completed[consumed_++]];
}

}  // namespace internal
}  // namespace procpool
