// MapResults<R>: the results of ProcessPoolExecutor::Map, in input order.
//
// Example:
//   for (int v : pool.Map(Square, std::vector<int>{1, 2, 3})) ...
//
//   auto results = pool.Map(Pow, pairs, {.chunksize = 64});
//   for (auto it = results.begin(); it != results.end(); ++it) {
//     try {
//       use(*it);                        // rethrows this element's exception
//     } catch (const std::exception& e) {
//       ...                              // later elements still come back
//     }
//   }
//
// A MapResults is a single-pass range used by one thread. Dereferencing waits
// for the element (bounded by MapOptions::timeout, counted from the Map call;
// past it TimeoutError is thrown and the rest is cancelled). Destroying it
// cancels every chunk not yet handed to a worker. With buffersize > 0 it reads
// the input lazily and submits a new chunk as each one is consumed, so it must
// not outlive the executor or (for an lvalue range) the input.
// For a void function the elements are procpool::internal::Unit.
#ifndef PROCPOOL_EXECUTOR_MAP_RESULTS_H_
#define PROCPOOL_EXECUTOR_MAP_RESULTS_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "executor/future.h"

namespace procpool {
namespace internal {

// Produces the chunks of a Map, submitting each as it is asked for.
template <typename R>
class ChunkSource {
 public:
  struct Chunk {
    Future<ChunkResult<R>> future;
    size_t size;
  };
  virtual ~ChunkSource() = default;
  // Reads up to chunksize inputs and submits them; nullopt when the input is
  // exhausted.
  virtual std::optional<Chunk> Next() = 0;
};

}  // namespace internal

template <typename R>
class MapResults {
 public:
  using Element = std::conditional_t<std::is_void_v<R>, internal::Unit, R>;

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Element;
    using difference_type = std::ptrdiff_t;
    using pointer = const Element*;
    using reference = const Element&;

    // Waits for the element; rethrows its exception, or throws TimeoutError
    // (cancelling the rest) once the Map's timeout passed.
    reference operator*() const { return results_->Current(); }
    pointer operator->() const { return &results_->Current(); }
    iterator& operator++() {
      results_->Advance();
      return *this;
    }
    friend bool operator==(const iterator& a, const iterator& b) {
      return a.AtEnd() == b.AtEnd();
    }
    friend bool operator!=(const iterator& a, const iterator& b) {
      return !(a == b);
    }

   private:
    friend class MapResults;
    explicit iterator(MapResults* results) : results_(results) {}
    bool AtEnd() const { return results_ == nullptr || results_->AtEnd(); }
    MapResults* results_;
  };

  // Made by ProcessPoolExecutor::Map: submits every chunk now (buffersize 0)
  // or the first `buffersize` chunks; the deadline is the Map's timeout.
  MapResults(std::unique_ptr<internal::ChunkSource<R>> source,
             absl::Time deadline, int buffersize,
             std::function<void(size_t)> on_progress = nullptr)
      : source_(std::move(source)), deadline_(deadline),
        buffersize_(buffersize), on_progress_(std::move(on_progress)) {
    if (buffersize_ == 0) {
      while (Fill()) {
      }
    } else {
      for (int i = 0; i < buffersize_ && Fill(); ++i) {
      }
    }
  }
  MapResults(MapResults&&) = default;
  MapResults& operator=(MapResults&&) = default;
  ~MapResults() { CancelRest(); }

  // The range is single-pass: begin() continues where the last iteration
  // stopped; end() is reached once every element was consumed (or the Map
  // timed out).
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(nullptr); }

  // Collects every element; rethrows the first failure.
  std::vector<Element> ToVector() {
    std::vector<Element> out;
    for (const Element& e : *this) out.push_back(e);
    return out;
  }

 private:
  bool Fill() {
    if (source_ == nullptr) return false;
    std::optional<typename internal::ChunkSource<R>::Chunk> chunk =
        source_->Next();
    if (!chunk) {
      source_.reset();
      return false;
    }
    chunks_.push_back(std::move(*chunk));
    return true;
  }

  bool AtEnd() const { return chunks_.empty(); }

  const Element& Current() {
    if (elements_ == nullptr) {
      // Once per chunk: the clock, the wait and the future's lock cost more
      // than handing out one small element.
      const auto& chunk = chunks_.front();
      // The Map's own deadline, as opposed to a chunk that failed with a
      // TimeoutError of its own (MapOptions::chunk_timeout).
      if (!chunk.future.state()->WaitDone(deadline_ - absl::Now())) {
        CancelRest();
        throw TimeoutError("Map results not done within its timeout");
      }
      elements_ = &chunk.future.Get();
    }
    const internal::ChunkElement<R>& e = (*elements_)[pos_];
    if (e.error) std::rethrow_exception(e.error);
    return *e.value;
  }

  void Advance() {
    if (chunks_.empty()) return;
    ++consumed_;
    if (on_progress_) on_progress_(consumed_);
    if (++pos_ < chunks_.front().size) return;
    pos_ = 0;
    elements_ = nullptr;
    chunks_.pop_front();
    if (buffersize_ > 0) Fill();
  }

  void CancelRest() {
    for (auto& c : chunks_) c.future.Cancel();
    elements_ = nullptr;
    chunks_.clear();
    source_.reset();
  }

  std::unique_ptr<internal::ChunkSource<R>> source_;
  std::deque<typename internal::ChunkSource<R>::Chunk> chunks_;
  size_t pos_ = 0;
  // The front chunk's results once it is done (null before).
  const internal::ChunkResult<R>* elements_ = nullptr;
  absl::Time deadline_;
  int buffersize_;
  std::function<void(size_t)> on_progress_;
  size_t consumed_ = 0;
};

}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_MAP_RESULTS_H_
