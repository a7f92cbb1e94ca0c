// The messages of the parent <-> worker protocol, as plain C++ structs.
//
// wire.capnp is the schema; this header keeps Cap'n Proto out of every other
// package (nothing outside serialization/ includes a capnp header). A frame on a
// Channel is exactly one encoded Message.
//
// Conversation:
//   parent -> worker: Config (first), then Call*, then Shutdown.
//   worker -> parent: Hello (after reading Config), then one Result per Call,
//                     or InitFailed if the initializer threw, or Fatal on a
//                     protocol error (then it exits).
//
// Example:
//   std::string frame = wire::EncodeMessage(wire::Call{7, "Square", {args}});
//   ASSIGN_OR_RETURN(wire::Message m, wire::DecodeMessage(frame));
//   // or, giving the frame up: wire::DecodeOwnedMessage(std::move(frame))
//   if (auto* call = std::get_if<wire::Call>(&m)) ...
//
// Layout. A frame is one standard Cap'n Proto message whose root is
// wire.capnp's Message (capnp_frame.h writes and reads it). A task's argument
// tuple and its result are Data blobs encoded by the value codec, a lone
// std::string being its bytes (task_value.h; protocol 3). A Call's elements
// and a Result's outcomes take one of two layouts, which the decoder tells
// apart by argEnds/valueEnds being set:
//   packed (protocol 2): one Data blob of the elements' bytes, one after the
//     other (packedArgs/packedValues), a List(UInt32) of where each element
//     ends (argEnds/valueEnds), and for a Result the failed elements by
//     increasing index (failures; a failed element's value is empty). Used
//     when the elements total at most 256 MiB in at most 2^28 elements and,
//     unless the struct is already packed, each is under kExternalBlobBytes:
//     no Cap'n Proto pointer per element, and a Map chunk decodes into one
//     buffer.
//   one per element otherwise: a Data each (args), or an Outcome each
//     (outcomes: a value or an exception). A blob of kExternalBlobBytes or
//     more is referenced by the encoder, not copied into its builder (a
//     segment of its own), so its bytes are copied once, into the frame, or
//     not at all (EncodeMessageParts). A string longer than one Data holds
//     (kMaxPieceBytes) goes as its first piece there and the rest in a Tail
//     (argTails, valueTails, outputWritesTail; protocol 7), which the
//     decoder appends (one copy).
// Either form of the structs (a string per element, or PackedElements)
// encodes to either layout; the frame does not say which form it came from.
//
// DecodeMessage never crashes on bad bytes: truncated, misaligned or corrupted
// frames are a kDataLoss status that says what is wrong.
//
// Thread safety: the functions are thread-safe; the structs are values.
#ifndef PROCPOOL_SERIALIZATION_WIRE_H_
#define PROCPOOL_SERIALIZATION_WIRE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "serialization/packed.h"

