#include "tools/soak/tasks.h"

#include <signal.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "executor/process_pool_executor.h"

namespace procpool {
namespace soak {

int64_t SoakMix(int64_t x) {
  uint64_t z = static_cast<uint64_t>(x) + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return static_cast<int64_t>(z ^ (z >> 31));
}

std::pair<int64_t, int64_t> SoakMixPid(int64_t x) {
  return {SoakMix(x), getpid()};
}

bool SoakMixThrows(int64_t x) { return x % 61 == 7; }

int64_t SoakMixOrThrow(int64_t x) {
  if (SoakMixThrows(x)) throw std::invalid_argument(absl::StrCat("soak: ", x));
  return SoakMix(x);
}

std::string ThrowMessage(int kind) { return absl::StrCat("soak throw ", kind); }

int SoakThrow(int kind) {
  switch (kind % 4) {
    case 0:
      throw std::invalid_argument(ThrowMessage(kind));
    case 1:
      throw std::out_of_range(ThrowMessage(kind));
    case 2:
      throw std::runtime_error(ThrowMessage(kind));
    default:
      throw SoakError(ThrowMessage(kind));
  }
}

std::string SoakBlob(int64_t seed, int32_t n) {
  std::string s(static_cast<size_t>(n), '\0');
  uint64_t z = static_cast<uint64_t>(seed);
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    z = static_cast<uint64_t>(SoakMix(static_cast<int64_t>(z)));
    for (int b = 0; b < 8; ++b) s[i + b] = static_cast<char>(z >> (8 * b));
  }
  for (; i < s.size(); ++i) s[i] = static_cast<char>(i);
  return s;
}

uint64_t SoakDigest(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string SoakEcho(const std::string& s) { return s; }

int SoakSleepMs(int ms) {
  absl::SleepFor(absl::Milliseconds(ms));
  return ms;
}

int SoakDie(int sig) {
  raise(sig);
  return -1;
}

PROCPOOL_EXCEPTION(SoakError);
PROCPOOL_TASK(SoakMix);
PROCPOOL_TASK(SoakMixPid);
PROCPOOL_TASK(SoakMixOrThrow);
PROCPOOL_TASK(SoakThrow);
PROCPOOL_TASK(SoakBlob);
PROCPOOL_TASK(SoakDigest);
PROCPOOL_TASK(SoakEcho);
PROCPOOL_TASK(SoakSleepMs);
PROCPOOL_TASK(SoakDie);

}  // namespace soak
}  // namespace procpool
