// Tasks used by the executor tests (registered in test_tasks.cc, which is
// linked into the test binary, itself the workers' binary).
#ifndef PROCPOOL_EXECUTOR_TESTDATA_TEST_TASKS_H_
#define PROCPOOL_EXECUTOR_TESTDATA_TEST_TASKS_H_

#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "executor/process_pool_executor.h"
#include "serialization/codec.h"

namespace procpool {
namespace test_tasks {

// A type whose encoding throws (S5: the exception comes back on its future).
struct EncodeThrows {};
void ProcpoolEncode(Writer& w, const EncodeThrows&);
absl::Status ProcpoolDecode(Reader& r, EncodeThrows*);

// A value whose encoding throws after writing its bytes when it is 3 (a
// Map chunk's other values must come back intact).
struct ThreeEncodesHalfway {
  int value = 0;
};
void ProcpoolEncode(Writer& w, const ThreeEncodesHalfway& v);
absl::Status ProcpoolDecode(Reader& r, ThreeEncodesHalfway* v);

// A type that encodes but never decodes (S5: decode failures break the pool).
struct DecodeFails {};
void ProcpoolEncode(Writer& w, const DecodeFails&);
absl::Status ProcpoolDecode(Reader& r, DecodeFails*);

// A type whose encoding kills the worker (S14: crash while encoding).
struct EncodeKills {};
void ProcpoolEncode(Writer& w, const EncodeKills&);
absl::Status ProcpoolDecode(Reader& r, EncodeKills*);

// A registered custom exception (PROCPOOL_EXCEPTION) and an unregistered one.
class MyError : public std::runtime_error {
 public:
  explicit MyError(const std::string& m) : std::runtime_error(m) {}
};
class UnregisteredError : public std::runtime_error {
 public:
  explicit UnregisteredError(const std::string& m) : std::runtime_error(m) {}
};

int Pow(int base, int exp);
void Noop();
int GetPid();
// Binds the worker's task thread to CPU `cpu`; returns how many CPUs it may
// then run on (1), or throws std::runtime_error saying why it could not.
int PinToCpu(int cpu);
int SleepMs(int ms);                     // sleeps, returns ms
int SleepThenPid(int ms);                // sleeps, returns getpid()
std::string Echo(const std::string& s);  // returns s
std::tuple<std::string> EchoInTuple(const std::string& s);  // returns {s}
int64_t Length(const std::string& s);
double SumArray(SharedArray<double> xs);  // the sum of its elements
// out[j] = j * j for j in slice `part` of `parts` (an output array); returns
// how many it wrote.
int64_t SquaresInto(SharedArray<double> out, int64_t part, int64_t parts);
int Throw(const std::string& kind);      // throws by kind; see .cc
int DieBy(const std::string& how);       // kills its own process
int SleepThenDie(int ms, const std::string& how);
EncodeThrows ReturnEncodeThrows();
DecodeFails ReturnDecodeFails();
int TakeDecodeFails(DecodeFails d);
EncodeKills ReturnEncodeKills();
int RaiseSigintAndReturn(int v);
int FailIfThree(int x);  // throws std::invalid_argument for 3, else x * 10
int AppendMarker(const std::string& path, int ms);  // appends a byte, sleeps
std::string Filler(int n);  // n bytes (a small argument, a value of any size)
ThreeEncodesHalfway EncodeHalfwayIfThree(int x);

// Where a task ran (two-host tests): its network namespace
// ("net:[4026531840]", from /proc/self/ns/net), and the IPv4 addresses of
// the interfaces it sees there.
std::string NetnsId();
std::vector<std::string> Ipv4Addresses();

// Writes garbage into every socket of the worker (its channel), then sleeps.
int CorruptChannel(int ms);

// Dies (SIGKILL) the first time for `path` (creating it), returns 7 after.
int DieOnceThenReturn(const std::string& path);
// The same, then returns `payload`.
std::string DieOnceThenEcho(const std::string& path,
                            const std::string& payload);
// Allocates and touches `mib` MiB; returns how many bytes it got.
int64_t AllocateMiB(int mib);
// Allocates, touches and leaks `mib` MiB; returns getpid().
int LeakMiB(int mib);

// Initializers.
void SetInitValue(int v);  // stores v; counts calls
int GetInitValue();
int GetInitCalls();
void InitThrows();
void InitDies();

}  // namespace test_tasks
}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_TESTDATA_TEST_TASKS_H_
