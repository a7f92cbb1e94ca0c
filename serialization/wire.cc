#include "serialization/wire.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "serialization/wire.capnp.h"

namespace procpool {
namespace wire {
namespace {

namespace s = ::procpool::wire::schema;

kj::ArrayPtr<const kj::byte> Bytes(const std::string& s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

// All of `s`, NULs included (a const char* would stop at the first NUL).
capnp::Text::Reader AsText(const std::string& s) {
  return capnp::Text::Reader(s.data(), s.size());
}

std::string ToString(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}

std::string ToString(capnp::Text::Reader t) {
  return std::string(t.begin(), t.size());
}

void SetException(s::ExceptionInfo::Builder b, const ExceptionInfo& e) {
  b.setTypeName(AsText(e.type_name));
  b.setMessage(Bytes(e.message));
  b.setTraceback(Bytes(e.traceback));
}

ExceptionInfo GetException(s::ExceptionInfo::Reader r) {
  return ExceptionInfo{ToString(r.getTypeName()), ToString(r.getMessage()),
                       ToString(r.getTraceback())};
}

struct Builder {
  s::Message::Builder root;

  void operator()(const Config& c) {
    auto b = root.initConfig();
    b.setProtocolVersion(c.protocol_version);
    b.setMaxTasks(c.max_tasks);
    b.setHeartbeatIntervalMs(c.heartbeat_interval_ms);
    b.setMemoryLimitBytes(c.memory_limit_bytes);
    b.setHasInitializer(c.initializer.has_value());
    if (c.initializer) {
      auto init = b.initInitializer();
      init.setTask(AsText(c.initializer->task));
      init.setArgs(Bytes(c.initializer->args));
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
    auto args = b.initArgs(c.args.size());
    for (size_t i = 0; i < c.args.size(); ++i) args.set(i, Bytes(c.args[i]));
  }
  void operator()(const Result& r) {
    auto b = root.initResult();
    b.setWorkId(r.work_id);
    auto outcomes = b.initOutcomes(r.outcomes.size());
    for (size_t i = 0; i < r.outcomes.size(); ++i) {
      const Outcome& o = r.outcomes[i];
      if (o.ok) {
        outcomes[i].setValue(Bytes(o.value));
      } else {
        SetException(outcomes[i].initException(), o.exception);
      }
    }
  }
  void operator()(const InitFailed& f) {
    SetException(root.initInitFailed(), f.exception);
  }
  void operator()(const Shutdown&) { root.setShutdown(); }
  void operator()(const Fatal& f) { SetException(root.initFatal(), f.exception); }
};

size_t PayloadBytes(const Message& m) {
  size_t n = 0;
  if (auto* c = std::get_if<Call>(&m)) {
    for (const auto& a : c->args) n += a.size() + 8;
  } else if (auto* r = std::get_if<Result>(&m)) {
    for (const auto& o : r->outcomes) n += o.value.size() + 64;
  }
  return n;
}

Message Read(s::Message::Reader root) {
  switch (root.which()) {
    case s::Message::CONFIG: {
      auto r = root.getConfig();
      Config c;
      c.protocol_version = r.getProtocolVersion();
      c.max_tasks = r.getMaxTasks();
      c.heartbeat_interval_ms = r.getHeartbeatIntervalMs();
      c.memory_limit_bytes = r.getMemoryLimitBytes();
      if (r.getHasInitializer()) {
        c.initializer = CallSpec{ToString(r.getInitializer().getTask()),
                                 ToString(r.getInitializer().getArgs())};
      }
      return c;
    }
    case s::Message::HELLO: {
      auto r = root.getHello();
      Hello h;
      h.protocol_version = r.getProtocolVersion();
      h.pid = r.getPid();
      h.fingerprint = r.getFingerprint();
      for (auto t : r.getTasks()) {
        h.tasks.push_back({ToString(t.getName()), ToString(t.getSignature())});
      }
      return h;
    }
    case s::Message::CALL: {
      auto r = root.getCall();
      Call c;
      c.work_id = r.getWorkId();
      c.task = ToString(r.getTask());
      c.args.reserve(r.getArgs().size());
      for (auto a : r.getArgs()) c.args.push_back(ToString(a));
      return c;
    }
    case s::Message::RESULT: {
      auto r = root.getResult();
      Result res;
      res.work_id = r.getWorkId();
      res.outcomes.reserve(r.getOutcomes().size());
      for (auto o : r.getOutcomes()) {
        Outcome out;
        if (o.isValue()) {
          out.value = ToString(o.getValue());
        } else {
          out.ok = false;
          out.exception = GetException(o.getException());
        }
        res.outcomes.push_back(std::move(out));
      }
      return res;
    }
    case s::Message::INIT_FAILED:
      return InitFailed{GetException(root.getInitFailed())};
    case s::Message::SHUTDOWN:
      return Shutdown{};
    case s::Message::FATAL:
      return Fatal{GetException(root.getFatal())};
  }
  KJ_FAIL_REQUIRE("unknown message kind", static_cast<int>(root.which()));
}

}  // namespace

std::string EncodeMessage(const Message& message) {
  // One first segment big enough for the payload keeps the frame contiguous.
  size_t words = (PayloadBytes(message) + 256) / sizeof(capnp::word) + 1;
  capnp::MallocMessageBuilder builder(
      static_cast<unsigned>(std::min<size_t>(words, 1u << 29)),
      capnp::AllocationStrategy::GROW_HEURISTICALLY);
  std::visit(Builder{builder.initRoot<s::Message>()}, message);
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(builder);
  kj::ArrayPtr<const char> chars = flat.asChars();
  return std::string(chars.begin(), chars.size());
}

absl::StatusOr<Message> DecodeMessage(absl::string_view frame) {
  if (frame.size() % sizeof(capnp::word) != 0 || frame.empty()) {
    return absl::DataLossError(absl::StrCat(
        "corrupted frame: ", frame.size(),
        " bytes is not a whole number of 8-byte words"));
  }
  // Cap'n Proto reads words in place and needs them aligned.
  kj::Array<capnp::word> copy;
  kj::ArrayPtr<const capnp::word> words(
      reinterpret_cast<const capnp::word*>(frame.data()),
      frame.size() / sizeof(capnp::word));
  if (reinterpret_cast<uintptr_t>(frame.data()) % alignof(capnp::word) != 0) {
    copy = kj::heapArray<capnp::word>(words.size());
    std::memcpy(copy.begin(), frame.data(), frame.size());
    words = copy;
  }
  capnp::ReaderOptions options;
  options.traversalLimitInWords = words.size() * 2 + 1024;
  Message out;
  kj::Maybe<kj::Exception> error = kj::runCatchingExceptions([&] {
    capnp::FlatArrayMessageReader reader(words, options);
    out = Read(reader.getRoot<s::Message>());
  });
  KJ_IF_MAYBE(e, error) {
    return absl::DataLossError(absl::StrCat(
        "corrupted frame: ", e->getDescription().cStr()));
  }
  return out;
}

const char* MessageKind(const Message& message) {
  static constexpr const char* kNames[] = {"config", "hello",      "call",
                                           "result", "init_failed", "shutdown",
                                           "fatal"};
  return kNames[message.index()];
}

}  // namespace wire
}  // namespace procpool
