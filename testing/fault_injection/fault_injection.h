// Fault injection: makes a real worker fail at a chosen point, in a chosen way.
//
// Like LevelDB's fault-injection Env (a wrapper around the real Env), this
// wraps the real worker: it installs WorkerHooks
// (worker/child/worker_hooks.h) in every process that links it, wraps the worker's real Channel, and does
// nothing until armed. A pool arms it in each of its workers through its
// initializer:
//
//   procpool::Options options;
//   options.initializer = procpool::fault::ArmFault(
//       {procpool::fault::Point::kMidTask, procpool::fault::Mode::kSigsegv});
//   procpool::ProcessPoolExecutor pool(options);
//   pool.Submit(SleepMs, 1000).Get();  // throws BrokenProcessPool
//
// Link //testing/fault_injection into the binary the workers run (the test
// binary itself by default). Test-only.
#ifndef PROCPOOL_TESTING_FAULT_INJECTION_FAULT_INJECTION_H_
#define PROCPOOL_TESTING_FAULT_INJECTION_FAULT_INJECTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "executor/process_pool_executor.h"

namespace procpool {
namespace fault {

// Where the worker fails.
enum class Point {
  kDecodeCall,     // a call frame arrived; before the worker decodes it
  kTaskStart,      // right before the task runs
  kMidTask,        // `delay_ms` into a running task (from another thread)
  kEncodeResult,   // the result is encoded; before it is sent
  kMidSend,        // while a result of >= 1 MiB is being sent
  kInitializer,    // inside the initializer
  kExit,           // as the worker exits (after Shutdown or max tasks)
};

// How it fails.
enum class Mode {
  kSigkill,
  kSigsegv,
  kAbort,
  kExit,          // _exit(exit_code)
  kCloseChannel,  // drops its channel (closing its descriptors) and goes on
  kCorruptFrame,  // sends a frame that is not a valid message, and goes on
  kStop,          // SIGSTOP: hangs without dying
  // Frames that decode but lie (LyingModes(); not in AllModes()): the next
  // frame the worker sends once the fault fired is replaced by
  kLieVersion,     // a Hello with another protocol version
  kLieWorkId,      // a Result for a work id never sent (kLyingWorkId)
  kLieOutcomes,    // its Result with one outcome more than the Call's elements
  kLieKind,        // a Call: a kind of message only the parent sends
  kLieHelloAgain,  // a second Hello, with the right protocol version
};

// The work id of kLieWorkId's Result: the pool counts its work ids up from 1
// and never gets this far.
inline constexpr uint64_t kLyingWorkId = uint64_t{1} << 48;

struct Spec {
  Point point = Point::kTaskStart;
  Mode mode = Mode::kSigkill;
  int exit_code = 3;    // for kExit
  int delay_ms = 50;    // for kMidTask
  int on_call = 1;      // fail on this call (1 = the first) of the worker
  // If set, only the first worker of the pool to create this file (O_EXCL)
  // arms the fault: replacement workers then run clean.
  std::string once_file;
  // If set, the worker appends a record to this file as the fault fires
  // (kFiredRecordBytes: the CLOCK_MONOTONIC time in nanoseconds, 20 digits
  // and a newline), so that the parent can count the faults that fired (not
  // only those armed) and time their detection from the moment they fired.
  std::string fired_file;
};

inline constexpr int kFiredRecordBytes = 21;

// The times (CLOCK_MONOTONIC nanoseconds, as std::chrono::steady_clock
// counts them) recorded in a fired_file, in file order; empty if there are
// none or it cannot be read.
std::vector<int64_t> ReadFiredTimes(const std::string& path);

const char* PointName(Point point);
const char* ModeName(Mode mode);
std::vector<Point> AllPoints();
// The modes of a process that fails. (The chaos tool's --dense catalogue
// is AllPoints() x AllModes(), where Applies().)
std::vector<Mode> AllModes();
// The modes of a worker that stays alive and lies in a frame that decodes
// (kLieVersion...). Kept out of AllModes(): a lie is a protocol error with
// one outcome whatever the timing (the pool breaks, under every
// WorkerDeathPolicy), which the fault matrix's LyingFrameTest asserts; the
// chaos tool's catalogue and its measured tables stay as they are.
std::vector<Mode> LyingModes();
// Whether `mode` is one of LyingModes().
bool IsLie(Mode mode);

// Whether a fault at `point` in `mode` can be made: a frame cannot be
// corrupted, replaced by a lie or the channel dropped from another thread in
// the middle of a send (kMidSend with kCloseChannel, kCorruptFrame or a
// lying mode), nor once the worker is exiting (kExit: its channel is gone by
// then).
bool Applies(Point point, Mode mode);

// An initializer (Options::initializer) that arms `spec` in every worker.
Call ArmFault(const Spec& spec);

// The signal a mode kills with (0 for kExit, kCloseChannel, kCorruptFrame
// and the lying modes).
int SignalOf(Mode mode);

}  // namespace fault
}  // namespace procpool

#endif  // PROCPOOL_TESTING_FAULT_INJECTION_FAULT_INJECTION_H_
