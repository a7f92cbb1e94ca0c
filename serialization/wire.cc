// The messages' encoder and decoder: each wire.h struct to and from
// wire.capnp's builders and readers, in the layouts wire.h describes, over
// the frames of capnp_frame.h.

#include "serialization/wire.h"

#include <kj/exception.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/big_buffers.h"
#include "common/status_macros.h"
#include "serialization/capnp_frame.h"
#include "serialization/wire_pieces.h"
#include "serialization/wire.capnp.h"

namespace procpool {
namespace wire {
namespace {

namespace s = ::procpool::wire::schema;

static_assert(kExternalBlobBytes == kReferencedBlobBytes,
              "wire.h's promise is FrameBuilder::Blob's rule");
static_assert(kMaxPieceBytes % sizeof(capnp::word) == 0 &&
                  kMaxPieceBytes < (size_t{1} << 29),
              "a piece must fit one Data and keep the next one aligned");
// SetPieceBytesForTesting's; 0: kMaxPieceBytes (pieces::PieceBytes).
size_t piece_bytes_for_testing = 0;

using pieces::FirstPiece;
using pieces::ReadPieces;
using pieces::SetTail;
using pieces::SetTails;
using pieces::TailPieces;
using pieces::TailsByIndex;
using pieces::TailWords;

const std::string& Self(const std::string& x) { return x; }
const std::string& ValueOf(const Outcome& o) { return o.value; }

void SetException(FrameBuilder& f, s::ExceptionInfo::Builder b,
                  const ExceptionInfo& e) {
  b.setTypeName(AsText(e.type_name));
  b.adoptMessage(f.Blob(e.message));
  b.adoptTraceback(f.Blob(e.traceback));
}

// Words the builder's first segment should hold: everything but the
// referenced blobs, which cost a pointer and a landing pad each (BlobWords).
size_t FirstSegmentWords(const Config& c) {
  return 32 + (c.initializer ? BlobWords(c.initializer->args) +
                                   c.initializer->task.size() / 8 + 1
                             : 0);
}
size_t FirstSegmentWords(const Hello& h) {
  size_t n = 32;
  for (const auto& t : h.tasks) {
    n += 4 + (t.name.size() + t.signature.size()) / 8 + 2;
  }
  return n;
}
// A packed Call or Result (protocol 2) holds its elements' bytes in one Data
// blob and their ends in a List(UInt32): no pointer, no Data and no landing
// pad per element, and the decoder reads them without a capnp call each.
// Used when every element is small (under kExternalBlobBytes: a big one is
// referenced instead, FrameBuilder::Blob) and the blob stays well below
// Cap'n Proto's limits.
constexpr size_t kMaxPackedBytes = size_t{256} << 20;

bool Packable(const std::vector<std::string>& elements, size_t* total) {
  size_t sum = 0;
  for (const std::string& e : elements) {
    if (e.size() >= kExternalBlobBytes) return false;
    sum += e.size();
  }
  *total = sum;
  return sum <= kMaxPackedBytes && elements.size() <= (1u << 28);
}

bool Packable(const std::vector<Outcome>& outcomes, size_t* total,
              size_t* failed) {
  size_t sum = 0, bad = 0;
  for (const Outcome& o : outcomes) {
    if (!o.ok) {
      ++bad;
      continue;
    }
    if (o.value.size() >= kExternalBlobBytes) return false;
    sum += o.value.size();
  }
  *total = sum;
  *failed = bad;
  return sum <= kMaxPackedBytes && outcomes.size() <= (1u << 28);
}

// Whether a packed Call or Result may keep the packed layout on the wire
// (else each element goes as a Data of its own).
bool PackedFits(const PackedElements& p) {
  return p.bytes.size() <= kMaxPackedBytes && p.size() <= (1u << 28);
}

size_t PackedWords(const PackedElements& p) {
  return p.bytes.size() / 8 + p.size() / 2 + 4;
}

// Protocol 5's array lists (Call/Result::held_arrays, Call::forget_arrays).
template <typename Init>
void SetHeldArrays(const std::vector<uint32_t>& held, Init init) {
  if (held.empty()) return;
  auto list = init(static_cast<unsigned>(held.size()));
  for (unsigned i = 0; i < held.size(); ++i) list.set(i, held[i]);
}
void ReadHeldArrays(capnp::List<uint32_t>::Reader list,
                    std::vector<uint32_t>* held) {
  held->reserve(list.size());
  for (uint32_t index : list) {
    KJ_REQUIRE(held->empty() || index > held->back(),
               "held array indices must increase", index);
    held->push_back(index);
  }
}
size_t ArrayListWords(const Call& c) {
  return c.held_arrays.size() / 2 + 3 * c.forget_arrays.size() + 4;
}

size_t FirstSegmentWords(const Call& c) {
  if (c.args.empty()) {
    return 32 + c.task.size() / 8 + PackedWords(c.packed_args) +
           ArrayListWords(c) +
           (PackedFits(c.packed_args) ? 0 : 2 * c.packed_args.size());
  }
  size_t n = 32 + c.task.size() / 8 + c.args.size() + ArrayListWords(c) +
             TailWords(c.args, Self);
  for (const auto& a : c.args) n += BlobWords(a);
  return n;
}
size_t ExceptionWords(const ExceptionInfo& e) {
  return 8 + e.type_name.size() / 8 + BlobWords(e.message) +
         BlobWords(e.traceback);
}
size_t FirstSegmentWords(const Result& r) {
  if (r.outcomes.empty()) {
    size_t n = 32 + r.held_arrays.size() / 2 + BlobWords(r.output_writes) +
               PackedWords(r.packed_values) +
               (PackedFits(r.packed_values) ? 0 : 4 * r.packed_values.size());
    for (const Failure& f : r.failures) n += 2 + ExceptionWords(f.exception);
    return n;
  }
  size_t n = 32 + r.held_arrays.size() / 2 + BlobWords(r.output_writes) +
             2 * r.outcomes.size() + TailWords(r.outcomes, ValueOf) +
             5 * TailPieces(r.output_writes);
  for (const auto& o : r.outcomes) {
    n += o.ok ? BlobWords(o.value) : ExceptionWords(o.exception);
  }
  return n;
}
size_t FirstSegmentWords(const InitFailed& f) {
  return 32 + ExceptionWords(f.exception);
}
size_t FirstSegmentWords(const Shutdown&) { return 32; }
size_t FirstSegmentWords(const Fatal& f) {
  return 32 + ExceptionWords(f.exception);
}

struct Builder {
  FrameBuilder& f;
  s::Message::Builder root;

