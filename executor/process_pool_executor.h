// procpool: Python's concurrent.futures.ProcessPoolExecutor for C++.
//
// A pool of worker processes runs registered C++ functions and hands back
// futures. A worker that crashes never takes the caller down: its futures fail
// with BrokenProcessPool, which says which worker died, how, and what it was
// running.
//
// Example:
//   int Square(int x) { return x * x; }
//   PROCPOOL_TASK(Square);
//
//   int main(int argc, char** argv) {
//     procpool::Init(argc, argv);          // workers serve from here
//     absl::ParseCommandLine(argc, argv);  // optional: --procpool_* flags
//     procpool::ProcessPoolExecutor pool;
//     procpool::Future<int> f = pool.Submit(Square, 7);
//     std::cout << f.Get() << "\n";                         // 49
//     for (int v : pool.Map(Square, std::vector<int>{1, 2, 3})) ...
//   }
//
// Data flow, threads and who owns what: see executor/internal/pool.h (the
// diagram) and docs/DESIGN.md.
//
// Thread safety: every method of ProcessPoolExecutor may be called from any
// thread concurrently. Futures are thread-safe; a MapResults or AsCompleted
// range is used by one thread.
#ifndef PROCPOOL_EXECUTOR_PROCESS_POOL_EXECUTOR_H_
#define PROCPOOL_EXECUTOR_PROCESS_POOL_EXECUTOR_H_

#include <sys/types.h>

#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/exception_registry.h"
#include "core/task.h"
#include "executor/future.h"
#include "executor/internal/work_item.h"
#include "executor/map_results.h"
#include "executor/options.h"
#include "executor/wait.h"
#include "shared_array/shared_array.h"
#include "shared_array/shared_array_codec.h"
#include "shared_array/transfer.h"
#include "worker/init.h"

namespace procpool {
namespace internal {
class Pool;
}  // namespace internal

class ProcessPoolExecutor {
 public:
  // Validates `options` (std::invalid_argument saying what is wrong: see
  // Options) and starts nothing yet: workers start on demand.
  explicit ProcessPoolExecutor(Options options = {});
  // Shutdown(/*wait=*/true).
  ~ProcessPoolExecutor();
  ProcessPoolExecutor(const ProcessPoolExecutor&) = delete;
  ProcessPoolExecutor& operator=(const ProcessPoolExecutor&) = delete;

  // Schedules fn(args...) and returns its future. The arguments are converted
  // to fn's parameter types and encoded now. fn must be registered
  // (PROCPOOL_TASK): otherwise procpool::Error saying how. Throws
  // BrokenProcessPool if the pool is broken, ShutdownError after Shutdown().
  template <typename R, typename... P, typename... A>
  Future<R> Submit(R (*fn)(P...), A&&... args) {
    return SubmitWith(TaskOptions(), fn, std::forward<A>(args)...);
  }

  // Beyond CPython: Submit with per-task options (see TaskOptions).
  template <typename R, typename... P, typename... A>
  Future<R> SubmitWith(const TaskOptions& options, R (*fn)(P...),
                       A&&... args) {
    const internal::TaskInfo& task =
        FindTaskOrThrow(reinterpret_cast<const void*>(fn));
    auto state = std::make_shared<internal::State<R>>();
    internal::WorkItem item;
    item.task = task.name;
    {
      ArrayTransfer arrays(arrays_way_);
      arrays.CopyOutputsBack();
      ArrayTransferScope scope(&arrays);
      item.args.push_back(internal::EncodeArgs(fn, std::forward<A>(args)...));
      item.arrays = arrays.TakeOutgoing();
      item.output_copies = arrays.TakeOutputCopies();
    }
    item.state = state;
    item.timeout = options.timeout;
    SubmitItem(std::move(item));
    return Future<R>(std::move(state));
  }

  // Calls fn on each element of `inputs` (for fn with N > 1 parameters each
  // element is a std::tuple or std::pair of N values) in chunks of
  // options.chunksize and returns the results in input order. chunksize < 1
  // or buffersize < 0: std::invalid_argument. See MapResults.
  template <typename R, typename... P, typename Range>
  MapResults<R> Map(R (*fn)(P...), Range&& inputs, MapOptions options = {}) {
    if (options.chunksize < 1) {
      throw std::invalid_argument("Map: chunksize must be >= 1");
    }
    if (options.buffersize < 0) {
      throw std::invalid_argument("Map: buffersize must be >= 0");
    }
    const absl::Time deadline = absl::Now() + options.timeout;
    const internal::TaskInfo& task =
        FindTaskOrThrow(reinterpret_cast<const void*>(fn));
    auto source = std::make_unique<Source<Range, R, P...>>(
        this, fn, task.name, std::forward<Range>(inputs), options.chunksize,
        options.chunk_timeout);
    return MapResults<R>(std::move(source), deadline, options.buffersize,
                         std::move(options.on_progress));
  }

  // Stops taking work: later Submit/Map throw ShutdownError. With
  // cancel_futures, work not yet handed to a worker is cancelled. With wait,
  // returns once every other future is done and all workers are reaped;
  // without, returns at once and the work still completes. Idempotent.
  void Shutdown(bool wait = true, bool cancel_futures = false);

