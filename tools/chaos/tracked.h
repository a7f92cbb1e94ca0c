// How a chaos wave follows its futures: each Submit's future is wrapped in a
// Tracked that knows the value to expect, and each Map is consumed on a thread
// of its own (MapRun) that checks every element. Both note the first
// BrokenProcessPool of the wave in Events.
//
// Example:
//   auto events = std::make_shared<Events>();
//   std::unique_ptr<Tracked> t = TrackValue(pool.Submit(tt::Pow, 2, 8), 256,
//                                           events);
//   ... later, once t->Done():
//   std::string detail;
//   Outcome o = t->Classify(&detail);
//
// Thread safety: Events is thread-safe (done callbacks run on whichever thread
// completed the future: the pool's manager thread or a caller thread that was
// doing the pool's I/O). A Tracked is used by the wave's thread; a MapRun's
// counters are read by others only through its atomics until its thread is
// joined.
#ifndef PROCPOOL_TOOLS_CHAOS_TRACKED_H_
#define PROCPOOL_TOOLS_CHAOS_TRACKED_H_

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "executor/process_pool_executor.h"
#include "tools/chaos/outcome.h"
#include "tools/chaos/proc.h"

namespace procpool {
namespace chaos {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

// What all futures of a wave share: when BrokenProcessPool was first seen.
struct Events {
  std::atomic<int64_t> first_broken_ns{kNever};
  void NoteBroken();
};

bool IsBroken(const std::exception_ptr& e);

// Classifies a failed future's exception. `expect_error`: the task throws
// std::invalid_argument by design. Sets `*detail` for kOther.
Outcome ClassifyError(const std::exception_ptr& e, bool expect_error,
                      std::string* detail);

class Tracked {
 public:
  virtual ~Tracked() = default;
  virtual bool Done() const = 0;
  // The outcome now (kUnresolved if not done); sets `*detail` for bugs.
  virtual Outcome Classify(std::string* detail) const = 0;
};

template <typename T>
class TrackedFuture final : public Tracked {
 public:
  // `matches` checks a successful future's value; with `expect_error` the
  // task must fail with std::invalid_argument instead.
  TrackedFuture(Future<T> future, std::function<bool(const Future<T>&)> matches,
                bool expect_error, std::shared_ptr<Events> events)
      : future_(std::move(future)),
        matches_(std::move(matches)),
        expect_error_(expect_error) {
    future_.AddDoneCallback([events](const Future<T>& f) {
      if (!f.Cancelled() && IsBroken(f.Exception(absl::ZeroDuration()))) {
        events->NoteBroken();
      }
    });
  }

  bool Done() const override { return future_.Done(); }

  Outcome Classify(std::string* detail) const override {
    if (!future_.Done()) return Outcome::kUnresolved;
    if (future_.Cancelled()) return Outcome::kCancelled;
    std::exception_ptr e = future_.Exception(absl::ZeroDuration());
    if (e) return ClassifyError(e, expect_error_, detail);
    if (expect_error_) {
      *detail = "a task that throws returned a value";
      return Outcome::kWrong;
    }
    if (!matches_(future_)) {
      *detail = "a future returned the wrong value";
      return Outcome::kWrong;
    }
    return Outcome::kCompleted;
  }

 private:
  Future<T> future_;
  std::function<bool(const Future<T>&)> matches_;
  bool expect_error_;
};

// A future that must come back with `expected`.
template <typename T>
std::unique_ptr<Tracked> TrackValue(Future<T> f, T expected,
                                    std::shared_ptr<Events> events) {
  return std::make_unique<TrackedFuture<T>>(
      std::move(f),
      [expected = std::move(expected)](const Future<T>& g) {
        return g.Get(absl::ZeroDuration()) == expected;
      },
      /*expect_error=*/false, std::move(events));
}

// A future that must succeed (void), or fail with std::invalid_argument.
template <typename T>
std::unique_ptr<Tracked> TrackNoValue(Future<T> f, bool expect_error,
                                      std::shared_ptr<Events> events) {
  return std::make_unique<TrackedFuture<T>>(
      std::move(f), [](const Future<T>&) { return true; }, expect_error,
      std::move(events));
}

// A Map consumed on its own thread; the wave reads `observed` and
// `finished` while it runs, and the rest once the thread is joined.
struct MapRun {
  int64_t size = 0;
  std::thread thread;
  std::atomic<int64_t> observed{0};  // elements whose outcome is known
  std::atomic<bool> finished{false};

  // After join.
  WaveResult counts;       // outcomes of the observed elements
  int64_t timed_out = 0;   // left when the Map's own timeout passed
  int64_t never_sent = 0;  // elements whose chunk Submit refused
  std::vector<std::string> details;

  ~MapRun() {
    if (thread.joinable()) thread.join();
  }
};

// Starts a thread that reads `results` in order. `expected(i, &value)`
// returns false if element i's task throws std::invalid_argument by design,
// otherwise sets the value element i must have.
template <typename R>
void ConsumeMap(MapResults<R> results, MapRun* run,
                std::function<bool(size_t, R*)> expected,
                std::shared_ptr<Events> events) {
  run->thread = std::thread([results = std::move(results), run,
                             expected = std::move(expected),
                             events = std::move(events)]() mutable {
    size_t i = 0;
    bool timed_out = false;
    auto it = results.begin();
    while (it != results.end()) {
      R want{};
      const bool want_value = expected(i, &want);
      Outcome outcome;
      std::string detail;
      try {
        const R& got = *it;
        outcome =
            want_value && got == want ? Outcome::kCompleted : Outcome::kWrong;
        if (outcome == Outcome::kWrong) {
          detail = absl::StrCat("Map element ", i, " has the wrong value");
        }
      } catch (const TimeoutError&) {  // the Map's timeout; the rest cancelled
        timed_out = true;
        break;
      } catch (...) {
        std::exception_ptr e = std::current_exception();
        if (IsBroken(e)) events->NoteBroken();
        outcome = ClassifyError(e, !want_value, &detail);
      }
      run->counts.Add(outcome);
      if (!detail.empty()) run->details.push_back(detail);
      run->observed.store(static_cast<int64_t>(++i));
      try {
        ++it;  // with a buffersize, this submits the next chunk
      } catch (const BrokenProcessPool&) {
        events->NoteBroken();  // that chunk is lost; the queued ones follow
      } catch (const ShutdownError&) {
      }
    }
    const int64_t left = run->size - static_cast<int64_t>(i);
    if (timed_out) {
      run->timed_out = left;
    } else {
      run->never_sent = left;
    }
    run->finished.store(true);
  });
}

}  // namespace chaos
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_CHAOS_TRACKED_H_
