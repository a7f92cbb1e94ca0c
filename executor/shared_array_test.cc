// Shared arrays through the pool (issue 15 points 1-2): by reference over
// shm and unix (the memfd beside the frame, mapped once per worker, sealed
// arrays read-only in the workers), by value over capnp (an output array's
// changes come back with the result); the same task code either way.
#include <dirent.h>
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "executor/testdata/executor_test_base.h"
#include "shared_array/mapping_cache.h"
#include "worker/child/worker_loop.h"

namespace procpool {
namespace sa_tasks {

double Sum(SharedArray<double> xs) {
  double total = 0;
  for (double x : xs) total += x;
  return total;
}

// A new array, made in the worker.
SharedArray<double> Scale(SharedArray<double> xs, double k) {
  SharedArray<double> out(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) out[i] = k * xs[i];
  return out;
}

// Writes 2 * in[j] into out[j] for j in slice `part` of `parts`.
int64_t TwiceSlice(SharedArray<double> in, SharedArray<double> out,
                   int64_t part, int64_t parts) {
  const size_t n = in.size();
  const size_t begin = n * part / parts, end = n * (part + 1) / parts;
  for (size_t j = begin; j < end; ++j) out[j] = 2 * in[j];
  return static_cast<int64_t>(end - begin);
}

// Where the worker sees the array, and which worker.
std::tuple<int64_t, int64_t> WhereMapped(SharedArray<double> xs) {
  return {static_cast<int64_t>(reinterpret_cast<uintptr_t>(xs.data())),
          static_cast<int64_t>(getpid())};
}

// errno of making the array's pages writable (0: it could).
int MakeWritable(SharedArray<double> xs) {
  const long page = sysconf(_SC_PAGESIZE);
  void* start = reinterpret_cast<void*>(
      reinterpret_cast<uintptr_t>(xs.data()) & ~static_cast<uintptr_t>(page - 1));
  return mprotect(start, static_cast<size_t>(page), PROT_READ | PROT_WRITE) == 0
             ? 0
             : errno;
}

// Writes into the array it was given (SIGSEGV where it is sealed).
double WriteInto(SharedArray<double> xs) {
  xs.data()[0] = -1;
  return xs[0];
}

// The worker's arrays: (memfds that came to it so far, entries its cache
// holds now).
std::tuple<int64_t, int64_t> CacheState() {
  return {static_cast<int64_t>(WorkerDescriptorsReceived()),
          static_cast<int64_t>(WorkerArrayCache().entries())};
}
SharedArray<double> Echo(SharedArray<double> xs) { return xs; }

// Adds 3 * j + 1 to out[j] for every j = k (mod stride): slices that
// interleave, element by element, with the other k's.
int64_t AddStrided(SharedArray<double> out, int64_t k, int64_t stride) {
  int64_t n = 0;
  for (size_t j = static_cast<size_t>(k); j < out.size();
       j += static_cast<size_t>(stride), ++n) {
    out[j] += 3.0 * j + 1;
  }
  return n;
}
}  // namespace sa_tasks
}  // namespace procpool

PROCPOOL_TASK(procpool::sa_tasks::Sum);
PROCPOOL_TASK(procpool::sa_tasks::CacheState);
PROCPOOL_TASK(procpool::sa_tasks::Echo);
PROCPOOL_TASK(procpool::sa_tasks::Scale);
PROCPOOL_TASK(procpool::sa_tasks::TwiceSlice);
PROCPOOL_TASK(procpool::sa_tasks::WhereMapped);
PROCPOOL_TASK(procpool::sa_tasks::MakeWritable);
PROCPOOL_TASK(procpool::sa_tasks::WriteInto);
PROCPOOL_TASK(procpool::sa_tasks::AddStrided);

