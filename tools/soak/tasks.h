// The tasks the soak tool (tools/soak) submits, registered in tasks.cc. Each
// is a plain function: the parent calls the same function (or its inverse)
// to know the value it must get back, so every result is checked.
//
// Example:
//   Future<int64_t> f = pool.Submit(SoakMix, x);
//   if (f.Get(bound) != SoakMix(x)) ...  // a wrong result
//
// Thread safety: every function is thread-safe (no shared state).
#ifndef PROCPOOL_TOOLS_SOAK_TASKS_H_
#define PROCPOOL_TOOLS_SOAK_TASKS_H_

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace procpool {
namespace soak {

// A registered exception (PROCPOOL_EXCEPTION): rebuilt as SoakError in the
// parent.
class SoakError : public std::runtime_error {
 public:
  explicit SoakError(const std::string& m) : std::runtime_error(m) {}
};

// A small value: a 64-bit mix of x (splitmix64's finaliser).
int64_t SoakMix(int64_t x);

// {SoakMix(x), the worker's pid}: which worker ran it.
std::pair<int64_t, int64_t> SoakMixPid(int64_t x);

// SoakMix(x), but throws std::invalid_argument("soak: x") when x % 61 == 7
// (a Map with failing elements).
int64_t SoakMixOrThrow(int64_t x);
bool SoakMixThrows(int64_t x);

// Throws by kind % 4: std::invalid_argument, std::out_of_range,
// std::runtime_error, SoakError; the message is ThrowMessage(kind).
int SoakThrow(int kind);
std::string ThrowMessage(int kind);

// A big value made in the worker: n bytes drawn from seed.
std::string SoakBlob(int64_t seed, int32_t n);
// A big argument: FNV-1a 64 of s.
uint64_t SoakDigest(const std::string& s);
// A big argument and a big value: s back.
std::string SoakEcho(const std::string& s);

// Sleeps ms milliseconds, returns ms (timeouts, interrupts, cancels).
int SoakSleepMs(int ms);
// Kills its own worker with signal sig.
int SoakDie(int sig);

}  // namespace soak
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_SOAK_TASKS_H_
