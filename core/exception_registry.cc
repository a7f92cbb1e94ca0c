#include "core/exception_registry.h"

#include <cxxabi.h>
#include <execinfo.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <new>
#include <stdexcept>
#include <typeindex>

#include "absl/base/attributes.h"
#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/debugging/symbolize.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "glog/logging.h"

namespace procpool {
namespace {

// Type name -> factory and type -> name, for every exception type that is
// rebuilt as itself. Created on first use (so PROCPOOL_EXCEPTION works from
// any static initializer) and never destroyed (so a worker exiting while
// another thread captures an exception cannot touch a dead registry).
class Registry {
 public:
  static Registry& Get() {
    static Registry* const registry = new Registry();
    return *registry;
  }

  bool Add(const std::type_info& type, absl::string_view name,
           ExceptionFactory factory) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return AddLocked(type, name, factory);
  }

  // The registered name of exactly `type`, or "" if it has none.
  std::string NameOf(const std::type_info& type) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::ReaderMutexLock lock(&mu_);
    auto it = names_.find(std::type_index(type));
    return it == names_.end() ? std::string() : it->second;
  }

  // The factory registered under `name`, or nullptr.
  ExceptionFactory FactoryFor(absl::string_view name) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::ReaderMutexLock lock(&mu_);
    auto it = factories_.find(name);
    return it == factories_.end() ? nullptr : it->second;
  }

 private:
  Registry() {
    absl::MutexLock lock(&mu_);
    // API.md's standard types.
    AddBuiltin<std::invalid_argument>("std::invalid_argument");
    AddBuiltin<std::out_of_range>("std::out_of_range");
    AddBuiltin<std::runtime_error>("std::runtime_error");
    AddBuiltin<std::logic_error>("std::logic_error");
    AddBuiltin<std::domain_error>("std::domain_error");
    AddBuiltin<std::length_error>("std::length_error");
    AddBuiltin<std::overflow_error>("std::overflow_error");
    AddBuiltin<std::underflow_error>("std::underflow_error");
    AddBuiltin<std::range_error>("std::range_error");
    AddBuiltin<std::bad_alloc>("std::bad_alloc");
    // procpool's own (errors.h). RemoteError's own type name travels instead
    // of "procpool::RemoteError" (CaptureCurrentException), so this entry
    // only rebuilds a RemoteError made without one.
    AddBuiltin<Error>("procpool::Error");
    AddBuiltin<CancelledError>("procpool::CancelledError");
    AddBuiltin<TimeoutError>("procpool::TimeoutError");
    AddBuiltin<InvalidStateError>("procpool::InvalidStateError");
    AddBuiltin<ShutdownError>("procpool::ShutdownError");
    AddBuiltin<BrokenExecutor>("procpool::BrokenExecutor");
    AddBuiltin<BrokenProcessPool>("procpool::BrokenProcessPool");
    AddBuiltin<RemoteError>("procpool::RemoteError");
    AddBuiltin<MemoryLimitError>("procpool::MemoryLimitError");
  }

  template <class E>
  void AddBuiltin(absl::string_view name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    AddLocked(typeid(E), name, &exception_internal::Make<E>);
  }

  bool AddLocked(const std::type_info& type, absl::string_view name,
                 ExceptionFactory factory) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::type_index index(type);
    auto name_it = names_.find(index);
    auto factory_it = factories_.find(name);
    if (name_it != names_.end() && name_it->second == name &&
        factory_it != factories_.end()) {
      return true;  // the same registration again (e.g. from a header)
    }
    if (name_it != names_.end() || factory_it != factories_.end()) {
      LOG(WARNING) << "PROCPOOL_EXCEPTION(" << name << "): "
                   << (name_it != names_.end()
                           ? absl::StrCat("the type is already registered as ",
                                          name_it->second)
                           : std::string("the name is already taken by "
                                         "another type"))
                   << "; keeping the first registration";
      return false;
    }
    names_.emplace(index, std::string(name));
    factories_.emplace(std::string(name), factory);
    return true;
  }

  // Debian's Abseil is not built with -fsanitize=thread, so --config=tsan
  // cannot see this mutex and reports races between readers and writers of
  // the maps below (see Register.ConcurrentWithCaptureAndRebuild).
  absl::Mutex mu_;
  absl::flat_hash_map<std::type_index, std::string, std::hash<std::type_index>>
      names_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, ExceptionFactory> factories_
      ABSL_GUARDED_BY(mu_);
};

