// The tasks the benchmark runs in its workers (tools/bench is its own worker
// binary: these are registered with PROCPOOL_TASK in tasks.cc).
//
// Each mirrors a function of tools/bench_python.py, so that both sides measure
// the same work: a no-op, the identity on an int, an echo of a string, the
// worker's pid, and a "busy" task that announces itself and then sleeps.
#ifndef PROCPOOL_TOOLS_BENCH_TASKS_H_
#define PROCPOOL_TOOLS_BENCH_TASKS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "executor/process_pool_executor.h"

namespace procpool {
namespace bench {

// Does nothing (Python: `def noop(): pass`).
void Noop();

// Returns x (Python: `def ident(x): return x`), for Map.
int Identity(int x);

// Returns s: the payload travels out and back.
std::string Echo(const std::string& s);

// The worker's pid.
int GetPid();

// Creates the empty file DIR/INDEX-PID (so the parent knows that the task
// runs, and in which process), then sleeps `ms` milliseconds. Returns the pid.
int BusyAnnounce(const std::string& dir, int index, int ms);

// Returns xs (a shared array: only its handle travels, both ways).
SharedArray<double> EchoArray(SharedArray<double> xs);

// y[i] = sqrt(x[i]) * 0.5 + 1 for i in slice `part` of `parts` of [0, n).
void TransformSlice(const double* x, double* y, size_t n, int64_t part,
                    int64_t parts);
// TransformSlice of x into y (an output array); returns the slice's length.
int64_t TransformTask(SharedArray<double> x, SharedArray<double> y,
                      int64_t part, int64_t parts);

}  // namespace bench
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_BENCH_TASKS_H_