namespace procpool {
namespace wire {

// Bumped whenever a message changes incompatibly.
// 2: small elements of a Call or Result travel packed (one blob and a list
// of offsets; "Layout" above).
// 3: a lone std::string argument or result is its bytes, with no length
// prefix (task_value.h's DecodeTaskValue).
// 4: a shared array goes by reference where the channel carries
// descriptors: its memfd travels beside the frame (Call/Result::descriptors).
// 5: a memfd travels once per worker: Call/Result::held_arrays name the
// arrays that come without one, Call::forget_arrays what the worker drops.
// 6: an output array that went by value comes back as the bytes its tasks
// changed (Result::output_writes).
// 7: an argument tuple, a value or output_writes longer than kMaxPieceBytes
// goes as pieces (Call.argTails, Result.valueTails, outputWritesTail).
inline constexpr uint32_t kProtocolVersion = 7;

// A shared array's identity as it crosses the wire (shared_array/handle.h's
// BufferId).
struct ArrayId {
  uint32_t pid = 0;
  uint64_t serial = 0;
  uint64_t nonce = 0;
  friend bool operator==(const ArrayId& a, const ArrayId& b) {
    return a.pid == b.pid && a.serial == b.serial && a.nonce == b.nonce;
  }
};

// One task as a worker knows it (Hello::tasks).
struct TaskSignature {
  std::string name;
  std::string signature;
};

// A registered task bound to its encoded argument tuple.
struct CallSpec {
  std::string task;  // registered name
  std::string args;  // the encoded argument tuple (codec.h)
};

// parent -> worker, first: how to start serving.
struct Config {
  uint32_t protocol_version = kProtocolVersion;
  std::optional<CallSpec> initializer;  // run once before the first Call
  int64_t max_tasks = 0;  // Calls to serve before exiting; 0: unlimited
  uint32_t heartbeat_interval_ms = 0;  // 0: no heartbeats
  int64_t memory_limit_bytes = 0;      // RLIMIT_AS; 0: none
  bool keep_freed_memory = false;      // Options::workers_keep_freed_memory
};

// worker -> parent, the answer to Config: who the worker is and which tasks
// it serves. The parent checks both before sending any Call.
struct Hello {
  uint32_t protocol_version = kProtocolVersion;
  int32_t pid = 0;
  uint64_t fingerprint = 0;          // of every task's name and signature
  std::vector<TaskSignature> tasks;  // every registered task
};

// parent -> worker: run `task` once per element (one for Submit, a chunk for
// Map) and answer with one Result.
//
// The elements, one encoded tuple each, are in one of two forms: `args`, a
// string each (a big argument keeps its own buffer), or, when `args` is
// empty, `packed_args` (serialization/packed.h): what Map builds its chunks
// as and what DecodeMessage gives for a packed frame, so that a chunk of
// small elements costs no string per element. Either form encodes to either
// layout on the wire (above): the frame does not tell them apart.
struct Call {
  uint64_t work_id = 0;  // chosen by the parent, echoed in the Result
  std::string task;
  std::vector<std::string> args;  // one encoded tuple per element, or
  PackedElements packed_args;     // all of them here, when args is empty
  // How many descriptors travel beside the frame (Channel's
  // SendPartsWithDescriptors): the memfds of the shared arrays that the
  // arguments name by index (shared_array/transfer.h).
  uint32_t descriptors = 0;
  // The indices, increasing, of the arrays that come without their memfd:
  // the worker holds them from an earlier call. The descriptors are the
  // other arrays', in index order.
  std::vector<uint32_t> held_arrays;
  // The arrays the worker drops from its cache before this call's arguments
  // are decoded (the parent's picture of that cache: shared_array/
  // peer_arrays.h).
  std::vector<ArrayId> forget_arrays;

  // The number of elements.
  size_t size() const { return args.empty() ? packed_args.size() : args.size(); }
};

// An exception as it crosses the wire (core/exception_registry.h).
struct ExceptionInfo {
  std::string type_name;
  std::string message;
  std::string traceback;
};

// The result of one element of a Call: an encoded value or an exception.
struct Outcome {
  bool ok = true;
  std::string value;        // when ok
  ExceptionInfo exception;  // when !ok
};

// A failed element of a packed Result.
struct Failure {
  uint32_t index = 0;  // of the element
  ExceptionInfo exception;
};

// worker -> parent: the answer to the Call with the same work_id: one outcome
// per element of the Call, in order, in one of two forms (as Call's): a
// wire::Outcome each, or, when `outcomes` is empty, `packed_values` (a failed
// element's value is empty) with the failed elements in `failures`, by
// increasing index. DecodeMessage gives the packed form for a packed frame.
struct Result {
  uint64_t work_id = 0;
  std::vector<Outcome> outcomes;
  PackedElements packed_values;
  std::vector<Failure> failures;
  uint32_t descriptors = 0;  // as Call's, for the shared arrays in the values
  // As Call's: the arrays whose memfd does not come because the parent holds
  // them (the Call brought them).
  std::vector<uint32_t> held_arrays;
  // The bytes the tasks changed in the copies of output arrays that came by
  // value (shared_array/output_writes.h; opaque here); empty if none.
  std::string output_writes;

