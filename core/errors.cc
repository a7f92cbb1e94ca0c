#include "core/errors.h"

#include <signal.h>
#include <sys/wait.h>

#include <memory>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/crash_stack.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace procpool {

std::string SignalName(int sig) {
  switch (sig) {
    // The standard Linux signals, in number order. Aliases (SIGIOT, SIGPOLL,
    // SIGCLD) share numbers with these and would be duplicate cases.
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGUSR1: return "SIGUSR1";
    case SIGSEGV: return "SIGSEGV";
    case SIGUSR2: return "SIGUSR2";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
#ifdef SIGSTKFLT
    case SIGSTKFLT: return "SIGSTKFLT";
#endif
    case SIGCHLD: return "SIGCHLD";
    case SIGCONT: return "SIGCONT";
    case SIGSTOP: return "SIGSTOP";
    case SIGTSTP: return "SIGTSTP";
    case SIGTTIN: return "SIGTTIN";
    case SIGTTOU: return "SIGTTOU";
    case SIGURG: return "SIGURG";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    case SIGVTALRM: return "SIGVTALRM";
    case SIGPROF: return "SIGPROF";
    case SIGWINCH: return "SIGWINCH";
    case SIGIO: return "SIGIO";
#ifdef SIGPWR
    case SIGPWR: return "SIGPWR";
#endif
    case SIGSYS: return "SIGSYS";
    default: return absl::StrCat("signal ", sig);
  }
}

std::string DescribeExit(int wait_status) {
  if (WIFEXITED(wait_status)) {
    return absl::StrCat("exit code ", WEXITSTATUS(wait_status));
  }
  if (WIFSIGNALED(wait_status)) {
    std::string text = absl::StrCat("killed by ", SignalName(WTERMSIG(wait_status)));
#ifdef WCOREDUMP
    if (WCOREDUMP(wait_status)) absl::StrAppend(&text, " (core dumped)");
#endif
    return text;
  }
  if (WIFSTOPPED(wait_status)) {
    return absl::StrCat("stopped by ", SignalName(WSTOPSIG(wait_status)));
  }
  return absl::StrFormat("wait status 0x%x", wait_status);
}

WorkerCrash WorkerCrash::FromWaitStatus(int pid, int wait_status) {
  WorkerCrash crash;
  crash.pid = pid;
  if (WIFEXITED(wait_status)) crash.exit_code = WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) crash.signal = WTERMSIG(wait_status);
  return crash;
}

std::string WorkerCrash::Describe() const {
  std::vector<std::string> parts;
  if (!host.empty()) {
    parts.push_back(pid > 0 ? absl::StrCat("remote worker pid ", pid, " on ", host)
                            : absl::StrCat("remote worker on ", host));
  } else if (pid >= 0) {
    parts.push_back(absl::StrCat("worker pid ", pid));
  }
  if (signal.has_value()) {
    parts.push_back(absl::StrCat("killed by ", SignalName(*signal)));
  } else if (exit_code.has_value()) {
    parts.push_back(absl::StrCat("exited with exit code ", *exit_code));
  }
  if (task_name.has_value()) {
    std::string running = absl::StrCat("while running task ", *task_name);
    if (work_id.has_value()) absl::StrAppend(&running, " (work id ", *work_id, ")");
    parts.push_back(std::move(running));
  } else if (work_id.has_value()) {
    parts.push_back(absl::StrCat("while running work id ", *work_id));
  } else if (idle) {
    parts.push_back("while idle");
  }
  std::string text = absl::StrJoin(parts, " ");
  if (!cause.empty()) {
    absl::StrAppend(&text, text.empty() ? "" : "; ", "cause: ", cause);
  }
  return text;
}

namespace errors_internal {

struct LazyText {
  std::string source;  // what the text is made from
  std::once_flag once;
  std::string text;
};

}  // namespace errors_internal

using errors_internal::LazyText;

WorkerStack::WorkerStack(std::string report) {
  if (report.empty()) return;
  state_ = std::make_shared<LazyText>();
  state_->source = std::move(report);
}

const std::string& WorkerStack::text() const {
  static const std::string* const kEmpty = new std::string;
  if (state_ == nullptr) return *kEmpty;
  std::call_once(state_->once, [this] {
    state_->text = SymbolizeCrashReport(state_->source);
  });
  return state_->text;
}

namespace {

std::string WithDetails(const std::string& message, const WorkerCrash& crash) {
  std::string details = crash.Describe();
  return details.empty() ? message
                         : absl::StrCat(message, " (", details, ")");
}

std::shared_ptr<LazyText> LazyWhat(const WorkerCrash& crash) {
  return crash.stack.empty() ? nullptr : std::make_shared<LazyText>();
}

// `summary`, then the worker's stack (symbolized now if it was not yet).
const char* WhatWithStack(const char* summary, const WorkerStack& stack,
                          LazyText* what) {
  if (what == nullptr) return summary;
  std::call_once(what->once, [&] {
    what->text = absl::StrCat(summary, "\nstack of the worker when it died:\n",
                              stack.text());
  });
  return what->text.c_str();
}

}  // namespace

BrokenProcessPool::BrokenProcessPool(const std::string& message,
                                     WorkerCrash crash)
    : BrokenExecutor(WithDetails(message, crash)),
      crash_(std::move(crash)),
      what_(LazyWhat(crash_)) {}

const char* BrokenProcessPool::what() const noexcept {
  return WhatWithStack(summary(), crash_.stack, what_.get());
}

WorkerDiedError::WorkerDiedError(const std::string& message, WorkerCrash crash)
    : Error(WithDetails(message, crash)),
      crash_(std::move(crash)),
      what_(LazyWhat(crash_)) {}

const char* WorkerDiedError::what() const noexcept {
  return WhatWithStack(summary(), crash_.stack, what_.get());
}

std::string BrokenProcessPool::signal_name() const {
  return crash_.signal.has_value() ? SignalName(*crash_.signal) : "";
}

RemoteError::RemoteError(const std::string& message)
    : Error(message), type_name_("procpool::RemoteError") {}

std::string RemoteTraceback::ToString() const {
  std::string text = "Traceback (";
  absl::StrAppend(&text, info_.pid >= 0 ? absl::StrCat("worker pid ", info_.pid)
                                        : std::string("worker pid unknown"));
  if (!info_.task_name.empty()) absl::StrAppend(&text, ", task ", info_.task_name);
  absl::StrAppend(&text, "):\n");
  if (info_.traceback.empty()) {
    absl::StrAppend(&text, "  (no stack available)\n");
  } else {
    for (absl::string_view line :
         absl::StrSplit(info_.traceback, '\n', absl::SkipEmpty())) {
      absl::StrAppend(&text, "  ", line, "\n");
    }
  }
  absl::StrAppend(&text, info_.type_name.empty() ? "<unknown type>" : info_.type_name);
  return text;
}

const RemoteTraceback* GetRemoteTraceback(const std::exception& e) {
  return dynamic_cast<const RemoteTraceback*>(&e);
}

const RemoteTraceback* GetRemoteTraceback(const std::exception_ptr& e) {
  if (!e) return nullptr;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& caught) {
    // std::rethrow_exception throws the held object itself (not a copy) in
    // libstdc++, so the pointer lives as long as the exception object.
    return GetRemoteTraceback(caught);
  } catch (...) {
    return nullptr;
  }
}

}  // namespace procpool
