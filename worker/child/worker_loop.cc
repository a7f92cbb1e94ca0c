#include "worker/child/worker_loop.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <string>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/big_buffers.h"
#include "common/unique_fd.h"
#include "core/exception_registry.h"
#include "core/task.h"
#include "glog/logging.h"
#include "serialization/wire.h"
#include "shared_array/mapping_cache.h"
#include "shared_array/transfer.h"
#include "worker/child/crash_reporter.h"
#include "worker/child/throw_site.h"
#include "worker/child/worker_hooks.h"

namespace procpool {

MappingCache& WorkerArrayCache() {
  // No bounds of its own: the parent's picture of it bounds it and says what
  // to drop (Call::forget_arrays; shared_array/peer_arrays.h).
  static MappingCache* const cache = new MappingCache(
      MappingCache::Limits{std::numeric_limits<size_t>::max(),
                           std::numeric_limits<size_t>::max()});
  return *cache;
}

namespace {

// Memfds that came beside Calls (WorkerDescriptorsReceived).
std::atomic<uint64_t> descriptors_received{0};

// Whether big buffers go to common/big_buffers.h's cache when done with:
// not when the worker keeps its freed memory in its heap (KeepFreedMemory,
// Config::keep_freed_memory), which serves the next big frame and the
// task's own allocations alike. The cache there kept the values a task
// returned (exactly the user's size), which then fitted no frame (a frame is
// a little bigger) and were lost to the heap: every 64 MiB echo faulted in
// fresh pages for the frame and for the task's copy (perf: clear_page_erms
// in the worker's memmoves).
bool recycle_big_buffers = true;

// Keeps a buffer of kMinBigBuffer or more for the next big frame (common/
// big_buffers.h): a 64 MiB buffer freed is a fresh mmap next time, and the
// kernel zeroes every page of it on first touch. With the heap keeping
// freed memory, frees it there instead (recycle_big_buffers).
void RecycleBig(std::string& s) {
  if (!recycle_big_buffers) {
    std::string().swap(s);
    return;
  }
  if (s.capacity() >= kMinBigBuffer) RecycleBigBuffer(std::move(s));
  s.clear();
}
void RecycleBig(std::vector<std::string>& v) {
  for (std::string& s : v) RecycleBig(s);
  v.clear();
}

}  // namespace

uint64_t WorkerDescriptorsReceived() { return descriptors_received.load(); }

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

// Runs `run` (one element of a call: a status that is not ok means its
// arguments did not decode); never throws. Returns true once it ran, or false
// with the exception it threw in `*exception` (or, when the arguments did not
// decode, with `*protocol_error` set).
template <typename Run>
bool RunGuarded(const internal::TaskInfo& task, Run run,
                wire::ExceptionInfo* exception, absl::Status* protocol_error) {
  RecordThrowSites(true);
  try {
    absl::Status decoded = run();
    RecordThrowSites(false);
    if (!decoded.ok()) {
      // A shared array it was given could not be used: this task fails,
      // the worker goes on.
      ArrayTransfer* arrays = CurrentArrayTransfer();
      const absl::Status array_error =
          arrays != nullptr ? arrays->TakeArrayError() : absl::OkStatus();
      if (!array_error.ok()) {
        exception->type_name = "procpool::Error";
        exception->message = absl::StrCat(
            "task ", task.name, " could not use a shared array argument: ",
            array_error.message());
        return false;
      }
      *protocol_error = absl::DataLossError(
          absl::StrCat("worker could not decode the arguments of task ",
                       task.name, ": ", decoded.message()));
      return false;
    }
    return true;
  } catch (const std::bad_alloc&) {
    RecordThrowSites(false);
    *exception = CurrentException(task.name);
    if (memory_limit_bytes > 0) {
      exception->type_name = "procpool::MemoryLimitError";
      exception->message = absl::StrCat(
          "task ", task.name, " exceeded the worker memory cap of ",
          memory_limit_bytes, " bytes (Options::max_memory_bytes_per_worker): ",
          exception->message);
    }
  } catch (...) {
    RecordThrowSites(false);
    *exception = CurrentException(task.name);
  }
  return false;
}

// Runs one element of a call into `*out` (TaskInfo::invoke: `args` taken, a
// big argument keeps its buffer); never throws.
void RunElement(const internal::TaskInfo& task, std::string args,
                wire::Outcome* out, absl::Status* protocol_error) {
  out->ok = RunGuarded(
      task,
      [&]() -> absl::Status {
        absl::StatusOr<std::string> v = task.invoke(std::move(args));
        if (!v.ok()) return v.status();
        out->value = *std::move(v);
        return absl::OkStatus();
      },
      &out->exception, protocol_error);
}

// With hooks (fault injection), before each element: OnTaskStart, outside
// the task (RunCall).
void StartElement(const internal::TaskInfo& task, const wire::Call& call,
                  WorkerHooks* hooks) {
  SetWorkerPhase(WorkerPhase::kOther);
  SetCurrentTask(nullptr);
  hooks->OnTaskStart(call.task);
  SetCurrentTask(task.name.c_str());
  SetWorkerPhase(WorkerPhase::kRunningTask);
}

// Runs every element of a packed `call` of several elements into a packed
// `*result` (TaskInfo::run: each value appended to result->packed_values, no
// string or Outcome per element). A value of kExternalBlobBytes or more turns
// the result into Outcomes (wire::Unpack) so that it goes from its own string
// into the transport, and the rest of the call runs as RunCall's other case.
// (A std::string value is moved, not copied, out of the task's hands; a big
// value of another type is copied once out of the packed bytes.) Returns the
// number of elements run; stops early on a protocol error.
size_t RunPacked(const internal::TaskInfo& task, const wire::Call& call,
                 WorkerHooks* hooks, wire::Result* result,
                 absl::Status* protocol_error) {
  PackedElements& values = result->packed_values;
  values.ends.reserve(call.size());
  // One writer for the values of the whole call.
  Writer w;
  w.Reserve(call.packed_args.bytes.size());
  wire::ExceptionInfo exception;
  std::string own;
  for (size_t i = 0; i < call.size(); ++i) {
    if (hooks != nullptr) StartElement(task, call, hooks);
    const size_t begin = w.size();
    const absl::string_view args = call.packed_args[i];
    const bool ok = RunGuarded(
        task,
        [&] { return task.run(args, &w, wire::kExternalBlobBytes, &own); },
        &exception, protocol_error);
    if (!protocol_error->ok()) return i;
    if (!ok) {
      w.buffer().resize(begin);  // what an encoder wrote before it threw
      values.ends.push_back(static_cast<uint32_t>(begin));
      result->failures.push_back({static_cast<uint32_t>(i), std::move(exception)});
      exception = wire::ExceptionInfo();
      continue;
    }
    if (own.empty() && w.size() - begin < wire::kExternalBlobBytes) {
      values.ends.push_back(static_cast<uint32_t>(w.size()));
      continue;
    }
    // A big value: from here on, an Outcome per element.
    wire::Outcome big;
    if (own.empty()) {
      big.value = w.buffer().substr(begin);
    } else {
      big.value = std::move(own);
    }
    w.buffer().resize(begin);
    values.bytes = w.Release();
    wire::Unpack(result);
    result->outcomes.reserve(call.size());
    result->outcomes.push_back(std::move(big));
    return i + 1;
  }
  values.bytes = w.Release();
  return call.size();
}

// Runs every element of `call` (whose task is `task`) into `*result`; false
// on a protocol error (then `*protocol_error` says which).
//
// A packed call of several elements (Map's chunks of small elements) is
// answered packed (RunPacked); any other (a Submit, or a chunk with a big
// argument) with an Outcome per element.
//
// The worker's phase (the heartbeat, KeepFreedMemory) is kRunningTask for
// the whole call, not per element: leaving it reads the clock, and twice per
// element was ~13% of a worker's time in a Map of small elements. With hooks
// (fault injection) each element's OnTaskStart still runs outside the task.
bool RunCall(const internal::TaskInfo& task, wire::Call& call,
             WorkerHooks* hooks, wire::Result* result,
             absl::Status* protocol_error) {
  const size_t n = call.size();
  const bool packed_call = call.args.empty();
  SetCurrentTask(task.name.c_str());
  SetWorkerPhase(WorkerPhase::kRunningTask);
  size_t i = 0;
  bool packed = packed_call && n > 1;
  if (packed) {
    i = RunPacked(task, call, hooks, result, protocol_error);
    packed = result->outcomes.empty();  // else it met a big value
  }
  if (!packed) {
    // The rest of the call (all of it unless RunPacked ran), an Outcome each.
    result->outcomes.reserve(n);
    for (; i < n && protocol_error->ok(); ++i) {
      if (hooks != nullptr) StartElement(task, call, hooks);
      // Taken: a big argument keeps the frame's buffer (no new memory).
      std::string args = packed_call ? std::string(call.packed_args[i])
                                     : std::move(call.args[i]);
      RunElement(task, std::move(args), &result->outcomes.emplace_back(),
                 protocol_error);
    }
  }
  SetWorkerPhase(WorkerPhase::kOther);
  SetCurrentTask(nullptr);
  return protocol_error->ok();
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
  if (config->keep_freed_memory) {
    KeepFreedMemory();
    recycle_big_buffers = false;
  }
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
  // Shared arrays: those of the arguments come beside the frame; those of
  // the values go beside the Result (both by reference where the channel
  // carries descriptors).
  const ArrayTransfer::Way arrays_way = channel->CarriesDescriptors()
                                            ? ArrayTransfer::Way::kByReference
                                            : ArrayTransfer::Way::kByValue;
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
    if (!call->forget_arrays.empty()) {
      // The parent's picture of the cache says these go (peer_arrays.h).
      std::vector<BufferId> forget;
      forget.reserve(call->forget_arrays.size());
      for (const wire::ArrayId& id : call->forget_arrays) {
        forget.push_back(BufferId{id.pid, id.serial, id.nonce});
      }
      WorkerArrayCache().Forget(forget);
    }
    ArrayTransfer arrays(arrays_way);
    if (call->descriptors > 0 || !call->held_arrays.empty()) {
      std::vector<UniqueFd> fds;
      if (call->descriptors > 0) {
        absl::StatusOr<std::vector<UniqueFd>> taken =
            channel->TakeDescriptors(call->descriptors);
        if (!taken.ok()) return Fatal(*channel, taken.status());
        fds = *std::move(taken);
        descriptors_received.fetch_add(fds.size(), std::memory_order_relaxed);
      }
      arrays.SetIncoming(std::move(fds), std::move(call->held_arrays),
                         &WorkerArrayCache());
    }
    ArrayTransferScope arrays_scope(&arrays);
    wire::Result result;
    result.work_id = call->work_id;
    const internal::TaskInfo* task = internal::FindTaskByName(call->task);
    if (hooks != nullptr) hooks->OnCallReceived(call->task);
    if (task == nullptr) {
      result.outcomes.assign(call->size(), UnknownTask(call->task));
    } else {
      absl::Status protocol_error;
      if (!RunCall(*task, *call, hooks, &result, &protocol_error)) {
        return Fatal(*channel, protocol_error);
      }
    }
    // The frame's buffer (now the biggest argument) serves the next frame.
    RecycleBig(call->args);
    call->packed_args.clear();
    // What the tasks changed in the copies of output arrays that came by
    // value goes back with the result.
    result.output_writes = arrays.TakeOutputWrites();
    const std::vector<int> fds = arrays.OutgoingFds();
    result.descriptors = static_cast<uint32_t>(fds.size());
    result.held_arrays = arrays.held_outgoing();
    // Big values go from their own strings into the transport.
    absl::Status sent;
    if (wire::HasExternalBlobs(result)) {
      std::string header;
      const std::vector<absl::string_view> parts =
          wire::EncodeMessageParts(result, &header);
      if (hooks != nullptr) hooks->OnResultEncoded(call->task);
      sent = fds.empty()
                 ? channel->SendBlockingParts(parts)
                 : channel->SendBlockingPartsWithDescriptors(parts, fds);
    } else {
      const std::string frame = wire::EncodeMessage(result);
      if (hooks != nullptr) hooks->OnResultEncoded(call->task);
      const absl::string_view whole = frame;
      sent = fds.empty() ? channel->SendBlocking(frame)
                         : channel->SendBlockingPartsWithDescriptors(
                               absl::MakeConstSpan(&whole, 1), fds);
    }
    if (!sent.ok()) {
      VLOG(1) << "worker " << getpid() << ": send failed: " << sent;
      return 0;
    }
    for (wire::Outcome& o : result.outcomes) RecycleBig(o.value);
    ++tasks_done;
  }
  return 0;
}

}  // namespace
}  // namespace procpool
