#include "worker/worker_loop.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "executor/exception_registry.h"
#include "executor/task.h"
#include "glog/logging.h"
#include "serialization/wire.h"
#include "worker/crash_reporter.h"
#include "worker/throw_site.h"
#include "worker/worker_hooks.h"

namespace procpool {
namespace {

// Describes the exception being handled; call only inside a catch block.
wire::ExceptionInfo CurrentException(absl::string_view task) {
  CapturedException captured = CaptureCurrentException();
  wire::ExceptionInfo info;
  info.type_name = captured.type_name;
  info.message = captured.message;
  // Where it was thrown (recorded by the __cxa_throw hook), else where it
  // was caught.
  info.traceback = TakeThrowSiteStack();
  if (info.traceback.empty()) info.traceback = CurrentStackTrace(1);
  return info;
}

// Options::max_memory_bytes_per_worker as the Config said; 0: none.
int64_t memory_limit_bytes = 0;

// Runs one element of a call and fills `out`; never throws.
void RunElement(const internal::TaskInfo& task, std::string args,
                wire::Outcome* out, absl::Status* protocol_error) {
  RecordThrowSites(true);
  try {
    absl::StatusOr<std::string> value = task.invoke(std::move(args));
    RecordThrowSites(false);
    if (!value.ok()) {
      *protocol_error = absl::DataLossError(
          absl::StrCat("worker could not decode the arguments of task ",
                       task.name, ": ", value.status().message()));
      return;
    }
    out->ok = true;
    out->value = *std::move(value);
  } catch (const std::bad_alloc&) {
    RecordThrowSites(false);
    out->ok = false;
    out->exception = CurrentException(task.name);
    if (memory_limit_bytes > 0) {
      out->exception.type_name = "procpool::MemoryLimitError";
      out->exception.message = absl::StrCat(
          "task ", task.name, " exceeded the worker memory cap of ",
          memory_limit_bytes, " bytes (Options::max_memory_bytes_per_worker): ",
          out->exception.message);
    }
  } catch (...) {
    RecordThrowSites(false);
    out->ok = false;
    out->exception = CurrentException(task.name);
  }
}

wire::Outcome UnknownTask(absl::string_view name) {
  wire::Outcome out;
  out.ok = false;
  out.exception.type_name = "procpool::Error";
  out.exception.message = absl::StrCat(
      "task \"", name, "\" is not registered in the worker binary (pid ",
      getpid(), "); link its procpool_task_library into the worker");
  return out;
}

bool SendMessage(Channel& channel, const wire::Message& m) {
  absl::Status s = channel.SendBlocking(wire::EncodeMessage(m));
  if (!s.ok()) {
    VLOG(1) << "worker " << getpid() << ": send failed: " << s;
    return false;
  }
  return true;
}

int Fatal(Channel& channel, const absl::Status& status) {
  LOG(ERROR) << "procpool worker " << getpid() << ": " << status.message();
  wire::Fatal fatal;
  fatal.exception.type_name = "procpool::ProtocolError";
  fatal.exception.message = std::string(status.message());
  SendMessage(channel, fatal);
  return 2;
}

WorkerHooks* hooks_installed = nullptr;

int Serve(std::unique_ptr<Channel> channel, WorkerHooks* hooks);

}  // namespace

void SetWorkerHooks(WorkerHooks* hooks) { hooks_installed = hooks; }

WorkerHooks* GetWorkerHooks() { return hooks_installed; }

void BecomeWorkerProcess(pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The parent may have died before prctl: then we were re-parented.
  if (parent > 0 && getppid() != parent) _exit(0);
  signal(SIGINT, SIG_IGN);
}

int RunWorker(std::unique_ptr<Channel> channel) {
  WorkerHooks* hooks = GetWorkerHooks();
  if (hooks != nullptr) channel = hooks->WrapChannel(std::move(channel));
  int code = Serve(std::move(channel), hooks);
  if (hooks != nullptr) hooks->OnExit(code);
  return code;
}

namespace {

int Serve(std::unique_ptr<Channel> channel, WorkerHooks* hooks) {
  absl::StatusOr<std::string> frame = channel->ReceiveBlocking();
  if (!frame.ok()) return 0;
  absl::StatusOr<wire::Message> first = wire::DecodeMessage(*frame);
  if (!first.ok()) return Fatal(*channel, first.status());
  const wire::Config* config = std::get_if<wire::Config>(&*first);
  if (config == nullptr) {
    return Fatal(*channel, absl::DataLossError(absl::StrCat(
                               "expected config, got ",
                               wire::MessageKind(*first))));
  }
  if (config->memory_limit_bytes > 0) {
    struct rlimit limit;
    limit.rlim_cur = limit.rlim_max =
        static_cast<rlim_t>(config->memory_limit_bytes);
    if (setrlimit(RLIMIT_AS, &limit) != 0) {
      PLOG(WARNING) << "procpool worker: setrlimit(RLIMIT_AS)";
    }
    memory_limit_bytes = config->memory_limit_bytes;
  }
  if (config->keep_freed_memory) KeepFreedMemory();
  StartHeartbeat(static_cast<int>(config->heartbeat_interval_ms));
  wire::Hello hello;
  hello.pid = getpid();
  hello.fingerprint = internal::TaskFingerprint();
  for (const internal::TaskInfo* t : internal::AllTasks()) {
    hello.tasks.push_back({t->name, t->signature});
  }
  if (!SendMessage(*channel, hello)) return 0;

  if (config->initializer) {
    const internal::TaskInfo* init =
        internal::FindTaskByName(config->initializer->task);
    wire::Outcome outcome;
    absl::Status protocol_error;
    if (init == nullptr) {
      outcome = UnknownTask(config->initializer->task);
    } else {
      SetCurrentTask(init->name.c_str());
      RunElement(*init, config->initializer->args, &outcome, &protocol_error);
      SetCurrentTask(nullptr);
    }
    if (!protocol_error.ok()) return Fatal(*channel, protocol_error);
    if (!outcome.ok) {
      LOG(ERROR) << "procpool worker " << getpid() << ": exception in initializer "
                 << config->initializer->task << ": "
                 << outcome.exception.type_name << ": "
                 << outcome.exception.message;
      SendMessage(*channel, wire::InitFailed{outcome.exception});
      return 1;
    }
  }

  const int64_t max_tasks = config->max_tasks;
  int64_t tasks_done = 0;
  while (max_tasks <= 0 || tasks_done < max_tasks) {
    SetWorkerPhase(WorkerPhase::kWaiting);
    frame = channel->ReceiveBlocking();
    SetWorkerPhase(WorkerPhase::kOther);
    if (!frame.ok()) {
      if (absl::IsUnavailable(frame.status())) return 0;  // parent closed
      return Fatal(*channel, frame.status());
    }
    // The frame's buffer becomes the biggest argument (no new memory).
    absl::StatusOr<wire::Message> message =
        wire::DecodeOwnedMessage(*std::move(frame));
    if (!message.ok()) return Fatal(*channel, message.status());
    if (std::holds_alternative<wire::Shutdown>(*message)) return 0;
    wire::Call* call = std::get_if<wire::Call>(&*message);
    if (call == nullptr) {
      return Fatal(*channel,
                   absl::DataLossError(absl::StrCat(
                       "unexpected message: ", wire::MessageKind(*message))));
    }
    wire::Result result;
    result.work_id = call->work_id;
    result.outcomes.reserve(call->args.size());
    const internal::TaskInfo* task = internal::FindTaskByName(call->task);
    if (hooks != nullptr) hooks->OnCallReceived(call->task);
    absl::Status protocol_error;
    for (size_t i = 0; i < call->args.size(); ++i) {
      if (task == nullptr) {
        result.outcomes.push_back(UnknownTask(call->task));
      } else {
        wire::Outcome& outcome = result.outcomes.emplace_back();
        if (hooks != nullptr) hooks->OnTaskStart(call->task);
        SetCurrentTask(task->name.c_str());
        SetWorkerPhase(WorkerPhase::kRunningTask);
        // Taken: a big argument keeps the frame's buffer (no new memory).
        RunElement(*task, std::move(call->args[i]), &outcome,
                   &protocol_error);
        SetWorkerPhase(WorkerPhase::kOther);
        SetCurrentTask(nullptr);
        if (!protocol_error.ok()) return Fatal(*channel, protocol_error);
      }
    }
    call->args.clear();
    // Big values go from their own strings into the transport.
    absl::Status sent;
    if (wire::HasExternalBlobs(result)) {
      std::string header;
      const std::vector<absl::string_view> parts =
          wire::EncodeMessageParts(result, &header);
      if (hooks != nullptr) hooks->OnResultEncoded(call->task);
      sent = channel->SendBlockingParts(parts);
    } else {
      const std::string frame = wire::EncodeMessage(result);
      if (hooks != nullptr) hooks->OnResultEncoded(call->task);
      sent = channel->SendBlocking(frame);
    }
    if (!sent.ok()) {
      VLOG(1) << "worker " << getpid() << ": send failed: " << sent;
      return 0;
    }
    ++tasks_done;
  }
  return 0;
}

}  // namespace
}  // namespace procpool
