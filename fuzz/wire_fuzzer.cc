// libFuzzer target for the wire decoder (serialization/wire.h).
//
// Input: one frame. Checks, for every input:
//   - DecodeMessage returns (no crash, no out-of-bounds read: the sanitizers
//     watch), and a failure is kDataLoss, as wire.h promises;
//   - the same bytes at an odd address (DecodeMessage copies misaligned
//     frames) decode to the same outcome;
//   - a decoded message re-encodes, and that frame decodes to an equal
//     message. (Not byte for byte to the input: Cap'n Proto frames have many
//     encodings of one message.)
//
// Text fields (task names, signatures, exception type names) may hold any
// bytes, NULs included: EncodeMessage keeps the whole string (it used to stop
// at the first NUL; reproducer fuzz/regressions/wire/text_with_nul), so every
// field is compared exactly.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "fuzz/fuzz_check.h"
#include "serialization/wire.h"

namespace procpool {
namespace wire {

// A message or field added to wire.h must be compared below too; these
// sizes (x86-64, libstdc++) make a change a compile error here.
static_assert(std::variant_size_v<Message> == 7, "compare the new message");
static_assert(sizeof(Config) == 112, "compare Config's new field");
static_assert(sizeof(Hello) == 40, "compare Hello's new field");
static_assert(sizeof(Call) == 176, "compare Call's new field");
static_assert(sizeof(Result) == 176 && sizeof(Outcome) == 136 &&
                  sizeof(Failure) == 104,
              "compare Result's, Outcome's or Failure's new field");
static_assert(sizeof(ExceptionInfo) == 96 && sizeof(TaskSignature) == 64 &&
                  sizeof(CallSpec) == 64,
              "compare the new field");

// Field-wise equality, for the round-trip check only (wire.h has none).
bool operator==(const TaskSignature& a, const TaskSignature& b) {
  return a.name == b.name &&
         a.signature == b.signature;
}
bool operator==(const CallSpec& a, const CallSpec& b) {
  return a.task == b.task && a.args == b.args;
}
bool operator==(const Config& a, const Config& b) {
  return std::tie(a.protocol_version, a.initializer, a.max_tasks,
                  a.heartbeat_interval_ms, a.memory_limit_bytes,
                  a.keep_freed_memory) ==
         std::tie(b.protocol_version, b.initializer, b.max_tasks,
                  b.heartbeat_interval_ms, b.memory_limit_bytes,
                  b.keep_freed_memory);
}
bool operator==(const Hello& a, const Hello& b) {
  return std::tie(a.protocol_version, a.pid, a.fingerprint, a.tasks) ==
         std::tie(b.protocol_version, b.pid, b.fingerprint, b.tasks);
}
// A Call or Result compares by its elements, whichever form holds them (a
// packed frame decodes packed; its re-encoding need not be packed).
bool operator==(const Call& a, const Call& b) {
  Call ua = a, ub = b;
  Unpack(&ua);
  Unpack(&ub);
  return a.work_id == b.work_id && a.task == b.task && ua.args == ub.args &&
         a.descriptors == b.descriptors && a.held_arrays == b.held_arrays &&
         a.forget_arrays == b.forget_arrays;
}
bool operator==(const ExceptionInfo& a, const ExceptionInfo& b) {
  return a.type_name == b.type_name &&
         std::tie(a.message, a.traceback) == std::tie(b.message, b.traceback);
}
bool operator==(const Outcome& a, const Outcome& b) {
  if (a.ok != b.ok) return false;
  return a.ok ? a.value == b.value : a.exception == b.exception;
}
bool operator==(const Result& a, const Result& b) {
  Result ua = a, ub = b;
  Unpack(&ua);
  Unpack(&ub);
  return std::tie(ua.work_id, ua.outcomes, ua.descriptors, ua.held_arrays,
                  ua.output_writes) ==
         std::tie(ub.work_id, ub.outcomes, ub.descriptors, ub.held_arrays,
                  ub.output_writes);
}
bool operator==(const InitFailed& a, const InitFailed& b) {
  return a.exception == b.exception;
}
bool operator==(const Shutdown&, const Shutdown&) { return true; }
bool operator==(const Fatal& a, const Fatal& b) {
  return a.exception == b.exception;
}

}  // namespace wire
}  // namespace procpool

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace wire = procpool::wire;
  const absl::string_view frame(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<wire::Message> message = wire::DecodeMessage(frame);

  // The same bytes one past an 8-byte boundary.
  std::string shifted(size + 1, '\0');
  if (size != 0) std::memcpy(&shifted[1], data, size);
  absl::StatusOr<wire::Message> unaligned =
      wire::DecodeMessage(absl::string_view(shifted).substr(1));
  FUZZ_CHECK(unaligned.ok() == message.ok(),
             "aligned: " + message.status().ToString() +
                 ", misaligned: " + unaligned.status().ToString());

  if (!message.ok()) {
    FUZZ_CHECK(message.status().code() == absl::StatusCode::kDataLoss,
               message.status().ToString());
    return 0;
  }
  FUZZ_CHECK(*unaligned == *message, "misaligned copy decodes differently");

  const std::string encoded = wire::EncodeMessage(*message);
  absl::StatusOr<wire::Message> again = wire::DecodeMessage(encoded);
  FUZZ_CHECK(again.ok(), std::string("re-encoded ") +
                             wire::MessageKind(*message) +
                             " does not decode: " + again.status().ToString());
  FUZZ_CHECK(*again == *message,
             std::string("round trip changed a ") + wire::MessageKind(*message));
  if (const auto* result = std::get_if<wire::Result>(&*message)) {
    std::string storage;
    FUZZ_CHECK(absl::StrJoin(wire::EncodeMessageParts(*result, &storage), "") ==
                   encoded,
               "a Result's parts are not its frame");
  }
  return 0;
}