  // The number of elements.
  size_t size() const {
    return outcomes.empty() ? packed_values.size() : outcomes.size();
  }
};

// Turns a packed Call or Result into the form with a string (an Outcome) per
// element; a no-op for one that is not packed.
void Unpack(Call* call);
void Unpack(Result* result);

// worker -> parent, instead of serving: the initializer threw. The worker
// then exits.
struct InitFailed {
  ExceptionInfo exception;
};

// parent -> worker: exit (the worker reads it between Calls).
struct Shutdown {};

// The worker could not go on (it could not decode a call, say) and exits.
struct Fatal {
  ExceptionInfo exception;
};

using Message =
    std::variant<Config, Hello, Call, Result, InitFailed, Shutdown, Fatal>;

// Encodes `message` as one frame. Each payload byte (Data fields: arguments,
// values, exception messages) is copied once, into the frame. The overloads
// for the kinds that carry payloads save building a Message (a copy of all of
// it) from a Config, Call or Result.
std::string EncodeMessage(const Message& message);
std::string EncodeMessage(const Config& config);
std::string EncodeMessage(const Call& call);
std::string EncodeMessage(const Result& result);

// Byte strings at least this big are referenced by the encoder, not copied
// into its message (each becomes a segment of its own; capnp_frame.h).
inline constexpr size_t kExternalBlobBytes = size_t{16} << 10;

// The most bytes of a string one Cap'n Proto Data carries (it counts its
// bytes in 29 bits), less a word so that the next piece starts aligned: an
// element's encoded arguments, a value or Result::output_writes that is
// longer goes as pieces of this size (protocol 7), reassembled (one copy) by
// the decoder. No bound of its own beyond the transports' frame limits.
inline constexpr size_t kMaxPieceBytes = (size_t{1} << 29) - 8;

// For tests: pieces of `bytes` instead of kMaxPieceBytes (a multiple of 8;
// 0 restores it), so that a test need not build half a gigabyte. Not
// thread-safe: set it before encoding.
void SetPieceBytesForTesting(size_t bytes);

// EncodeMessage's frame as parts whose concatenation it is, for
// Channel::SendBlockingParts and SendParts: each value or argument of
// kExternalBlobBytes or more is a view of its own bytes in the message (not
// copied into a frame); the rest is in `*storage`. The message and
// `*storage` must outlive the parts and not change meanwhile.
std::vector<absl::string_view> EncodeMessageParts(const Result& result,
                                                  std::string* storage);
std::vector<absl::string_view> EncodeMessageParts(const Call& call,
                                                  std::string* storage);

// Whether a byte string of the message is kExternalBlobBytes or more: only
// then do EncodeMessageParts' parts save a copy (otherwise EncodeMessage's one
// frame costs fewer allocations).
bool HasExternalBlobs(const Call& call);
bool HasExternalBlobs(const Result& result);

// Decodes one frame; kDataLoss with a description on any malformed input.
// Every byte string of the message is a copy of its bytes in `frame`.
absl::StatusOr<Message> DecodeMessage(absl::string_view frame);

// DecodeMessage for a frame the caller gives up: the message's biggest byte
// string (64 KiB or more) takes over the frame's buffer instead of being
// copied into new memory (its bytes move down to the start of the buffer,
// whose capacity stays that of the frame).
absl::StatusOr<Message> DecodeOwnedMessage(std::string frame);

// The name of the message's kind ("config", "call", ...), for errors and logs.
const char* MessageKind(const Message& message);

}  // namespace wire
}  // namespace procpool

#endif  // PROCPOOL_SERIALIZATION_WIRE_H_
