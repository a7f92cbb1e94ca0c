// S22-S26 of docs/SEMANTICS.md: Map.
#include <unistd.h>

#include <fstream>
#include <iterator>

#include "absl/time/clock.h"
#include "executor/testdata/executor_test_base.h"

namespace procpool {
namespace testing {
namespace {

namespace tt = ::procpool::test_tasks;

class MapTest : public ExecutorTest {};

// An endless input range that counts how much of it was read.
class Counter {
 public:
  struct iterator {
    using iterator_category = std::input_iterator_tag;
    using value_type = int;
    using difference_type = std::ptrdiff_t;
    using pointer = const int*;
    using reference = int;
    int operator*() const {
      ++*reads;
      return value;
    }
    iterator& operator++() {
      ++value;
      return *this;
    }
    bool operator!=(const iterator&) const { return true; }
    bool operator==(const iterator&) const { return false; }
    int value;
    int* reads;
  };
  explicit Counter(int* reads) : reads_(reads) {}
  iterator begin() const { return iterator{0, reads_}; }
  iterator end() const { return iterator{0, reads_}; }

 private:
  int* reads_;
};

TEST_P(MapTest, S22MapEqualsSequentialResults) {
  ProcessPoolExecutor pool(MakeOptions());
  std::vector<std::pair<int, int>> pairs;
  for (int i = 0; i < 100; ++i) pairs.emplace_back(i % 7, i % 5);
  std::vector<int> expected;
  for (auto [b, e] : pairs) expected.push_back(tt::Pow(b, e));
  for (int chunksize : {1, 3, 40}) {
    SCOPED_TRACE(chunksize);
    MapOptions o;
    o.chunksize = chunksize;
    o.timeout = kWait;
    EXPECT_EQ(pool.Map(tt::Pow, pairs, o).ToVector(), expected);
  }
  std::vector<std::tuple<int, int>> tuples = {{2, 3}, {3, 2}};
  EXPECT_EQ(pool.Map(tt::Pow, tuples).ToVector(), (std::vector<int>{8, 9}));
  EXPECT_TRUE(pool.Map(tt::Pow, std::vector<std::pair<int, int>>{})
                  .ToVector()
                  .empty());
  MapOptions bad;
  bad.chunksize = 0;
  EXPECT_THROW(pool.Map(tt::Pow, pairs, bad), std::invalid_argument);
}

TEST_P(MapTest, S23FailingElementRethrowsAndTheRestStillComeBack) {
  ProcessPoolExecutor pool(MakeOptions());
  for (int chunksize : {1, 4}) {
    MapOptions o;
    o.chunksize = chunksize;
    o.timeout = kWait;
    auto results = pool.Map(tt::FailIfThree, std::vector<int>{1, 2, 3, 4, 5}, o);
    std::vector<int> got;
    int failures = 0;
    for (auto it = results.begin(); it != results.end(); ++it) {
      try {
        got.push_back(*it);
      } catch (const std::invalid_argument& e) {
        EXPECT_STREQ(e.what(), "three");
        ++failures;
      }
    }
    EXPECT_EQ(failures, 1);
    EXPECT_EQ(got, (std::vector<int>{10, 20, 40, 50}));
  }
}

TEST_P(MapTest, S24TimeoutCountsFromTheCallAndCancelsTheRest) {
  ProcessPoolExecutor pool(MakeOptions(1));
  // A warm worker: the timeout bounds the tasks, not a cold start (which a
  // loaded 2-core machine under a sanitizer can stretch past any small
  // bound); and the bound is generous for the first element, with the
  // second sleeping far past it (its worker is killed at the end rather
  // than waited for).
  ASSERT_EQ(pool.Submit(tt::SleepMs, 1).Get(kWait), 1);
  MapOptions o;
  o.timeout = absl::Seconds(2);
  std::vector<int> sleeps = {10, 20000, 10, 10, 10, 10};
  const absl::Time start = absl::Now();
  auto results = pool.Map(tt::SleepMs, sleeps, o);
  auto it = results.begin();
  EXPECT_EQ(*it, 10);
  ++it;
  EXPECT_THROW(*it, TimeoutError);
  EXPECT_TRUE(it == results.end());  // the rest was cancelled
  // The timeout, not the 20 s task, ended the wait.
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
  pool.KillWorkers();
}

TEST_P(MapTest, S25BuffersizeReadsLazily) {
  ProcessPoolExecutor pool(MakeOptions());
  int reads = 0;
  Counter endless(&reads);
  MapOptions o;
  o.buffersize = 2;
  o.chunksize = 3;
  o.timeout = kWait;
  {
    auto results = pool.Map(tt::Pow, std::vector<std::pair<int, int>>{}, o);
    EXPECT_TRUE(results.begin() == results.end());
  }
  auto results = pool.Map(tt::FailIfThree, endless, o);
  EXPECT_LE(reads, 2 * 3);
  int n = 0;
  for (auto it = results.begin(); n < 20; ++it, ++n) {
    if (n == 3) continue;
    EXPECT_EQ(*it, n * 10);
    // At most buffersize chunks are in flight beyond what was consumed.
    EXPECT_LE(reads, (n / 3 + 1 + 2) * 3);
  }
  MapOptions bad;
  bad.buffersize = -1;
  EXPECT_THROW(pool.Map(tt::Pow, std::vector<std::pair<int, int>>{}, bad),
               std::invalid_argument);
}

TEST_P(MapTest, S26DestroyingResultsEarlyCancelsTheRest) {
  std::string marker = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR")
                                                         : "/tmp") +
                       "/map_marker_" + std::to_string(getpid());
  unlink(marker.c_str());
  {
    ProcessPoolExecutor pool(MakeOptions(1));
    std::vector<std::pair<std::string, int>> inputs(40, {marker, 20});
    {
      auto results = pool.Map(tt::AppendMarker, inputs);
      EXPECT_EQ(*results.begin(), 20);
    }
    pool.Shutdown(/*wait=*/true);
  }
  std::ifstream f(marker);
  std::string content((std::istreambuf_iterator<char>(f)),
                      std::istreambuf_iterator<char>());
  EXPECT_LE(content.size(), 4u);  // the first, plus what was handed out early
  unlink(marker.c_str());
}

// A chunk of small elements travels packed (one buffer, serialization/
// packed.h); one with a big argument, or whose worker returns a big value,
// switches to a string per element part-way. Each mix comes back intact.
TEST_P(MapTest, SmallAndBigElementsShareAChunk) {
  ProcessPoolExecutor pool(MakeOptions());
  const std::vector<std::string> strings = {
      "a", "", std::string(20000, 'b'), "c", std::string(70000, 'd'), "e"};
  const std::vector<int> sizes = {1, 0, 3, 20000, 2, 70000, 5, 0};
  std::vector<std::string> filled;
  for (int n : sizes) filled.push_back(tt::Filler(n));
  for (int chunksize : {1, 2, 3, 8}) {
    SCOPED_TRACE(chunksize);
    MapOptions o;
    o.chunksize = chunksize;
    o.timeout = kWait;
    EXPECT_TRUE(pool.Map(tt::Echo, strings, o).ToVector() == strings);
    EXPECT_TRUE(pool.Map(tt::Filler, sizes, o).ToVector() == filled);
  }
}

// A value whose encoding throws after writing part of it, in a packed chunk:
// its bytes are cut off, it fails alone, and its neighbours are intact.
TEST_P(MapTest, AValueThatFailsToEncodeFailsAlone) {
  ProcessPoolExecutor pool(MakeOptions());
  MapOptions o;
  o.chunksize = 5;
  o.timeout = kWait;
  auto results = pool.Map(tt::EncodeHalfwayIfThree,
                          std::vector<int>{1, 2, 3, 4, 5}, o);
  std::vector<int> got;
  int failures = 0;
  for (auto it = results.begin(); it != results.end(); ++it) {
    try {
      got.push_back(it->value);
    } catch (const std::length_error& e) {
      EXPECT_STREQ(e.what(), "three encodes halfway");
      ++failures;
    }
  }
  EXPECT_EQ(failures, 1);
  EXPECT_EQ(got, (std::vector<int>{1, 2, 4, 5}));
}

// Arguments a worker cannot decode, in a packed chunk (TaskInfo::run): a
// protocol error that breaks the pool, as for a Submit (S5).
TEST_P(MapTest, UndecodableArgumentsInAChunkBreakThePool) {
  ProcessPoolExecutor pool(MakeOptions());
  MapOptions o;
  o.chunksize = 3;
  o.timeout = kWait;
  try {
    pool.Map(tt::TakeDecodeFails, std::vector<tt::DecodeFails>(3), o).ToVector();
    ADD_FAILURE() << "no exception";
  } catch (const BrokenProcessPool& e) {
    EXPECT_NE(std::string(e.what()).find("DecodeFails never decodes"),
              std::string::npos)
        << e.what();
  }
}

// A packed chunk is kept by the pool while it runs: its worker dies on the
// first element, and the whole chunk runs again elsewhere.
TEST_P(MapTest, APackedChunkRunsAgainAfterItsWorkerDied) {
  Options options = MakeOptions(1);
  options.on_worker_death = WorkerDeathPolicy::kReplaceWorker;
  options.max_retries = 1;
  ProcessPoolExecutor pool(options);
  std::string marker = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR")
                                                         : "/tmp") +
                       "/map_die_once_" + std::to_string(getpid());
  unlink(marker.c_str());
  MapOptions o;
  o.chunksize = 4;
  o.timeout = kWait;
  EXPECT_EQ(pool.Map(tt::DieOnceThenReturn, std::vector<std::string>(4, marker),
                     o)
                .ToVector(),
            std::vector<int>(4, 7));
  unlink(marker.c_str());
}

INSTANTIATE_EXECUTOR_SUITE(MapTest);

}  // namespace
}  // namespace testing
}  // namespace procpool