  // Shutdown(false, true), then SIGTERM (SIGKILL) to every live worker: their
  // running tasks never finish and fail with BrokenProcessPool. Harmless on a
  // pool with no workers or a broken pool.
  void TerminateWorkers();
  void KillWorkers();

  // Extension: pids of the live worker processes.
  std::vector<pid_t> WorkerPids() const;

  // Extension: per-worker statistics, and how many workers the pool has
  // replaced or recycled so far.
  std::vector<WorkerStats> Stats() const;

 private:
  template <typename Range, typename R, typename... P>
  class Source;

  static const internal::TaskInfo& FindTaskOrThrow(const void* fn);
  void SubmitItem(internal::WorkItem item);

  std::unique_ptr<internal::Pool> pool_;
  // How shared arrays in arguments travel: by reference where every worker's
  // channel carries descriptors (unix, shm), else by value (capnp, remote
  // workers; an output array's changes come back with the result).
  // Constant after construction.
  const ArrayTransfer::Way arrays_way_;
};

// Reads a Map's input chunk by chunk and submits each chunk.
template <typename Range, typename R, typename... P>
class ProcessPoolExecutor::Source final : public internal::ChunkSource<R> {
 public:
  using Stored = std::conditional_t<std::is_lvalue_reference_v<Range>, Range,
                                    std::decay_t<Range>>;
  using Iterator = decltype(std::begin(std::declval<Stored&>()));
  using Sentinel = decltype(std::end(std::declval<Stored&>()));
  using Chunk = typename internal::ChunkSource<R>::Chunk;

  Source(ProcessPoolExecutor* executor, R (*fn)(P...), std::string task,
         Range&& range, int chunksize, absl::Duration chunk_timeout)
      : executor_(executor),
        fn_(fn),
        task_(std::move(task)),
        range_(std::forward<Range>(range)),
        it_(std::begin(range_)),
        end_(std::end(range_)),
        chunksize_(chunksize),
        chunk_timeout_(chunk_timeout) {}

  // A chunk of small elements is encoded into one buffer (WorkItem::
  // packed_args), each element appended where the codec allows it: no
  // string per element from here to the worker (executor/internal/pool.h,
  // "Map's small elements").
  std::optional<Chunk> Next() override {
    internal::WorkItem item;
    item.packed_args.ends.reserve(static_cast<size_t>(chunksize_));
    // The chunk's shared arrays, indexed across all its elements.
    ArrayTransfer arrays(executor_->arrays_way_);
    arrays.CopyOutputsBack();
    ArrayTransferScope scope(&arrays);
    if constexpr (kLoneString) {
      for (int i = 0; i < chunksize_ && it_ != end_; ++i, ++it_) {
        internal::AddElement(&item, Encode(*it_));
      }
    } else {
      // One writer for the chunk: no string per element.
      Writer w;
      w.Reserve(last_chunk_bytes_);
      bool packed = true;
      for (int i = 0; i < chunksize_ && it_ != end_; ++i, ++it_) {
        if (!packed) {
          item.args.push_back(Encode(*it_));
          continue;
        }
        const size_t begin = w.size();
        Append(*it_, w);
        if (w.size() - begin < internal::kBigElementBytes) {
          item.packed_args.ends.push_back(static_cast<uint32_t>(w.size()));
          continue;
        }
        item.packed_args.bytes = w.Release();
        internal::EndAppendedElement(&item, begin);
        packed = false;
      }
      if (packed) item.packed_args.bytes = w.Release();
    }
    item.arrays = arrays.TakeOutgoing();
    item.output_copies = arrays.TakeOutputCopies();
    const size_t n = item.size();
    if (n == 0) return std::nullopt;
    last_chunk_bytes_ = item.packed_args.bytes.size();
    auto state = std::make_shared<internal::State<internal::ChunkResult<R>>>();
    item.task = task_;
    item.state = state;
    item.timeout = chunk_timeout_;
    executor_->SubmitItem(std::move(item));
    return Chunk{Future<internal::ChunkResult<R>>(std::move(state)), n};
  }

 private:
  static constexpr bool kLoneString =
      kIsLoneString<std::tuple<std::decay_t<P>...>>;

  // Appends the encoding of `element` to `w` (not for kLoneString).
  template <typename E>
  void Append(E&& element, Writer& w) {
    if constexpr (sizeof...(P) == 1) {
      internal::AppendArgs(w, fn_, std::forward<E>(element));
    } else {
      std::apply(
          [this, &w](auto&&... xs) {
            internal::AppendArgs(w, fn_, std::forward<decltype(xs)>(xs)...);
          },
          std::forward<E>(element));
    }
  }

  // The encoding of `element` as a string of its own.
  template <typename E>
  std::string Encode(E&& element) {
    if constexpr (kLoneString) {
      return internal::EncodeArgs(fn_, std::forward<E>(element));
    } else {
      Writer w;
      Append(std::forward<E>(element), w);
      return w.Release();
    }
  }

  ProcessPoolExecutor* executor_;
  R (*fn_)(P...);
  std::string task_;
  Stored range_;
  Iterator it_;
  Sentinel end_;
  int chunksize_;
  absl::Duration chunk_timeout_;
  size_t last_chunk_bytes_ = 0;  // the last chunk's packed bytes
};

}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_PROCESS_POOL_EXECUTOR_H_
