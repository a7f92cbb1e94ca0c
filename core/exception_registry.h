// Ships a task's exception from a worker to the parent and rebuilds it there.
//
// Worker side: inside `catch (...)`, CaptureCurrentException() names the
// thrown object's dynamic type and takes its message. Parent side:
// RebuildException() turns that name and message back into an exception
// (with a RemoteTraceback attached, errors.h):
//   * the standard types of API.md (std::invalid_argument, std::out_of_range,
//     std::runtime_error, std::logic_error, std::domain_error,
//     std::length_error, std::overflow_error, std::underflow_error,
//     std::range_error, std::bad_alloc), procpool's own errors (Error and its
//     subclasses, RemoteError), and types registered with PROCPOOL_EXCEPTION
//     come back as themselves, with the same what();
//   * anything else comes back as RemoteError with the original type name.
// Types match on the exact dynamic type: `struct MyErr : std::runtime_error`
// that is not registered comes back as RemoteError("MyErr"), never as a
// std::runtime_error. (BrokenProcessPool comes back with its what() but
// without its WorkerCrash fields.)
//
// A worker and its parent find each other's types by registered name, so both
// must register the same names (they usually run the same binary).
//
// Example:
//   // my_tasks.cc
//   namespace ns {
//   struct MyError : std::runtime_error { using std::runtime_error::runtime_error; };
//   PROCPOOL_EXCEPTION(MyError);  // registered name "MyError"
//   }  // namespace ns
//
//   // worker
//   try { RunTask(); } catch (...) {
//     CapturedException c = CaptureCurrentException();
//     Send(c.type_name, c.message, CurrentStackTrace());
//   }
//   // parent
//   std::exception_ptr e = RebuildException(type_name, message,
//                                           {pid, task_name, type_name, stack});
//   std::rethrow_exception(e);  // catch (const ns::MyError&) catches it
//
// Thread safety: every function here may be called from any thread, and at
// static-initialization time.
#ifndef PROCPOOL_CORE_EXCEPTION_REGISTRY_H_
#define PROCPOOL_CORE_EXCEPTION_REGISTRY_H_

#include <exception>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "absl/strings/string_view.h"
#include "core/errors.h"

namespace procpool {

// What a worker sends to its parent about a task's exception.
struct CapturedException {
  // The registered name for registered, standard and procpool types
  // ("std::invalid_argument", "procpool::TimeoutError", "MyError"), else the
  // demangled dynamic type ("ns::Unregistered", "int").
  std::string type_name;
  // what() for a std::exception; otherwise a sentence naming the type, e.g.
  // "task threw a non-std::exception of type int".
  std::string message;
};

// Describes the exception being handled. Call it inside a `catch (...)` (or
// any catch) block; it never throws. Outside one it returns type "unknown".
//
// An exception that was itself rebuilt from another worker (a task that used
// a pool of its own) is reported under its original type name.
CapturedException CaptureCurrentException();

// Returns the exception to rethrow in the parent: WithRemoteTraceback<E> for a
// registered, standard or procpool type named `type_name`, else
// WithRemoteTraceback<RemoteError> whose type_name() is `type_name` and whose
// what() is `message`. `info.type_name` is set to `type_name`.
std::exception_ptr RebuildException(const std::string& type_name,
                                    const std::string& message,
                                    RemoteTracebackInfo info);

// The current thread's stack, one "0x... Symbol" line per frame (symbols
// without parameter lists, "(unknown)" where none is found), the innermost
// first, skipping this function and `skip_frames` callers. For
// RemoteTracebackInfo::traceback. Inside a catch block the throwing frames are
// already gone: this is the stack of the handler.
std::string CurrentStackTrace(int skip_frames = 0);

// Builds the exception RebuildException() returns for one registered type.
using ExceptionFactory = std::exception_ptr (*)(const std::string& message,
                                               RemoteTracebackInfo info);

// Registers `type` under `name` with `factory`. Registering the same type
// under the same name again is a no-op. Returns false (and logs) if `name` or
// `type` is already registered otherwise; the first registration stays.
// Prefer PROCPOOL_EXCEPTION.
bool RegisterException(const std::type_info& type, absl::string_view name,
                       ExceptionFactory factory);

namespace exception_internal {

template <class E>
std::exception_ptr Make(const std::string& message, RemoteTracebackInfo info) {
  return std::make_exception_ptr(
      WithRemoteTraceback<E>(std::move(info), message));
}

template <class E>
bool Register(absl::string_view name) {
  static_assert(std::is_base_of<std::exception, E>::value,
                "PROCPOOL_EXCEPTION: the type must derive from std::exception");
  static_assert(std::is_constructible<E, const std::string&>::value,
                "PROCPOOL_EXCEPTION: the type must be constructible from "
                "std::string");
  static_assert(!std::is_final<E>::value,
                "PROCPOOL_EXCEPTION: the type must not be final (the parent "
                "rebuilds it as a subclass carrying the remote traceback)");
  return RegisterException(typeid(E), name, &Make<E>);
}

}  // namespace exception_internal
}  // namespace procpool

#define PROCPOOL_EXCEPTION_CONCAT_INNER_(a, b) a##b
#define PROCPOOL_EXCEPTION_CONCAT_(a, b) PROCPOOL_EXCEPTION_CONCAT_INNER_(a, b)

// PROCPOOL_EXCEPTION(MyError); at namespace scope in a .cc file registers
// MyError (derived from std::exception, constructible from std::string, not
// final) under the name written, e.g. "MyError" or "ns::MyError", at static
// initialization time. May appear several times in one file. In a library,
// the .cc must be linked in (alwayslink, as procpool_task_library does).
#define PROCPOOL_EXCEPTION(type)                                         \
  [[maybe_unused]] static const bool PROCPOOL_EXCEPTION_CONCAT_(         \
      procpool_exception_registered_, __COUNTER__) =                     \
      ::procpool::exception_internal::Register<type>(#type)

#endif  // PROCPOOL_CORE_EXCEPTION_REGISTRY_H_
