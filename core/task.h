// Registering tasks: the C++ functions a worker may run.
//
// A task is a plain function whose parameters and result are encodable
// (serialization/codec.h). Register it once, at namespace scope in a .cc file
// that is linked into both the parent program and the worker binary (use
// procpool_task_library(), which keeps it at link time):
//
//   int Square(int x) { return x * x; }
//   PROCPOOL_TASK(Square);               // registered name: "Square"
//
// The parent finds a task by its function pointer at Submit time; the worker
// finds it by name. Each task's signature ("i32(i32)" in codec signatures)
// goes into the handshake, so a worker binary built from different task code is
// caught before it runs anything.
//
// Thread safety: registration happens during static initialization (tasks
// cannot be registered once main() runs threads); lookups are lock-free and
// thread-safe afterwards.
#ifndef PROCPOOL_CORE_TASK_H_
#define PROCPOOL_CORE_TASK_H_

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "serialization/codec.h"
#include "serialization/task_value.h"

namespace procpool {
namespace internal {

// Runs a task on one encoded argument tuple and returns the encoded result.
// A malformed argument tuple is an error status; whatever the task (or the
// encoding of its result) throws propagates as that exception. `args` is
// taken: a lone string argument keeps its buffer (DecodeTaskValue,
// serialization/task_value.h).
using TaskInvoker = absl::StatusOr<std::string> (*)(std::string args);

// TaskInvoker for an element of a packed Map chunk (serialization/packed.h):
// runs the task on `args` (the caller keeps them) and appends the encoded
// result to `*out` (the writer of the chunk's packed values), so that a small
// element costs no string of its own; except a std::string result of
// `own_bytes` or more, which is moved into `*own` instead (it then goes from
// its own buffer into the transport). Whatever the task throws propagates;
// `*out` then holds what it held, perhaps followed by part of the result (the
// caller cuts it off).
using TaskRunner = absl::Status (*)(absl::string_view args, Writer* out,
                                    size_t own_bytes, std::string* own);

// One registered task.
struct TaskInfo {
  std::string name;       // as written in PROCPOOL_TASK, e.g. "Square"
  std::string signature;  // codec signature, e.g. "i32(i32)"
  TaskInvoker invoke = nullptr;
  TaskRunner run = nullptr;
};

// Registers a task; `fn` is the function's address (the key Submit uses).
// A second task under the same name is a fatal error at start-up.
void RegisterTask(const void* fn, TaskInfo info);

// Lookups: null when not registered.
const TaskInfo* FindTaskByName(absl::string_view name);
const TaskInfo* FindTaskByFunction(const void* fn);

// Every registered task, sorted by name, and a 64-bit fingerprint of them.
std::vector<const TaskInfo*> AllTasks();
uint64_t TaskFingerprint();

// The error message for a function that was never registered.
std::string NotRegisteredMessage();

template <typename F>
struct FunctionTraits;

template <typename R, typename... P>
struct FunctionTraits<R (*)(P...)> {
  using Result = R;
  using Args = std::tuple<std::decay_t<P>...>;
  static constexpr size_t kArity = sizeof...(P);

