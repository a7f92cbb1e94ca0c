// Wait() and AsCompleted(): waiting on several futures at once, as
// concurrent.futures.wait and as_completed do.
//
// Example:
//   std::vector<procpool::Future<int>> fs = ...;
//   auto [done, not_done] = procpool::Wait(fs, absl::Seconds(1),
//                                          procpool::ReturnWhen::kFirstCompleted);
//   for (const procpool::Future<int>& f : procpool::AsCompleted(fs)) {
//     std::cout << f.Get() << "\n";
//   }
//
// Duplicates in the input count once. Both are thread-safe; an AsCompleted
// range is used by one thread.
#ifndef PROCPOOL_EXECUTOR_WAIT_H_
#define PROCPOOL_EXECUTOR_WAIT_H_

#include <cstddef>
#include <iterator>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "executor/future.h"

namespace procpool {

enum class ReturnWhen { kFirstCompleted, kFirstException, kAllCompleted };

template <typename T>
struct DoneAndNotDone {
  std::vector<Future<T>> done, not_done;
};

namespace internal {

// Waits until `return_when` holds for `states` (unique) or `timeout` passes;
// returns done[i] for each state. Never throws on timeout.
std::vector<bool> WaitStates(const std::vector<StateBase*>& states,
                             absl::Duration timeout, ReturnWhen return_when);

// Yields indices into `states` (unique) as they complete: those already done
// first, in order, then in completion order.
class AsCompletedCore {
 public:
  AsCompletedCore(std::vector<StateBase*> states, absl::Duration timeout);
  ~AsCompletedCore();
  AsCompletedCore(const AsCompletedCore&) = delete;
  AsCompletedCore& operator=(const AsCompletedCore&) = delete;

  // The next index, or -1 when every state was yielded. Throws TimeoutError
  // "N (of M) futures unfinished" once the deadline passes.
  int Next();

 private:
  std::vector<StateBase*> states_;
  absl::Time deadline_;
  absl::Duration timeout_;
  Waiter waiter_;
  std::vector<int> ready_;   // already-done indices, yielded first
  size_t ready_pos_ = 0;
  size_t consumed_ = 0;      // entries of waiter_.completed taken
  // One of the states' pool, which Next() lets poll before it sleeps.
  std::shared_ptr<Driver> driver_;
  bool driver_looked_up_ = false;
  size_t yielded_ = 0;
  absl::flat_hash_map<StateBase*, int> index_;
};

// Unique futures of `fs`, in first-seen order.
template <typename T>
std::vector<Future<T>> Unique(const std::vector<Future<T>>& fs) {
  std::vector<Future<T>> unique;
  absl::flat_hash_map<const StateBase*, bool> seen;
  for (const Future<T>& f : fs) {
    if (seen.emplace(f.state().get(), true).second) unique.push_back(f);
  }
  return unique;
}

}  // namespace internal

// Waits for `fs` per `return_when` (kFirstException acts as kAllCompleted when
// nothing fails; futures already done count at once) or until `timeout`, and
// returns the futures split into done and not done. Never throws on timeout.
template <typename T>
DoneAndNotDone<T> Wait(const std::vector<Future<T>>& fs,
                       absl::Duration timeout = absl::InfiniteDuration(),
                       ReturnWhen return_when = ReturnWhen::kAllCompleted) {
  std::vector<Future<T>> unique = internal::Unique(fs);
  std::vector<internal::StateBase*> states;
  states.reserve(unique.size());
  for (const Future<T>& f : unique) states.push_back(f.state().get());
  std::vector<bool> done = internal::WaitStates(states, timeout, return_when);
  DoneAndNotDone<T> out;
  for (size_t i = 0; i < unique.size(); ++i) {
    (done[i] ? out.done : out.not_done).push_back(unique[i]);
  }
  return out;
}

// A single-pass range over futures in completion order (see AsCompleted).
template <typename T>
class AsCompletedRange {
 public:
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Future<T>;
    using difference_type = std::ptrdiff_t;
    using pointer = const Future<T>*;
    using reference = const Future<T>&;

    reference operator*() const { return range_->futures_[index_]; }
    pointer operator->() const { return &range_->futures_[index_]; }
    iterator& operator++() {
      index_ = range_->core_->Next();
      return *this;
    }
    friend bool operator==(const iterator& a, const iterator& b) {
      return a.index_ == b.index_;
    }
    friend bool operator!=(const iterator& a, const iterator& b) {
      return !(a == b);
    }

   private:
    friend class AsCompletedRange;
    iterator(AsCompletedRange* range, int index)
        : range_(range), index_(index) {}
    AsCompletedRange* range_;
    int index_;
  };

  AsCompletedRange(const std::vector<Future<T>>& fs, absl::Duration timeout)
      : futures_(internal::Unique(fs)) {
    std::vector<internal::StateBase*> states;
    for (const Future<T>& f : futures_) states.push_back(f.state().get());
    core_ = std::make_unique<internal::AsCompletedCore>(std::move(states),
                                                        timeout);
  }

  // Starts the iteration (call once): waits for the first future.
  iterator begin() { return iterator(this, core_->Next()); }
  iterator end() { return iterator(this, -1); }

 private:
  std::vector<Future<T>> futures_;
  std::unique_ptr<internal::AsCompletedCore> core_;
};

// Yields each of `fs` as it completes: those already done first, then the rest
// in completion order, each once. Iterating past `timeout` (counted from this
// call) throws TimeoutError whose what() is "N (of M) futures unfinished".
template <typename T>
AsCompletedRange<T> AsCompleted(
    const std::vector<Future<T>>& fs,
    absl::Duration timeout = absl::InfiniteDuration()) {
  return AsCompletedRange<T>(fs, timeout);
}

}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_WAIT_H_
