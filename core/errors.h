// The exceptions of procpool's public API (API.md, "Errors"), the crash details
// that BrokenProcessPool carries, and the remote traceback attached to an
// exception rebuilt from a worker.
//
//   std::runtime_error
//   └── Error
//       ├── CancelledError      Get() on a cancelled future
//       ├── TimeoutError        a timeout passed
//       ├── InvalidStateError   a future set twice
//       ├── ShutdownError       Submit/Map after Shutdown()
//       ├── BrokenExecutor
//       │   └── BrokenProcessPool   a worker died / failed to start / failed
//       │                           its initializer; carries a WorkerCrash
//       └── RemoteError         a task threw a type the parent cannot rebuild
//
// A task's exception comes back to the parent as WithRemoteTraceback<E>: it is
// an E (so `catch (const E&)` catches it, with the same what()) and also a
// RemoteTraceback (worker pid, task name, type name, stack text), read with
// GetRemoteTraceback(). Rebuilding is exception_registry.h's business.
//
// Example:
//   try {
//     future.Get();
//   } catch (const std::invalid_argument& e) {
//     LOG(ERROR) << e.what();
//     if (const procpool::RemoteTraceback* tb = procpool::GetRemoteTraceback(e))
//       LOG(ERROR) << tb->ToString();
//   } catch (const procpool::BrokenProcessPool& e) {
//     LOG(ERROR) << "worker " << e.pid() << " died: " << e.what();
//   }
//
// All types here are copyable and hold no resources; none is thread-hostile
// (const methods may be called from any thread).
#ifndef PROCPOOL_CORE_ERRORS_H_
#define PROCPOOL_CORE_ERRORS_H_

#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace procpool {

// The base of every procpool exception.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Future::Get() on a cancelled future.
class CancelledError : public Error {
 public:
  explicit CancelledError(const std::string& message) : Error(message) {}
};

// A timeout passed (Get, Exception, Map, AsCompleted, a per-task timeout).
class TimeoutError : public Error {
 public:
  explicit TimeoutError(const std::string& message) : Error(message) {}
};

// A future's result or exception was set twice.
class InvalidStateError : public Error {
 public:
  explicit InvalidStateError(const std::string& message) : Error(message) {}
};

// Submit/Map after Shutdown() or at process exit.
class ShutdownError : public Error {
 public:
  explicit ShutdownError(const std::string& message) : Error(message) {}
};

// The executor cannot run tasks any more.
class BrokenExecutor : public Error {
 public:
  explicit BrokenExecutor(const std::string& message) : Error(message) {}
};

// Returns the name of signal `sig`: "SIGKILL", "SIGSEGV", ... for the
// standard Linux signals, "signal 42" for anything else (real-time signals
// included).
std::string SignalName(int sig);

// Describes a status from waitpid(): "exit code 3", "killed by SIGKILL",
// "killed by SIGSEGV (core dumped)", "stopped by SIGSTOP", or
// "wait status 0x..." for anything else.
std::string DescribeExit(int wait_status);

namespace errors_internal {
struct LazyText;  // text built once, on first use (errors.cc)
}  // namespace errors_internal

// A dead worker's stack as its fatal-signal handler wrote it (frames as file
// and offset, worker/child/crash_reporter.h), symbolized the first time its
// text is read (core/crash_stack.h; ~1 ms with a cold symbolizer): the
// futures of a crashed worker fail without waiting for the symbolizer. Copies
// share the text; text() may be called from any thread.
class WorkerStack {
 public:
  WorkerStack() = default;
  // An empty `report` makes an empty stack.
  explicit WorkerStack(std::string report);

  bool empty() const { return state_ == nullptr; }
  // The report, its frames symbolized ("  #4 DieBy()"): "" if empty().
  const std::string& text() const;

 private:
  std::shared_ptr<errors_internal::LazyText> state_;
};