  static std::string Signature() {
    std::string s;
    if constexpr (std::is_void_v<R>) {
      s = "void";
    } else {
      s = TypeSignature<std::decay_t<R>>();
    }
    s += "(";
    size_t i = 0;
    ((s += (i++ ? "," : ""), s += TypeSignature<std::decay_t<P>>()), ...);
    s += ")";
    return s;
  }
};

// Passes a decoded argument to a parameter of type P: by-value and rvalue
// parameters take it by move, lvalue-reference parameters by reference.
template <typename P, typename T>
decltype(auto) PassArg(T& value) {
  if constexpr (std::is_lvalue_reference_v<P>) {
    return (value);
  } else {
    return std::move(value);
  }
}

template <auto Fn, typename R, typename... P, size_t... I>
absl::StatusOr<std::string> InvokeImpl(std::string bytes,
                                       std::index_sequence<I...>) {
  using Args = std::tuple<std::decay_t<P>...>;
  absl::StatusOr<Args> args = DecodeTaskValue<Args>(std::move(bytes));
  if (!args.ok()) return args.status();
  if constexpr (std::is_void_v<R>) {
    Fn(PassArg<P>(std::get<I>(*args))...);
    return std::string();
  } else {
    // A std::string returned by value is sent as it is (task_value.h).
    return EncodeTaskValue(Fn(PassArg<P>(std::get<I>(*args))...));
  }
}

template <auto Fn, typename R, typename... P, size_t... I>
absl::Status RunImpl(absl::string_view bytes, Writer* out,
                     size_t own_bytes, std::string* own,
                     std::index_sequence<I...>) {
  using Args = std::tuple<std::decay_t<P>...>;
  // DecodeTaskValueView without its StatusOr (~5 of ~9 ns for an int).
  std::optional<Args> args;
  if constexpr (kIsLoneString<Args>) {
    args.emplace(std::string(bytes));
  } else {
    absl::Status decoded = CatchExceptions([&] {
      args.emplace();  // may throw (a user type's constructor)
      return DecodeValueInto(bytes, &*args);
    });
    if (!decoded.ok()) return decoded;
  }
  if constexpr (std::is_void_v<R>) {
    Fn(PassArg<P>(std::get<I>(*args))...);
  } else if constexpr (kIsLoneString<std::decay_t<R>>) {
    // std::string or std::tuple<std::string>: its bytes (task_value.h).
    std::string value = EncodeTaskValue(Fn(PassArg<P>(std::get<I>(*args))...));
    if (value.size() >= own_bytes) {
      *own = std::move(value);
    } else {
      out->WriteBytes(value.data(), value.size());
    }
  } else {
    Codec<std::decay_t<R>>::Encode(*out, Fn(PassArg<P>(std::get<I>(*args))...));
  }
  return absl::OkStatus();
}

template <auto Fn, typename F = decltype(Fn)>
struct TaskInvokerFor;

template <auto Fn, typename R, typename... P>
struct TaskInvokerFor<Fn, R (*)(P...)> {
  static absl::StatusOr<std::string> Invoke(std::string bytes) {
    return InvokeImpl<Fn, R, P...>(std::move(bytes),
                                   std::index_sequence_for<P...>{});
  }
  static absl::Status Run(absl::string_view bytes, Writer* out,
                          size_t own_bytes, std::string* own) {
    return RunImpl<Fn, R, P...>(bytes, out, own_bytes, own,
                                std::index_sequence_for<P...>{});
  }
};

template <auto Fn>
bool RegisterTaskFn(const char* name) {
  using Traits = FunctionTraits<decltype(Fn)>;
  RegisterTask(reinterpret_cast<const void*>(Fn),
               TaskInfo{name, Traits::Signature(),
                        &TaskInvokerFor<Fn>::Invoke, &TaskInvokerFor<Fn>::Run});
  return true;
}

// An argument as its parameter's (decayed) type: the argument itself when it
// already is one, so that a big string or vector is not copied just to be
// encoded; otherwise converted as a call would.
template <typename P, typename A>
decltype(auto) AsParam(A&& arg) {
  using D = std::decay_t<P>;
  if constexpr (std::is_same_v<std::decay_t<A>, D>) {
    return static_cast<const D&>(arg);
  } else {
    return D(std::forward<A>(arg));
  }
}

// The encoded argument tuple for calling `fn` with `args` (below), appended
// to `w` (the writer of a Map chunk's packed elements); not for a task whose
// argument tuple is a lone std::string (that one is its bytes already).
template <typename R, typename... P, typename... A>
void AppendArgs(Writer& w, R (*)(P...), A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A),
                "procpool: wrong number of arguments for this task");
  static_assert(!kIsLoneString<std::tuple<std::decay_t<P>...>>);
  (Codec<std::decay_t<P>>::Encode(w, AsParam<P>(std::forward<A>(args))), ...);
}

// The encoded argument tuple for calling `fn` with `args` (converted to the
// parameter types first, as a call would): the encoding of
// std::tuple<std::decay_t<P>...>, written element by element without building
// the tuple; for one std::string parameter, the string's bytes (task_value.h's
// DecodeTaskValue), taken over when the argument is a std::string rvalue.
template <typename R, typename... P, typename... A>
std::string EncodeArgs(R (*fn)(P...), A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A),
                "procpool: wrong number of arguments for this task");
  if constexpr (kIsLoneString<std::tuple<std::decay_t<P>...>>) {
    if constexpr ((std::is_same_v<A, std::string> && ...)) {
      return std::string(std::move(args)...);  // an rvalue: no copy
    } else {
      return EncodeTaskValue(AsParam<P...>(std::forward<A>(args)...));
    }
  } else {
    Writer w;
    AppendArgs(w, fn, std::forward<A>(args)...);
    return w.Release();
  }
}

}  // namespace internal
}  // namespace procpool

#define PROCPOOL_TASK_CONCAT_INNER_(a, b) a##b
#define PROCPOOL_TASK_CONCAT_(a, b) PROCPOOL_TASK_CONCAT_INNER_(a, b)

// Registers `fn` (a function name, optionally qualified) as a task named #fn,
// the text as written: PROCPOOL_TASK(Square) inside namespace ns registers
// "Square", PROCPOOL_TASK(ns::Square) registers "ns::Square". Two tasks under
// one name are a fatal error at start-up, so qualify same-named functions of
// different namespaces. At most one PROCPOOL_TASK per line (the variable it
// defines is named after __LINE__). An overloaded name cannot be registered
// (&fn would be ambiguous); register a uniquely named wrapper instead.
#define PROCPOOL_TASK(fn)                                           \
  static const bool PROCPOOL_TASK_CONCAT_(procpool_task_, __LINE__) \
      [[maybe_unused]] = ::procpool::internal::RegisterTaskFn<&fn>(#fn)

#endif  // PROCPOOL_CORE_TASK_H_