  void operator()(const Config& c) {
    auto b = root.initConfig();
    b.setProtocolVersion(c.protocol_version);
    b.setMaxTasks(c.max_tasks);
    b.setHeartbeatIntervalMs(c.heartbeat_interval_ms);
    b.setMemoryLimitBytes(c.memory_limit_bytes);
    b.setKeepFreedMemory(c.keep_freed_memory);
    b.setHasInitializer(c.initializer.has_value());
    if (c.initializer) {
      auto init = b.initInitializer();
      init.setTask(AsText(c.initializer->task));
      init.adoptArgs(f.Blob(c.initializer->args));
    }
  }
  void operator()(const Hello& h) {
    auto b = root.initHello();
    b.setProtocolVersion(h.protocol_version);
    b.setPid(h.pid);
    b.setFingerprint(h.fingerprint);
    auto tasks = b.initTasks(h.tasks.size());
    for (size_t i = 0; i < h.tasks.size(); ++i) {
      tasks[i].setName(AsText(h.tasks[i].name));
      tasks[i].setSignature(AsText(h.tasks[i].signature));
    }
  }
  void operator()(const Call& c) {
    auto b = root.initCall();
    b.setWorkId(c.work_id);
    b.setTask(AsText(c.task));
    b.setDescriptors(c.descriptors);
    SetHeldArrays(c.held_arrays, [&](unsigned n) { return b.initHeldArrays(n); });
    if (!c.forget_arrays.empty()) {
      auto forget =
          b.initForgetArrays(static_cast<unsigned>(c.forget_arrays.size()));
      for (unsigned i = 0; i < c.forget_arrays.size(); ++i) {
        forget[i].setPid(c.forget_arrays[i].pid);
        forget[i].setSerial(c.forget_arrays[i].serial);
        forget[i].setNonce(c.forget_arrays[i].nonce);
      }
    }
    if (c.args.empty()) {
      const PackedElements& p = c.packed_args;
      const unsigned n = static_cast<unsigned>(p.size());
      if (PackedFits(p)) {
        SetPacked(p, b.initArgEnds(n),
                  b.initPackedArgs(static_cast<unsigned>(p.bytes.size())));
        return;
      }
      auto args = b.initArgs(n);
      for (unsigned i = 0; i < n; ++i) args.set(i, AsData(p[i]));
      return;
    }
    size_t total = 0;
    if (Packable(c.args, &total)) {
      // Protocol 2: one blob and the elements' ends (no Data per element).
      auto ends = b.initArgEnds(static_cast<unsigned>(c.args.size()));
      kj::byte* out = b.initPackedArgs(static_cast<unsigned>(total)).begin();
      uint32_t pos = 0;
      for (size_t i = 0; i < c.args.size(); ++i) {
        const std::string& a = c.args[i];
        if (!a.empty()) std::memcpy(out + pos, a.data(), a.size());
        pos += static_cast<uint32_t>(a.size());
        ends.set(static_cast<unsigned>(i), pos);
      }
      return;
    }
    auto args = b.initArgs(c.args.size());
    for (size_t i = 0; i < c.args.size(); ++i) {
      args.adopt(i, f.Blob(FirstPiece(c.args[i])));
    }
    SetTails(f, c.args, Self, [&](unsigned n) { return b.initArgTails(n); });
  }
  void operator()(const Result& r) {
    auto b = root.initResult();
    b.setWorkId(r.work_id);
    b.setDescriptors(r.descriptors);
    SetHeldArrays(r.held_arrays, [&](unsigned n) { return b.initHeldArrays(n); });
    if (!r.output_writes.empty()) {
      b.adoptOutputWrites(f.Blob(FirstPiece(r.output_writes)));
      if (const unsigned pieces = TailPieces(r.output_writes)) {
        SetTail(f, r.output_writes, b.initOutputWritesTail(pieces));
      }
    }
    if (r.outcomes.empty()) {
      const PackedElements& p = r.packed_values;
      const unsigned n = static_cast<unsigned>(p.size());
      if (PackedFits(p)) {
        SetPacked(p, b.initValueEnds(n),
                  b.initPackedValues(static_cast<unsigned>(p.bytes.size())));
        auto failures = b.initFailures(static_cast<unsigned>(r.failures.size()));
        for (unsigned k = 0; k < r.failures.size(); ++k) {
          failures[k].setIndex(r.failures[k].index);
          SetException(f, failures[k].initException(), r.failures[k].exception);
        }
        return;
      }
      auto outcomes = b.initOutcomes(n);
      size_t k = 0;  // the next failure
      for (unsigned i = 0; i < n; ++i) {
        if (k < r.failures.size() && r.failures[k].index == i) {
          SetException(f, outcomes[i].initException(), r.failures[k++].exception);
        } else {
          outcomes[i].setValue(AsData(p[i]));
        }
      }
      return;
    }
    size_t total = 0, failed = 0;
    if (Packable(r.outcomes, &total, &failed)) {
      // Protocol 2: the values in one blob, their ends, and the failures.
      const unsigned n = static_cast<unsigned>(r.outcomes.size());
      auto ends = b.initValueEnds(n);
      kj::byte* out = b.initPackedValues(static_cast<unsigned>(total)).begin();
      auto failures = b.initFailures(static_cast<unsigned>(failed));
      uint32_t pos = 0;
      unsigned k = 0;
      for (unsigned i = 0; i < n; ++i) {
        const Outcome& o = r.outcomes[i];
        if (o.ok) {
          if (!o.value.empty()) {
            std::memcpy(out + pos, o.value.data(), o.value.size());
          }
          pos += static_cast<uint32_t>(o.value.size());
        } else {
          auto fb = failures[k++];
          fb.setIndex(i);
          SetException(f, fb.initException(), o.exception);
        }
        ends.set(i, pos);
      }
      return;
    }
    auto outcomes = b.initOutcomes(r.outcomes.size());
    for (size_t i = 0; i < r.outcomes.size(); ++i) {
      const Outcome& o = r.outcomes[i];
      if (o.ok) {
        outcomes[i].adoptValue(f.Blob(FirstPiece(o.value)));
      } else {
        SetException(f, outcomes[i].initException(), o.exception);
      }
    }
    SetTails(f, r.outcomes, ValueOf,
             [&](unsigned n) { return b.initValueTails(n); });
  }
  void operator()(const InitFailed& e) {
    SetException(f, root.initInitFailed(), e.exception);
  }
  void operator()(const Shutdown&) { root.setShutdown(); }
  void operator()(const Fatal& e) {
    SetException(f, root.initFatal(), e.exception);
  }
};

template <typename T>
std::string Encode(const T& message) {
  FrameBuilder f(FirstSegmentWords(message));
  Builder{f, f.Root<s::Message>()}(message);
  return f.Finish();
}

template <typename T>
std::vector<absl::string_view> EncodeParts(const T& message,
                                           std::string* storage) {
  FrameBuilder f(FirstSegmentWords(message));
  Builder{f, f.Root<s::Message>()}(message);
  return f.FinishParts(storage);
}

// Fills `*e` in place (BlobReader may note its strings).
void GetException(BlobReader& blobs, s::ExceptionInfo::Reader r,
                  ExceptionInfo* e) {
  e->type_name = ToString(r.getTypeName());
  blobs.Read(r.getMessage(), &e->message);
  blobs.Read(r.getTraceback(), &e->traceback);
}

// Reads `root` into `*out` in place (so that the strings BlobReader notes
// stay where they are).
void Read(s::Message::Reader root, BlobReader& blobs, Message* out) {
  switch (root.which()) {
    case s::Message::CONFIG: {
      auto r = root.getConfig();
      Config& c = out->emplace<Config>();
      c.protocol_version = r.getProtocolVersion();
      c.max_tasks = r.getMaxTasks();
      c.heartbeat_interval_ms = r.getHeartbeatIntervalMs();
      c.memory_limit_bytes = r.getMemoryLimitBytes();
      c.keep_freed_memory = r.getKeepFreedMemory();
      if (r.getHasInitializer()) {
        c.initializer.emplace();
        c.initializer->task = ToString(r.getInitializer().getTask());
        blobs.Read(r.getInitializer().getArgs(), &c.initializer->args);
      }
      return;
    }
    case s::Message::HELLO: {
      auto r = root.getHello();
      Hello& h = out->emplace<Hello>();
      h.protocol_version = r.getProtocolVersion();
      h.pid = r.getPid();
      h.fingerprint = r.getFingerprint();
      for (auto t : r.getTasks()) {
        h.tasks.push_back({ToString(t.getName()), ToString(t.getSignature())});
      }
      return;
    }
    case s::Message::CALL: {
      auto r = root.getCall();
      Call& c = out->emplace<Call>();
      c.work_id = r.getWorkId();
      c.task = ToString(r.getTask());
      c.descriptors = r.getDescriptors();
      ReadHeldArrays(r.getHeldArrays(), &c.held_arrays);
      for (auto id : r.getForgetArrays()) {
        c.forget_arrays.push_back(
            ArrayId{id.getPid(), id.getSerial(), id.getNonce()});
      }
      if (r.hasArgEnds()) {
        KJ_REQUIRE(r.getArgs().size() == 0, "packed call also has args");
        KJ_REQUIRE(!r.hasArgTails(), "packed call has tails");
        ReadPackedInto(r.getPackedArgs(), r.getArgEnds(), &c.packed_args);
        return;
      }
      auto args = r.getArgs();
      c.args.resize(args.size());
      const auto tails = TailsByIndex(r.getArgTails(), args.size());
      for (unsigned i = 0; i < args.size(); ++i) {
        ReadPieces(blobs, args[i], tails[i], &c.args[i]);
      }
      return;
    }
    case s::Message::RESULT: {
      auto r = root.getResult();
      Result& res = out->emplace<Result>();
      res.work_id = r.getWorkId();
      res.descriptors = r.getDescriptors();
      ReadHeldArrays(r.getHeldArrays(), &res.held_arrays);
      if (r.hasOutputWrites()) {
        ReadPieces(blobs, r.getOutputWrites(), r.getOutputWritesTail(),
                   &res.output_writes);
      } else {
        KJ_REQUIRE(!r.hasOutputWritesTail(), "a tail without its first piece");
      }
      if (r.hasValueEnds()) {
        KJ_REQUIRE(r.getOutcomes().size() == 0, "packed result also has outcomes");
        KJ_REQUIRE(!r.hasValueTails(), "packed result has tails");
        PackedElements& values = res.packed_values;
        ReadPackedInto(r.getPackedValues(), r.getValueEnds(), &values);
        auto failures = r.getFailures();
        res.failures.resize(failures.size());
        for (unsigned k = 0; k < failures.size(); ++k) {
          const uint32_t i = failures[k].getIndex();
          KJ_REQUIRE(i < values.size(), "failure index past the elements", i);
          KJ_REQUIRE(k == 0 || i > res.failures[k - 1].index,
                     "failure indexes out of order");
          KJ_REQUIRE(values[i].empty(), "failed element has a value", i);
          res.failures[k].index = i;
          GetException(blobs, failures[k].getException(),
                       &res.failures[k].exception);
        }
        return;
      }
      auto outcomes = r.getOutcomes();
      res.outcomes.resize(outcomes.size());
      const auto tails = TailsByIndex(r.getValueTails(), outcomes.size());
      for (unsigned i = 0; i < outcomes.size(); ++i) {
        auto o = outcomes[i];
        Outcome& dst = res.outcomes[i];
        if (o.isValue()) {
          ReadPieces(blobs, o.getValue(), tails[i], &dst.value);
        } else {
          KJ_REQUIRE(tails[i].size() == 0, "a tail for an exception", i);
          dst.ok = false;
          GetException(blobs, o.getException(), &dst.exception);
        }
      }
      return;
    }
    case s::Message::INIT_FAILED:
      GetException(blobs, root.getInitFailed(),
                   &out->emplace<InitFailed>().exception);
      return;
    case s::Message::SHUTDOWN:
      out->emplace<Shutdown>();
      return;
    case s::Message::FATAL:
      GetException(blobs, root.getFatal(), &out->emplace<Fatal>().exception);
      return;
  }
  KJ_FAIL_REQUIRE("unknown message kind", static_cast<int>(root.which()));
}

// DecodeMessage and DecodeOwnedMessage: `owned`, when set, holds the bytes of
// `frame` and may be taken over by the biggest blob.
absl::StatusOr<Message> Decode(absl::string_view frame, std::string* owned) {
  Message out;
  RETURN_IF_ERROR(ReadFrame<s::Message>(
      frame, owned, [&](s::Message::Reader root, BlobReader& blobs) {
        Read(root, blobs, &out);
      }));
  return out;
}

}  // namespace

std::string EncodeMessage(const Message& message) {
  return std::visit([](const auto& m) { return Encode(m); }, message);
}
std::string EncodeMessage(const Config& config) { return Encode(config); }
std::string EncodeMessage(const Call& call) { return Encode(call); }
std::string EncodeMessage(const Result& result) { return Encode(result); }
std::vector<absl::string_view> EncodeMessageParts(const Result& result,
                                                  std::string* storage) {
  return EncodeParts(result, storage);
}
std::vector<absl::string_view> EncodeMessageParts(const Call& call,
                                                  std::string* storage) {
  return EncodeParts(call, storage);
}

bool HasExternalBlobs(const Call& call) {
  return std::any_of(call.args.begin(), call.args.end(),
                     [](const std::string& a) {
                       return a.size() >= kExternalBlobBytes;
                     });
}

namespace {
bool IsBig(const ExceptionInfo& e) {
  return e.message.size() >= kExternalBlobBytes ||
         e.traceback.size() >= kExternalBlobBytes;
}
}  // namespace

bool HasExternalBlobs(const Result& result) {
  // A packed form's values are copied into the frame whatever their size.
  return std::any_of(result.outcomes.begin(), result.outcomes.end(),
                     [](const Outcome& o) {
                       return o.value.size() >= kExternalBlobBytes ||
                              IsBig(o.exception);
                     }) ||
         std::any_of(result.failures.begin(), result.failures.end(),
                     [](const Failure& f) { return IsBig(f.exception); });
}

void Unpack(Call* call) {
  if (!call->args.empty() || call->packed_args.empty()) return;
  call->args = call->packed_args.Unpack();
  call->packed_args.clear();
}

void Unpack(Result* result) {
  if (!result->outcomes.empty() || result->packed_values.empty()) return;
  const PackedElements& values = result->packed_values;
  result->outcomes.resize(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    result->outcomes[i].value.assign(values[i].data(), values[i].size());
  }
  for (Failure& f : result->failures) {
    Outcome& o = result->outcomes[f.index];
    o.ok = false;
    o.exception = std::move(f.exception);
  }
  result->packed_values.clear();
  result->failures.clear();
}

absl::StatusOr<Message> DecodeMessage(absl::string_view frame) {
  return Decode(frame, nullptr);
}

absl::StatusOr<Message> DecodeOwnedMessage(std::string frame) {
  absl::StatusOr<Message> message = Decode(frame, &frame);
  RecycleBigBuffer(std::move(frame));  // unless a blob took it over
  return message;
}

const char* MessageKind(const Message& message) {
  static constexpr const char* kNames[] = {"config", "hello",      "call",
                                           "result", "init_failed", "shutdown",
                                           "fatal"};
  return kNames[message.index()];
}

void SetPieceBytesForTesting(size_t bytes) { piece_bytes_for_testing = bytes; }

size_t pieces::PieceBytes() {
  return piece_bytes_for_testing != 0 ? piece_bytes_for_testing
                                      : kMaxPieceBytes;
}

}  // namespace wire
}  // namespace procpool
