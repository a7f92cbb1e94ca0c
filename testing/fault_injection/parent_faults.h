// Parent-side channel faults: the parent's end of a worker's channel fails or
// corrupts a frame, while the worker itself is healthy.
//
// The worker-side harness (fault_injection.h) makes a worker die, hang or lie;
// this one makes the parent's channel misbehave as a broken transport would:
// Send() or Pump()/Poll() returning an error, or a frame garbled in either
// direction. It wraps the real Channel from outside, as LevelDB's EnvWrapper
// wraps an Env: for every transport name NAME in {shm, unix, capnp}, a
// wrapping Transport is registered as "fault-NAME" (WrappedTransportName). It
// forwards every call to NAME's transport (looked up on first use, so the
// order of static registration does not matter) and wraps the parent's end of
// each channel it makes; the worker opens its end through NAME's own
// OpenChild. A pool built over "fault-unix" is an ordinary unix pool until a
// fault is armed.
//
// Example:
//   procpool::fault::ArmParentFault({procpool::fault::ParentMode::kPumpFails,
//                                    /*on_event=*/1});
//   procpool::Options options;
//   options.transport = procpool::fault::WrappedTransportName("unix");
//   ProcessPoolExecutor pool(options);
//   pool.Submit(Noop).Get();  // throws BrokenProcessPool
//   int fired = procpool::fault::DisarmParentFault();  // 1
//
// One fault is armed per process at a time; it fires once, on the on_event-th
// event of its kind (a Send, a Pump/Poll call, or a frame received) counted
// over every wrapped channel since it was armed. A channel whose Send or
// Pump failed stays failed (every later Send/Pump/Poll returns the same
// error), as the Channel contract says of a real error.
//
// Thread safety: all functions are thread-safe; each wrapped channel is used
// by one thread at a time, like any Channel. Test-only.
#ifndef PROCPOOL_TESTING_FAULT_INJECTION_PARENT_FAULTS_H_
#define PROCPOOL_TESTING_FAULT_INJECTION_PARENT_FAULTS_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace procpool {
namespace fault {

// What the parent's end of the channel does wrong.
enum class ParentMode {
  kSendFails,        // Send()/SendParts() returns kUnavailable
  kPumpFails,        // Pump()/Poll() returns kUnavailable
  kPumpDataLoss,     // Pump()/Poll() returns kDataLoss (bytes not a frame)
  kCorruptIncoming,  // a frame from the worker is replaced by garbage
  kCorruptOutgoing,  // a frame to the worker is replaced by garbage
};

struct ParentSpec {
  ParentMode mode = ParentMode::kPumpFails;
  int on_event = 1;  // fire on this event (1 = the first) since arming
};

const char* ParentModeName(ParentMode mode);
std::vector<ParentMode> AllParentModes();

// "fault-" + `transport`: the name of the wrapping transport.
std::string WrappedTransportName(absl::string_view transport);

// Arms `spec` for the channels of every wrapping transport (replacing any
// fault armed before) and resets the counts.
void ArmParentFault(const ParentSpec& spec);

// Disarms; returns how many times the armed fault fired since it was armed
// (0 or 1).
int DisarmParentFault();

}  // namespace fault
}  // namespace procpool

#endif  // PROCPOOL_TESTING_FAULT_INJECTION_PARENT_FAULTS_H_
