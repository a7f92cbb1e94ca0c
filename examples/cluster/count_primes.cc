// Counting the primes below N on a cluster: the parent cuts [0, N) into
// blocks, each worker counts the primes of one block at a time with a
// segmented sieve of Eratosthenes, and the parent adds the counts up, printing
// progress as blocks come back and checking the answer.
//
// The same binary runs on one machine or on many; only the launch line
// changes (README.md):
//   count_primes                         local workers, one per CPU (this
//                                        binary is its own worker: main()
//                                        calls procpool::Init first)
//   mpirun --allow-run-as-root --oversubscribe --enable-recovery -n 5
//       count_primes --procpool_cluster=mpi     (one command line)
//   srun --mpi=pmix -n 5 count_primes --procpool_cluster=mpi
// Under a launcher, rank 0 runs main() and ranks 1..4 are its pool's workers
// (one slot each; --procpool_cluster_slots_per_rank=N for more); they never
// reach main(). The pool's Options name no workers, so the pool takes the
// cluster's slots when there is one and local workers otherwise.
//
// Output: "progress: ..." lines, then the count and how it was checked, which
// workers (host, pid) ran how many blocks, and the wall time. Each task
// returns its worker's host name and pid with its count, so that list is
// what really ran, not what was configured.
//
// A worker that dies (a rank killed, its host gone): with the default
// --on_worker_death=break the pool breaks, the program says so on stderr and
// exits 1; with --on_worker_death=replace the dead worker's block runs again
// on another worker (blocks are pure, so running one twice is harmless) and
// the count finishes on the workers left.
//
// Exit status: 0 the count is right (or was not checked), 1 it is wrong or the
// pool failed, 2 bad flags. Note that mpirun --enable-recovery itself returns
// 0 whatever rank 0 returned; srun passes the status on.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "executor/process_pool_executor.h"

ABSL_FLAG(int64_t, n, 100000000, "Count the primes below this (>= 0).");
ABSL_FLAG(int, blocks, 200, "Blocks to cut [0, n) into: one task each.");
ABSL_FLAG(std::string, on_worker_death, "break",
          "break: a dead worker breaks the pool and the program exits 1; "
          "replace: its block runs again on another worker and the count "
          "goes on with the workers left.");

namespace count_primes {

// What one task returns: the primes in its block, and who counted them.
using BlockResult =
    std::tuple<int64_t /*count*/, std::string /*host*/, int /*pid*/>;

int64_t IntegerSqrt(int64_t x) {
  int64_t r = static_cast<int64_t>(std::sqrt(static_cast<double>(x)));
  while (r > 0 && r * r > x) --r;
  while ((r + 1) * (r + 1) <= x) ++r;
  return r;
}

// The primes <= limit, by a plain sieve.
std::vector<int64_t> PrimesUpTo(int64_t limit) {
  std::vector<int64_t> primes;
  if (limit < 2) return primes;
  std::vector<bool> composite(static_cast<size_t>(limit) + 1, false);
  for (int64_t i = 2; i <= limit; ++i) {
    if (composite[i]) continue;
    primes.push_back(i);
    for (int64_t m = i * i; m <= limit; m += i) composite[m] = true;
  }
  return primes;
}

// The primes p with lo <= p < hi: the multiples of each prime up to
// sqrt(hi - 1) are crossed out of the block; what is left is prime.
int64_t CountPrimesIn(int64_t lo, int64_t hi) {
  if (lo < 2) lo = 2;
  if (hi <= lo) return 0;
  std::vector<char> composite(static_cast<size_t>(hi - lo), 0);
  for (int64_t p : PrimesUpTo(IntegerSqrt(hi - 1))) {
    int64_t first = (lo + p - 1) / p * p;
    if (first < p * p) first = p * p;
    for (int64_t m = first; m < hi; m += p) composite[m - lo] = 1;
  }
  int64_t count = 0;
  for (char c : composite) count += (c == 0);
  return count;
}

std::string HostName() {
  char name[256] = "?";
  gethostname(name, sizeof(name) - 1);
  name[sizeof(name) - 1] = '\0';
  return name;
}

// The task: runs in a worker (a cluster rank's, or a local one).
BlockResult CountBlock(int64_t lo, int64_t hi) {
  return {CountPrimesIn(lo, hi), HostName(), static_cast<int>(getpid())};
}
PROCPOOL_TASK(CountBlock);

// pi(10^k) for k = 0..10, to check round sizes without recounting.
int64_t KnownCount(int64_t n) {
  static const int64_t kPi[] = {
      0, 4, 25, 168, 1229, 9592, 78498, 664579, 5761455, 50847534, 455052511};
  int64_t power = 1;
  for (int64_t pi : kPi) {
    if (n == power) return pi;
    power *= 10;
  }
  return -1;
}

// Below this, a count that is no power of ten is checked by counting again
// on rank 0 alone, in this process: a second or so at the limit.
constexpr int64_t kRecountLimit = 200000000;

// The primes below n, counted in this process in pieces of 10^7.
int64_t CountSequentially(int64_t n) {
  constexpr int64_t kPiece = 10000000;
  int64_t count = 0;
  for (int64_t lo = 0; lo < n; lo += kPiece) {
    count += CountPrimesIn(lo, std::min(n, lo + kPiece));
  }
  return count;
}

// [0, n) cut into `blocks` blocks of nearly equal size.
std::vector<std::pair<int64_t, int64_t>> Blocks(int64_t n, int blocks) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int i = 0; i < blocks; ++i) {
    out.emplace_back(n * i / blocks, n * (i + 1) / blocks);
  }
  return out;
}