namespace procpool {
namespace testing {
namespace {

namespace sa = ::procpool::sa_tasks;

int FdCount() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n;
}

// Mappings of shared arrays in process `pid`.
int ArrayMappings(pid_t pid) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  int n = 0;
  while (std::getline(maps, line)) {
    if (line.find("/memfd:procpool-array") != std::string::npos) ++n;
  }
  return n;
}

class SharedArrayTest : public ExecutorTest {
 protected:
  bool ByReference() const { return GetParam().transport != "capnp"; }
};

SharedArray<double> Iota(size_t n) {
  SharedArray<double> a(n);
  for (size_t i = 0; i < n; ++i) a[i] = static_cast<double>(i);
  return a;
}

TEST_P(SharedArrayTest, ArgumentsAndResults) {
  ProcessPoolExecutor pool(MakeOptions());
  const size_t n = size_t{1} << 20;
  SharedArray<double> a = Iota(n);
  const double expected = static_cast<double>(n) * (n - 1) / 2;
  EXPECT_EQ(pool.Submit(sa::Sum, a).Get(kWait), expected);
  // Sent by reference, an immutable array is sealed (its write rule).
  EXPECT_EQ(a.writable(), !ByReference());
  SharedArray<double> scaled = pool.Submit(sa::Scale, a, 3.0).Get(kWait);
  ASSERT_EQ(scaled.size(), n);
  EXPECT_EQ(scaled[12345], 3.0 * 12345);
  // An array that came back goes out again.
  EXPECT_EQ(pool.Submit(sa::Sum, scaled).Get(kWait), 3 * expected);
  // Empty ones.
  EXPECT_EQ(pool.Submit(sa::Sum, SharedArray<double>()).Get(kWait), 0);
  EXPECT_EQ(pool.Submit(sa::Sum, SharedArray<double>(0)).Get(kWait), 0);
}

TEST_P(SharedArrayTest, TasksWriteSlicesOfAnOutputArray) {
  ProcessPoolExecutor pool(MakeOptions());
  const size_t n = 100003;
  SharedArray<double> in = Iota(n);
  SharedArray<double> out(n, SharedArrayMode::kOutput);
  // Over capnp the workers write copies, and what they changed comes back
  // before the futures are done: the same code either way.
  std::vector<Future<int64_t>> parts;
  for (int64_t p = 0; p < 4; ++p) {
    parts.push_back(pool.Submit(sa::TwiceSlice, in, out, p, int64_t{4}));
  }
  int64_t written = 0;
  for (auto& f : parts) written += f.Get(kWait);
  EXPECT_EQ(written, static_cast<int64_t>(n));
  for (size_t j = 0; j < n; ++j) ASSERT_EQ(out[j], 2.0 * j) << j;
}

// Map's chunks name one output array in every element (one copy per chunk
// by value); the elements' slices interleave element by element, and each
// task reads what the parent wrote before it submitted (7.0 everywhere).
TEST_P(SharedArrayTest, InterleavedSlicesOfAnOutputArrayThroughMap) {
  ProcessPoolExecutor pool(MakeOptions());
  const size_t n = 10007;
  const int64_t stride = 8;
  SharedArray<double> out(n, SharedArrayMode::kOutput);
  for (size_t j = 0; j < n; ++j) out[j] = 7.0;
  std::vector<std::tuple<SharedArray<double>, int64_t, int64_t>> inputs;
  for (int64_t k = 0; k < stride; ++k) inputs.emplace_back(out, k, stride);
  const std::vector<int64_t> counts =
      pool.Map(sa::AddStrided, inputs, {.chunksize = 3}).ToVector();
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  EXPECT_EQ(total, static_cast<int64_t>(n));
  for (size_t j = 0; j < n; ++j) ASSERT_EQ(out[j], 7.0 + 3.0 * j + 1) << j;
}

TEST_P(SharedArrayTest, MapCarriesArraysInItsChunks) {
  ProcessPoolExecutor pool(MakeOptions());
  std::vector<SharedArray<double>> arrays;
  for (size_t k = 1; k <= 9; ++k) arrays.push_back(Iota(k * 1000));
  std::vector<double> sums =
      pool.Map(sa::Sum, arrays, {.chunksize = 4}).ToVector();
  ASSERT_EQ(sums.size(), arrays.size());
  for (size_t k = 0; k < arrays.size(); ++k) {
    const double m = static_cast<double>(arrays[k].size());
    EXPECT_EQ(sums[k], m * (m - 1) / 2) << k;
  }
}

TEST_P(SharedArrayTest, AWorkerMapsAnArrayOnceAndCannotWriteIt) {
  if (!ByReference()) GTEST_SKIP() << "capnp copies the bytes";
  ProcessPoolExecutor pool(MakeOptions(/*max_workers=*/1));
  SharedArray<double> a = Iota(1 << 16);
  const auto first = pool.Submit(sa::WhereMapped, a).Get(kWait);
  const auto second = pool.Submit(sa::WhereMapped, a).Get(kWait);
  EXPECT_EQ(first, second) << "the same mapping, from the worker's cache";
  EXPECT_EQ(ArrayMappings(static_cast<pid_t>(std::get<1>(first))), 1);
  EXPECT_EQ(pool.Submit(sa::MakeWritable, a).Get(kWait), EACCES);
  // A write is a fault in the worker; the parent's array is intact.
  Future<double> w = pool.Submit(sa::WriteInto, a);
  EXPECT_THROW(w.Get(kWait), BrokenProcessPool);
  EXPECT_EQ(a[0], 0.0);
}

TEST_P(SharedArrayTest, ADescriptorCrossesOncePerWorkerUntilTheParentLetsGo) {
  if (!ByReference()) GTEST_SKIP() << "capnp copies the bytes";
  ProcessPoolExecutor pool(MakeOptions(/*max_workers=*/1));
  std::optional<SharedArray<double>> a = Iota(1 << 12);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(pool.Submit(sa::Sum, *a).Get(kWait), 4096.0 * 4095 / 2);
  }
  EXPECT_EQ(pool.Submit(sa::CacheState).Get(kWait),
            (std::tuple<int64_t, int64_t>{1, 1}))
      << "five calls, one descriptor";
  // Back to the parent without a descriptor: the parent's own array.
  const int fds = FdCount();
  SharedArray<double> echoed = pool.Submit(sa::Echo, *a).Get(kWait);
  EXPECT_EQ(echoed.data(), a->data());
  EXPECT_EQ(FdCount(), fds);
  // A second array, then both let go: the worker drops them at its next call.
  SharedArray<double> b = Iota(10);
  EXPECT_EQ(pool.Submit(sa::Sum, b).Get(kWait), 45.0);
  const pid_t worker = static_cast<pid_t>(
      std::get<1>(pool.Submit(sa::WhereMapped, b).Get(kWait)));
  EXPECT_EQ(ArrayMappings(worker), 2);
  a.reset();
  echoed = SharedArray<double>();
  EXPECT_EQ(pool.Submit(sa::CacheState).Get(kWait),
            (std::tuple<int64_t, int64_t>{2, 1}));
  EXPECT_EQ(ArrayMappings(worker), 1);
}

TEST_P(SharedArrayTest, NothingLeaksInTheParent) {
  const int fds = FdCount();
  const int maps = ArrayMappings(getpid());
  {
    ProcessPoolExecutor pool(MakeOptions());
    SharedArray<double> a = Iota(1 << 16);
    for (int i = 0; i < 20; ++i) {
      SharedArray<double> b = pool.Submit(sa::Scale, a, 2.0).Get(kWait);
      EXPECT_EQ(b[3], 6.0);
    }
    pool.Shutdown();
  }
  EXPECT_EQ(ArrayMappings(getpid()), maps);
  EXPECT_EQ(FdCount(), fds);
}

INSTANTIATE_EXECUTOR_SUITE(SharedArrayTest);

}  // namespace
}  // namespace testing
}  // namespace procpool