// The demangled name of `type`, with std::string spelled so.
std::string Demangle(const std::type_info& type) {
  if (type == typeid(std::string)) return "std::string";
  int status = 0;
  char* demangled = abi::__cxa_demangle(type.name(), nullptr, nullptr, &status);
  if (status != 0 || demangled == nullptr) return type.name();
  std::string name(demangled);
  std::free(demangled);
  return name;
}

// The name a worker reports for an exception whose dynamic type is exactly
// `type`: its registered name, or its demangled name.
std::string ReportedName(const std::type_info& type) {
  std::string name = Registry::Get().NameOf(type);
  return name.empty() ? Demangle(type) : name;
}

std::string NonStdMessage(const std::string& type_name) {
  return absl::StrCat("task threw a non-std::exception of type ", type_name);
}

}  // namespace

CapturedException CaptureCurrentException() {
  CapturedException captured;
  try {
    const std::type_info* type = abi::__cxa_current_exception_type();
    std::exception_ptr current = std::current_exception();
    if (type == nullptr || !current) {
      captured.type_name = "unknown";
      captured.message =
          "CaptureCurrentException() called with no exception being handled";
      return captured;
    }
    try {
      std::rethrow_exception(current);
    } catch (const std::exception& e) {
      captured.message = e.what();
      if (const RemoteTraceback* tb = GetRemoteTraceback(e)) {
        // Rebuilt from another worker: report the original type.
        captured.type_name = tb->type_name();
      } else if (*type == typeid(RemoteError)) {
        captured.type_name = static_cast<const RemoteError&>(e).type_name();
      } else {
        captured.type_name = ReportedName(*type);
      }
    } catch (const std::string& s) {
      captured.type_name = ReportedName(*type);
      captured.message = absl::StrCat(NonStdMessage(captured.type_name), ": ", s);
    } catch (const char* s) {
      captured.type_name = ReportedName(*type);
      captured.message = absl::StrCat(NonStdMessage(captured.type_name), ": ",
                                      s == nullptr ? "(null)" : s);
    } catch (...) {
      captured.type_name = ReportedName(*type);
      captured.message = NonStdMessage(captured.type_name);
    }
  } catch (...) {
    // Out of memory while describing the exception: say what we can.
    captured.type_name = "std::bad_alloc";
    captured.message = "out of memory while capturing a task's exception";
  }
  return captured;
}

std::exception_ptr RebuildException(const std::string& type_name,
                                    const std::string& message,
                                    RemoteTracebackInfo info) {
  info.type_name = type_name;
  if (ExceptionFactory factory = Registry::Get().FactoryFor(type_name)) {
    try {
      return factory(message, info);
    } catch (...) {
      // A registered type whose constructor threw: fall through.
    }
  }
  return std::make_exception_ptr(
      WithRemoteTraceback<RemoteError>(std::move(info), type_name, message));
}

ABSL_ATTRIBUTE_NOINLINE std::string CurrentStackTrace(int skip_frames) {
  // glibc's backtrace() unwinds with the DWARF tables; absl::GetStackTrace
  // walks frame pointers, which Debian's -O2 libraries (gtest, absl) omit, so
  // it loses frames here.
  constexpr int kMaxFrames = 64;
  void* frames[kMaxFrames];
  int depth = backtrace(frames, kMaxFrames);
  // Start at our caller's frame: the one holding our return address. (Under
  // the sanitizers backtrace() is intercepted and adds a frame of its own.)
  const void* return_address = __builtin_return_address(0);
  int first = 1;
  for (int i = 0; i < depth; ++i) {
    if (frames[i] == return_address) {
      first = i;
      break;
    }
  }
  std::string text;
  char symbol[1024];
  for (int i = first + std::max(skip_frames, 0); i < depth; ++i) {
    // A return address points after the call; symbolize the call itself.
    const void* pc = static_cast<const char*>(frames[i]) - 1;
    absl::StrAppendFormat(&text, "%p %s\n", frames[i],
                          absl::Symbolize(pc, symbol, sizeof(symbol))
                              ? symbol
                              : "(unknown)");
  }
  return text;
}

bool RegisterException(const std::type_info& type, absl::string_view name,
                       ExceptionFactory factory) {
  return Registry::Get().Add(type, name, factory);
}

}  // namespace procpool
