// The benchmark's shared-array workloads (issue 15 point 3): big arrays that
// cross to workers by reference. Mirrored in tools/bench_python.py with numpy
// (multiprocessing.shared_memory, and the pickled way); keep the two in step.
//
//   array_roundtrip_64MiB_us, array_roundtrip_1GiB_us
//       a SharedArray<double> of that size into a task that returns it:
//       median time of one Submit + Get (the array is filled once, before)
//   transform_1GiB_ms
//       y[i] = sqrt(x[i]) * 0.5 + 1 over 1 GiB of doubles, split into one
//       slice per worker, each task writing its slice of an output array
//       (SharedArrayMode::kOutput): median time of the whole job
//   transform_1GiB_threads_ms
//       the same work on as many threads in this process, no pool: what the
//       pool's split transform is measured against
//
// Example:
//   std::vector<Figure> f = RunArrays(config, pool, progress);
#ifndef PROCPOOL_TOOLS_BENCH_ARRAY_WORKLOADS_H_
#define PROCPOOL_TOOLS_BENCH_ARRAY_WORKLOADS_H_

#include <vector>

#include "executor/process_pool_executor.h"
#include "tools/bench/report.h"
#include "tools/bench/workloads.h"

namespace procpool {
namespace bench {

// The figures above, on `pool` (whose transport must carry descriptors for
// the arrays to go by reference: shm, unix; over capnp they are copied and
// the transform is refused, so it reports the round trips only).
std::vector<Figure> RunArrays(const Config& config, ProcessPoolExecutor& pool,
                              Progress& progress);

}  // namespace bench
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_BENCH_ARRAY_WORKLOADS_H_