// What is known about a worker that died or could not start. Every field may
// be unknown; fields are added here when an issue needs them, so build one by
// assigning fields, not with positional braces.
struct WorkerCrash {
  // Fills `pid` and, from a waitpid() status, `exit_code` or `signal`.
  static WorkerCrash FromWaitStatus(int pid, int wait_status);

  // The details as one phrase, e.g. "worker pid 1234 killed by SIGKILL while
  // running task Square (work id 7); cause: ...". Empty if nothing is known.
  std::string Describe() const;

  int pid = -1;                        // -1: unknown
  // "HOST:PORT" of a remote worker's daemon (Options::remote_workers); empty
  // for a local worker. Its pid is then a process on that host.
  std::string host;
  std::optional<int> exit_code;        // set if the worker exited
  std::optional<int> signal;           // set if a signal killed it
  std::optional<std::string> task_name;  // the task it was running, if any
  std::optional<int64_t> work_id;        // that task's work id
  std::string cause;  // free text, e.g. a decode error or an exec() failure
  // The worker was alive with no task in flight (e.g. killed between tasks).
  bool idle = false;
  // The worker's stack, captured by its failure handler when a catchable
  // signal (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGTERM) killed it, and
  // sent to the parent before it died. Empty otherwise.
  WorkerStack stack;
};

// The pool is broken: a worker died, failed to start, or failed its
// initializer. Every pending future gets its own copy.
class BrokenProcessPool : public BrokenExecutor {
 public:
  // No crash details; what() is `message`.
  explicit BrokenProcessPool(const std::string& message)
      : BrokenExecutor(message) {}

  // what() is `message`, then " (" + crash.Describe() + ")" if that is not
  // empty, e.g. "A process in the pool was terminated abruptly (worker pid 12
  // killed by SIGKILL while running task Square (work id 3))", then the
  // worker's stack if it has one ("\nstack of the worker when it died:\n"
  // and its text(): the first what() symbolizes it).
  BrokenProcessPool(const std::string& message, WorkerCrash crash);

  const char* what() const noexcept override;
  // what() without the worker's stack (and without symbolizing it).
  const char* summary() const noexcept { return BrokenExecutor::what(); }

  // The crash details; fields are unknown if the constructor had none.
  const WorkerCrash& crash() const { return crash_; }
  int pid() const { return crash_.pid; }  // -1 if unknown
  std::optional<int> exit_code() const { return crash_.exit_code; }
  std::optional<int> signal() const { return crash_.signal; }
  // SignalName(*signal()), or "" if no signal is known.
  std::string signal_name() const;
  const std::optional<std::string>& task_name() const {
    return crash_.task_name;
  }
  std::optional<int64_t> work_id() const { return crash_.work_id; }
  const std::string& cause() const { return crash_.cause; }
  // The dead worker's stack at the signal (see WorkerCrash::stack), or "".
  const std::string& stack() const { return crash_.stack.text(); }

 private:
  WorkerCrash crash_;
  // what() with the stack, built on first use; shared by copies. Null when
  // there is no stack.
  std::shared_ptr<errors_internal::LazyText> what_;
};

// With WorkerDeathPolicy::kReplaceWorker: the worker that held this future's
// task died (and was replaced; the pool goes on). Carries the crash report.
class WorkerDiedError : public Error {
 public:
  // what() as BrokenProcessPool's.
  WorkerDiedError(const std::string& message, WorkerCrash crash);
  const char* what() const noexcept override;
  // what() without the worker's stack (and without symbolizing it).
  const char* summary() const noexcept { return Error::what(); }
  const WorkerCrash& crash() const { return crash_; }
  int pid() const { return crash_.pid; }
  std::optional<int> signal() const { return crash_.signal; }
  std::optional<int> exit_code() const { return crash_.exit_code; }
  const std::string& stack() const { return crash_.stack.text(); }

 private:
  WorkerCrash crash_;
  std::shared_ptr<errors_internal::LazyText> what_;  // as BrokenProcessPool's
};

