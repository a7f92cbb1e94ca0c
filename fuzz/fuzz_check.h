// FUZZ_CHECK: the one assertion the fuzz targets use.
//
// A failed check prints what failed (and an optional message) to stderr and
// calls abort(), which libFuzzer reports as a crash and saves the input as a
// reproducer. Plain and dependency-free so that the targets build the same way
// with clang + libFuzzer (tools/fuzz.sh) and with Bazel's gcc (the seed replay
// tests in fuzz/BUILD).
//
// Example:
//   FUZZ_CHECK(again.ok(), again.status().ToString());
#ifndef PROCPOOL_FUZZ_FUZZ_CHECK_H_
#define PROCPOOL_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>

namespace procpool {
namespace fuzz {

[[noreturn]] inline void CheckFailed(const char* file, int line,
                                     const char* condition,
                                     const std::string& message) {
  std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s%s%s\n", file, line,
               condition, message.empty() ? "" : ": ", message.c_str());
  std::abort();
}

}  // namespace fuzz
}  // namespace procpool

#define FUZZ_CHECK(condition, ...)                                    \
  do {                                                                \
    if (!(condition)) {                                               \
      ::procpool::fuzz::CheckFailed(__FILE__, __LINE__, #condition,   \
                                    std::string(__VA_ARGS__));        \
    }                                                                 \
  } while (false)

#endif  // PROCPOOL_FUZZ_FUZZ_CHECK_H_