void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);  // mpirun and srun forward rank 0's output as it comes
}

int Main() {
  const int64_t n = absl::GetFlag(FLAGS_n);
  const int blocks = absl::GetFlag(FLAGS_blocks);
  const std::string policy = absl::GetFlag(FLAGS_on_worker_death);
  procpool::Options options;
  if (policy == "replace") {
    options.on_worker_death = procpool::WorkerDeathPolicy::kReplaceWorker;
    options.max_retries = 2;  // a block lost with its worker runs again
  } else if (policy != "break") {
    std::cerr << "--on_worker_death must be break or replace\n";
    return 2;
  }
  if (n < 0 || blocks < 1) {
    std::cerr << "--n must be >= 0 and --blocks >= 1\n";
    return 2;
  }

  Say(absl::StrFormat("counting the primes below %d in %d blocks", n, blocks));
  const absl::Time start = absl::Now();
  int64_t total = 0;
  std::map<std::pair<std::string, int>, int> blocks_by_worker;
  procpool::ProcessPoolExecutor pool(options);
  procpool::MapOptions map_options;
  int last_tenth = 0;
  size_t most_slots = 0;  // the pool's slots at their most (some may be lost)
  map_options.on_progress = [&](size_t done) {
    const int tenth = static_cast<int>(done * 10 / blocks);
    if (tenth == last_tenth) return;
    last_tenth = tenth;
    most_slots = std::max(most_slots, pool.Stats().size());
    Say(absl::StrFormat("progress: %d/%d blocks, %d primes so far, %s", done,
                        blocks, total,
                        absl::FormatDuration(absl::Trunc(
                            absl::Now() - start, absl::Milliseconds(1)))));
  };
  try {
    for (const BlockResult& r :
         pool.Map(CountBlock, Blocks(n, blocks), map_options)) {
      total += std::get<0>(r);
      ++blocks_by_worker[{std::get<1>(r), std::get<2>(r)}];
    }
  } catch (const procpool::BrokenProcessPool& e) {
    std::cerr << "count_primes: the pool broke, no count: " << e.what()
              << "\n(--on_worker_death=replace finishes on the workers left)\n";
    return 1;
  } catch (const procpool::WorkerDiedError& e) {
    std::cerr << "count_primes: a block was lost with its worker more often "
                 "than retried: "
              << e.what() << "\n";
    return 1;
  }
  const absl::Duration wall = absl::Now() - start;
  const size_t slots = pool.Stats().size();
  pool.Shutdown();

  // The check.
  std::string check;
  bool right = true;
  if (const int64_t known = KnownCount(n); known >= 0) {
    right = total == known;
    check = absl::StrFormat("known pi(%d) = %d", n, known);
  } else if (n <= kRecountLimit) {
    const int64_t recount = CountSequentially(n);
    right = total == recount;
    check = absl::StrFormat("recounted here without the pool: %d", recount);
  } else {
    check = "not checked: not a power of ten, too big to recount";
  }
  Say(absl::StrFormat("pi(%d) = %d (%s: %s)", n, total, check,
                      right ? "right" : "WRONG"));

  std::set<std::string> hosts;
  for (const auto& [worker, count] : blocks_by_worker)
    hosts.insert(worker.first);
  Say(absl::StrFormat(
      "blocks ran on %d workers, %d host(s); the pool has %d slots%s:",
      blocks_by_worker.size(), hosts.size(), slots,
      most_slots > slots
          ? absl::StrFormat(" (%d lost on the way)", most_slots - slots)
          : ""));
  for (const auto& [worker, count] : blocks_by_worker) {
    Say(absl::StrFormat("  %s pid %d: %d blocks", worker.first, worker.second,
                        count));
  }
  Say("wall time: " +
      absl::FormatDuration(absl::Trunc(wall, absl::Milliseconds(1))));
  return right ? 0 : 1;
}

}  // namespace count_primes

int main(int argc, char** argv) {
  // In a worker (local, or a cluster rank other than 0) this serves tasks and
  // never returns; on rank 0 it runs the cluster bootstrap first.
  procpool::Init(argc, argv);
  absl::ParseCommandLine(argc, argv);
  return count_primes::Main();
}