// A task allocated past Options::max_memory_bytes_per_worker.
class MemoryLimitError : public Error {
 public:
  explicit MemoryLimitError(const std::string& message) : Error(message) {}
};

// A task threw a type that the parent cannot rebuild (not standard, not
// registered with PROCPOOL_EXCEPTION, or not a std::exception at all).
// what() is the original what() (or, for a non-std::exception, a sentence
// saying what was thrown); type_name() is the original type's name, e.g.
// "MyErr", "ns::MyErr", "int".
class RemoteError : public Error {
 public:
  // type_name() is "procpool::RemoteError".
  explicit RemoteError(const std::string& message);
  RemoteError(const std::string& type_name, const std::string& message)
      : Error(message), type_name_(type_name) {}

  const std::string& type_name() const { return type_name_; }

 private:
  std::string type_name_;
};

// What the parent knows about where a task's exception came from.
struct RemoteTracebackInfo {
  int pid = -1;           // the worker's pid; -1 if unknown
  std::string task_name;  // the registered task name, e.g. "Square"
  std::string type_name;  // the remote exception's type, e.g. "MyErr"
  std::string traceback;  // stack lines, one per line; may be empty
};

// The remote traceback attached to an exception rebuilt from a worker. A
// mixin, not an exception: find it on a caught exception with
// GetRemoteTraceback().
//
// Read it through a RemoteTraceback pointer or reference: on the concrete
// WithRemoteTraceback<E> the names below may be ambiguous with E's own
// (RemoteError::type_name(), BrokenProcessPool::pid()).
class RemoteTraceback {
 public:
  explicit RemoteTraceback(RemoteTracebackInfo info) : info_(std::move(info)) {}
  virtual ~RemoteTraceback() = default;

  const RemoteTracebackInfo& info() const { return info_; }
  int pid() const { return info_.pid; }
  const std::string& task_name() const { return info_.task_name; }
  const std::string& type_name() const { return info_.type_name; }
  const std::string& traceback() const { return info_.traceback; }

  // Python-like text:
  //   Traceback (worker pid 1234, task Square):
  //     <traceback lines, indented>
  //   MyErr
  // (the last line is the type name; what() is the exception's own).
  std::string ToString() const;

 private:
  RemoteTracebackInfo info_;
};

// An E rebuilt from a worker, carrying its remote traceback. Catchable as E
// with E's what(). E must be a non-final class.
//
// Example:
//   throw WithRemoteTraceback<std::out_of_range>(info, "index 7");
template <class E>
class WithRemoteTraceback final : public E, public RemoteTraceback {
 public:
  // Constructs E from `args...` (for the types rebuilt by the registry, the
  // message; for RemoteError, the type name and the message).
  template <class... Args>
  explicit WithRemoteTraceback(RemoteTracebackInfo info, Args&&... args)
      : E(std::forward<Args>(args)...), RemoteTraceback(std::move(info)) {}
};

// std::bad_alloc cannot take a message, so this one stores it and returns it
// from what().
template <>
class WithRemoteTraceback<std::bad_alloc> final : public std::bad_alloc,
                                                  public RemoteTraceback {
 public:
  WithRemoteTraceback(RemoteTracebackInfo info, std::string message)
      : RemoteTraceback(std::move(info)), message_(std::move(message)) {}

  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

// Returns the remote traceback attached to `e`, or nullptr if it has none
// (it was not rebuilt from a worker). The pointer lives as long as `e`.
const RemoteTraceback* GetRemoteTraceback(const std::exception& e);

// The same for the exception held by `e`; nullptr if `e` is null or holds no
// std::exception. The pointer lives as long as the exception object (as long
// as `e` or a copy of it).
const RemoteTraceback* GetRemoteTraceback(const std::exception_ptr& e);

}  // namespace procpool

#endif  // PROCPOOL_CORE_ERRORS_H_
