// The prime check from Python's concurrent.futures documentation
// (ProcessPoolExecutor Example), on procpool.
//
// Python:
//   def is_prime(n): ...                       # trial division up to sqrt(n)
//   with concurrent.futures.ProcessPoolExecutor() as executor:
//       for number, prime in zip(PRIMES, executor.map(is_prime, PRIMES)):
//           print('%d is prime: %s' % (number, prime))
//
// C++ (below): IsPrime is registered with PROCPOOL_TASK, and this binary is
// also the workers' binary, so main() calls procpool::Init first.
//
// Usage:
//   bazel run //examples/primes
//   bazel run //examples/primes -- --as_completed --procpool_start_method=spawn
//   bazel run //examples/primes -- --procpool_max_workers=2
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "executor/process_pool_executor.h"

ABSL_FLAG(bool, as_completed, false,
          "Use Submit + AsCompleted (results in completion order) instead of "
          "Map (results in input order).");

namespace {

const std::vector<int64_t> kPrimes = {
    112272535095293, 112582705942171, 112272535095293,
    115280095190773, 115797848077099, 1099726899285419,
};

// Trial division by odd numbers up to sqrt(n), as in the Python example.
bool IsPrime(int64_t n) {
  if (n < 2) return false;
  if (n == 2) return true;
  if (n % 2 == 0) return false;
  for (int64_t i = 3; i <= n / i; i += 2) {
    if (n % i == 0) return false;
  }
  return true;
}
PROCPOOL_TASK(IsPrime);

void Print(int64_t number, bool prime) {
  std::cout << number << " is prime: " << (prime ? "true" : "false")
            << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  procpool::Init(argc, argv);  // in a worker: serves here, never returns
  absl::ParseCommandLine(argc, argv);

  const absl::Time start = absl::Now();
  {
    // Options left empty: --procpool_transport, --procpool_start_method and
    // --procpool_max_workers decide.
    procpool::ProcessPoolExecutor executor;
    if (absl::GetFlag(FLAGS_as_completed)) {
      std::vector<procpool::Future<bool>> futures;
      for (int64_t n : kPrimes) futures.push_back(executor.Submit(IsPrime, n));
      // The futures of equal inputs are distinct, so each is yielded once.
      for (const procpool::Future<bool>& f : procpool::AsCompleted(futures)) {
        for (size_t i = 0; i < futures.size(); ++i) {
          if (futures[i] == f) Print(kPrimes[i], f.Get());
        }
      }
    } else {
      size_t i = 0;
      for (bool prime : executor.Map(IsPrime, kPrimes)) {
        Print(kPrimes[i++], prime);
      }
    }
  }  // ~ProcessPoolExecutor: Shutdown(wait=true), workers reaped
  const absl::Duration elapsed = absl::Now() - start;

  const int max_workers = absl::GetFlag(FLAGS_procpool_max_workers);
  std::cout << "transport: " << absl::GetFlag(FLAGS_procpool_transport)
            << ", start method: " << absl::GetFlag(FLAGS_procpool_start_method)
            << ", max workers: "
            << (max_workers > 0 ? std::to_string(max_workers) : "CPUs")
            << ", mode: "
            << (absl::GetFlag(FLAGS_as_completed) ? "Submit+AsCompleted"
                                                  : "Map")
            << "\n"
            << "elapsed: " << absl::FormatDuration(elapsed) << std::endl;
  return 0;
}
