#include "testing/fault_injection/fault_injection.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>
#include <tuple>

#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "serialization/wire.h"
#include "worker/child/worker_hooks.h"

namespace procpool {
namespace fault {
namespace {

constexpr size_t kLargeFrame = 1 << 20;

// The armed fault of this worker process (set by the initializer, read by
// the hooks on the worker's thread and by timer threads).
struct Armed {
  std::atomic<bool> armed{false};
  Spec spec;
  int calls = 0;  // calls received since arming (worker thread only)
};

Armed& GetArmed() {
  static Armed* armed = new Armed;
  return *armed;
}

void NoteFired(const Spec& spec);

// A frame that decodes but lies, of `mode`'s kind, to send instead of the
// worker's `frame`; nullopt if `frame` is not what that lie is made from
// (kLieOutcomes needs a Result).
std::optional<std::string> MakeLie(Mode mode, absl::string_view frame) {
  switch (mode) {
    case Mode::kLieVersion: {
      wire::Hello hello;
      hello.protocol_version = wire::kProtocolVersion + 1;
      hello.pid = getpid();
      return wire::EncodeMessage(wire::Message(std::move(hello)));
    }
    case Mode::kLieWorkId: {
      wire::Result result;
      result.work_id = kLyingWorkId;
      result.outcomes.push_back(wire::Outcome{true, "", {}});
      return wire::EncodeMessage(result);
    }
    case Mode::kLieOutcomes: {
      absl::StatusOr<wire::Message> real = wire::DecodeMessage(frame);
      if (!real.ok()) return std::nullopt;
      auto* result = std::get_if<wire::Result>(&*real);
      if (result == nullptr) return std::nullopt;
      wire::Unpack(result);
      wire::Outcome extra;
      if (!result->outcomes.empty()) extra = result->outcomes.back();
      result->outcomes.push_back(std::move(extra));
      result->descriptors = 0;  // sent without them
      return wire::EncodeMessage(*result);
    }
    case Mode::kLieHelloAgain: {
      wire::Hello hello;
      hello.pid = getpid();
      return wire::EncodeMessage(wire::Message(std::move(hello)));
    }
    case Mode::kLieKind: {
      wire::Call call;
      call.work_id = 1;
      call.task = "Lie";
      call.args.push_back("");
      return wire::EncodeMessage(call);
    }
    default:
      return std::nullopt;
  }
}

class FaultChannel;
// The worker's channel while it exists (a fault fires on it), else null.
FaultChannel* current_channel = nullptr;

// Forwards to the real channel; can drop it or send garbage on request.
class FaultChannel final : public Channel {
 public:
  explicit FaultChannel(std::unique_ptr<Channel> inner)
      : inner_(std::move(inner)) {}
  // RunWorker destroys the channel before OnExit: a fault at Point::kExit
  // must then find no channel (ASan saw it use the freed one).
  ~FaultChannel() override {
    if (current_channel == this) current_channel = nullptr;
  }

  absl::Status Send(std::string frame) override {
    absl::MutexLock lock(&mu_);
    if (!inner_) return Closed();
    return inner_->Send(std::move(frame));
  }
  absl::Status Pump(std::vector<std::string>* frames) override {
    absl::MutexLock lock(&mu_);
    if (!inner_) return Closed();
    return inner_->Pump(frames);
  }
  int PollFd() const override {
    absl::MutexLock lock(&mu_);
    return inner_ ? inner_->PollFd() : -1;
  }
  uint32_t PollEvents() const override {
    absl::MutexLock lock(&mu_);
    return inner_ ? inner_->PollEvents() : 0;
  }
  absl::Status SendBlocking(absl::string_view frame) override;
  absl::StatusOr<std::string> ReceiveBlocking() override;

  // Descriptors: forwarded as they are (a mid-send fault fires only on
  // SendBlocking()).
  bool CarriesDescriptors() const override {
    absl::MutexLock lock(&mu_);
    return inner_ ? inner_->CarriesDescriptors() : false;
  }
  absl::Status SendPartsWithDescriptors(std::vector<absl::string_view> parts,
                                        std::shared_ptr<const void> owner,
                                        absl::Span<const int> fds) override {
    absl::MutexLock lock(&mu_);
    if (!inner_) return Closed();
    return inner_->SendPartsWithDescriptors(std::move(parts), std::move(owner),
                                            fds);
  }
  absl::Status SendBlockingPartsWithDescriptors(
      absl::Span<const absl::string_view> parts,
      absl::Span<const int> fds) override {
    ApplyPending();
    Channel* inner;
    {
      absl::MutexLock lock(&mu_);
      inner = inner_.get();
    }
    if (inner == nullptr) return Closed();
    // A lie goes instead, without the descriptors (they close here).
    if (std::optional<std::string> lie = TakeLie(parts)) {
      return inner->SendBlocking(*lie);
    }
    return inner->SendBlockingPartsWithDescriptors(parts, fds);
  }
  absl::StatusOr<std::vector<UniqueFd>> TakeDescriptors(size_t n) override {
    absl::MutexLock lock(&mu_);
    if (!inner_) return Closed();
    return inner_->TakeDescriptors(n);
  }

  // Drops the real channel: its descriptors close; later calls fail.
  // `spec`'s fault is noted as fired (NoteFired) when that happens.
  void Drop(const Spec& spec) { Act(Action::kDrop, spec); }
  // Sends a frame that no decoder accepts (noted as Drop's is).
  void SendGarbage(const Spec& spec) { Act(Action::kGarbage, spec); }
  // Replaces the next frame sent with a lie of `spec.mode`'s kind (noted as
  // fired when the lie is sent).
  void Lie(const Spec& spec) { Act(Action::kLie, spec); }

 private:
  enum class Action { kNone, kDrop, kGarbage, kLie };

  // The lie to send instead of the frame made of `parts` if one is due (then
  // noted as fired), else nullopt. Worker thread only.
  std::optional<std::string> TakeLie(
      absl::Span<const absl::string_view> parts) {
    Spec spec;
    {
      absl::MutexLock lock(&mu_);
      if (!lie_due_) return std::nullopt;
      lie_due_ = false;
      spec = lie_spec_;
    }
    std::optional<std::string> lie =
        MakeLie(spec.mode, absl::StrJoin(parts, ""));
    if (lie) NoteFired(spec);
    return lie;
  }

  // A channel belongs to the worker's thread (the capnp transport's event
  // loop cannot be touched from another): from another thread (a mid-task
  // fault's timer) the action waits for the worker's next use of the channel.
  // The fault is noted as fired when it takes effect, not when asked for:
  // a mid-task fault's detection is timed from then.
  void Act(Action action, const Spec& spec) {
    absl::MutexLock lock(&mu_);
    pending_ = action;
    pending_spec_ = spec;
    if (std::this_thread::get_id() == owner_) ApplyPendingLocked();
  }
  void ApplyPending() {
    absl::MutexLock lock(&mu_);
    ApplyPendingLocked();
  }
  void ApplyPendingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Action action = pending_;
    pending_ = Action::kNone;
    if (action == Action::kLie) {
      lie_due_ = true;  // noted as fired when it is sent (TakeLie)
      lie_spec_ = pending_spec_;
      return;
    }
    if (action != Action::kNone) NoteFired(pending_spec_);
    if (action == Action::kDrop) inner_.reset();
    if (action == Action::kGarbage && inner_) {
      (void)inner_->SendBlocking("this is not a procpool message");
    }
  }

  static absl::Status Closed() {
    return absl::UnavailableError("channel dropped by fault injection");
  }
  mutable absl::Mutex mu_;
  std::unique_ptr<Channel> inner_ ABSL_GUARDED_BY(mu_);
  Action pending_ ABSL_GUARDED_BY(mu_) = Action::kNone;
  Spec pending_spec_ ABSL_GUARDED_BY(mu_);
  bool lie_due_ ABSL_GUARDED_BY(mu_) = false;  // replace the next frame sent
  Spec lie_spec_ ABSL_GUARDED_BY(mu_);
  const std::thread::id owner_ = std::this_thread::get_id();
};

// Appends a record to spec.fired_file (if set): the fault fired, now.
void NoteFired(const Spec& spec) {
  if (spec.fired_file.empty()) return;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  char record[kFiredRecordBytes + 1];
  snprintf(record, sizeof(record), "%020lld\n",
           static_cast<long long>(now.tv_sec) * 1000000000LL + now.tv_nsec);
  int fd = open(spec.fired_file.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return;
  (void)!write(fd, record, kFiredRecordBytes);  // one write: O_APPEND keeps it whole
  close(fd);
}

}  // namespace

std::vector<int64_t> ReadFiredTimes(const std::string& path) {
  std::vector<int64_t> times;
  FILE* f = fopen(path.c_str(), "re");
  if (f == nullptr) return times;
  long long ns = 0;
  while (fscanf(f, "%20lld\n", &ns) == 1) times.push_back(ns);
  fclose(f);
  return times;
}

namespace {

void Fire(const Spec& spec) {
  // (The channel's faults note themselves when they take effect.)
  if (spec.mode != Mode::kCloseChannel && spec.mode != Mode::kCorruptFrame &&
      !IsLie(spec.mode)) {
    NoteFired(spec);
  }
  switch (spec.mode) {
    case Mode::kSigkill:
      raise(SIGKILL);
      break;
    case Mode::kSigsegv:
      raise(SIGSEGV);
      break;
    case Mode::kAbort:
      abort();
    case Mode::kExit:
      // exit_group(2) itself, not _exit(): a sanitizer's _exit runs its
      // finalization first (TSan sleeps atexit_sleep_ms, 1 s by default,
      // and may change the code), while the other threads go on.
      syscall(SYS_exit_group, spec.exit_code);
      _exit(spec.exit_code);
    case Mode::kCloseChannel:
      if (current_channel) current_channel->Drop(spec);
      break;
    case Mode::kCorruptFrame:
      if (current_channel) current_channel->SendGarbage(spec);
      break;
    case Mode::kStop:
      raise(SIGSTOP);
      break;
    case Mode::kLieVersion:
    case Mode::kLieWorkId:
    case Mode::kLieOutcomes:
    case Mode::kLieKind:
    case Mode::kLieHelloAgain:
      if (current_channel) current_channel->Lie(spec);
      break;
  }
}

// Fires if armed for `point` (and the call count matches).
void MaybeFire(Point point) {
  Armed& a = GetArmed();
  if (!a.armed.load() || a.spec.point != point) return;
  if (point != Point::kInitializer && point != Point::kExit &&
      a.calls != a.spec.on_call) {
    return;
  }
  a.armed.store(false);  // once
  Fire(a.spec);
}

// A mid-send fault parks the sending thread before it fires: otherwise the
// send could go on while the fault takes effect (a crash handler writing its
// report, a sanitizer's exit) and the frame arrive whole, so that the worker
// died after its result and with the next task (a flaky test under TSan).
// The thread stays in this handler until the process dies.
int ParkSignal() { return SIGRTMIN + 2; }
std::atomic<bool> sender_parked{false};

void ParkHere(int) {
  sender_parked.store(true);
  for (;;) pause();
}

// Parks `sender`; waits (bounded) until it is. Returns whether it is.
bool Park(pthread_t sender) {
  struct sigaction action = {};
  action.sa_handler = ParkHere;
  sigemptyset(&action.sa_mask);
  if (sigaction(ParkSignal(), &action, nullptr) != 0) return false;
  if (pthread_kill(sender, ParkSignal()) != 0) return false;
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  while (!sender_parked.load() && absl::Now() < deadline) {
    absl::SleepFor(absl::Microseconds(100));
  }
  return sender_parked.load();
}

absl::Status FaultChannel::SendBlocking(absl::string_view frame) {
  ApplyPending();
  if (std::optional<std::string> lie = TakeLie(absl::MakeConstSpan(&frame, 1))) {
    Channel* inner;
    {
      absl::MutexLock lock(&mu_);
      inner = inner_.get();
    }
    if (inner == nullptr) return Closed();
    return inner->SendBlocking(*lie);
  }
  Armed& a = GetArmed();
  // Set while a mid-send fault is due: whichever comes first, the timer
  // (the send is still going) or the end of the send (it was faster than the
  // timer), fires it, so it always hits this send and never a later task.
  std::shared_ptr<std::atomic<bool>> due;
  Spec spec;
  if (a.armed.load() && a.spec.point == Point::kMidSend &&
      frame.size() >= kLargeFrame && a.calls == a.spec.on_call) {
    a.armed.store(false);
    spec = a.spec;
    due = std::make_shared<std::atomic<bool>>(true);
    std::thread([spec, due, sender = pthread_self()] {
      absl::SleepFor(absl::Milliseconds(2));
      if (!due->exchange(false)) return;
      if (!Park(sender)) {
        fprintf(stderr, "fault injection: could not park the sender\n");
      }
      Fire(spec);
    }).detach();
  }
  // Not under mu_: a mid-send fault from another thread must not wait for
  // the send to finish. Drop() is never used with kMidSend (Applies()).
  Channel* inner;
  {
    absl::MutexLock lock(&mu_);
    inner = inner_.get();
  }
  if (inner == nullptr) return Closed();
  absl::Status sent = inner->SendBlocking(frame);
  if (due != nullptr && due->exchange(false)) Fire(spec);
  return sent;
}

absl::StatusOr<std::string> FaultChannel::ReceiveBlocking() {
  ApplyPending();
  Channel* inner;
  {
    absl::MutexLock lock(&mu_);
    inner = inner_.get();
  }
  if (inner == nullptr) return Closed();
  absl::StatusOr<std::string> frame = inner->ReceiveBlocking();
  Armed& a = GetArmed();
  if (frame.ok() && a.armed.load()) {
    ++a.calls;  // every frame after arming is a call (or the shutdown)
    MaybeFire(Point::kDecodeCall);
  }
  return frame;
}

class FaultHooks final : public WorkerHooks {
 public:
  std::unique_ptr<Channel> WrapChannel(
      std::unique_ptr<Channel> channel) override {
    auto wrapped = std::make_unique<FaultChannel>(std::move(channel));
    current_channel = wrapped.get();
    return wrapped;
  }
  void OnTaskStart(absl::string_view) override {
    MaybeFire(Point::kTaskStart);
    Armed& a = GetArmed();
    if (a.armed.load() && a.spec.point == Point::kMidTask &&
        a.calls == a.spec.on_call) {
      a.armed.store(false);
      Spec spec = a.spec;
      std::thread([spec] {
        absl::SleepFor(absl::Milliseconds(spec.delay_ms));
        Fire(spec);
      }).detach();
    }
  }
  void OnResultEncoded(absl::string_view) override {
    MaybeFire(Point::kEncodeResult);
  }
  void OnExit(int) override { MaybeFire(Point::kExit); }
};

const bool hooks_installed = [] {
  SetWorkerHooks(new FaultHooks);
  return true;
}();

// The initializer: arms the fault in this worker.
void Arm(int point, int mode, int exit_code, int delay_ms, int on_call,
         const std::string& once_file, const std::string& fired_file) {
  if (!once_file.empty()) {
    int fd = open(once_file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                  0644);
    if (fd < 0) return;  // another worker of the pool had it
    close(fd);
  }
  Armed& a = GetArmed();
  a.spec = Spec{static_cast<Point>(point), static_cast<Mode>(mode), exit_code,
                delay_ms, on_call, once_file, fired_file};
  a.calls = 0;
  a.armed.store(true);
  MaybeFire(Point::kInitializer);
}

}  // namespace

const char* PointName(Point point) {
  switch (point) {
    case Point::kDecodeCall: return "DecodeCall";
    case Point::kTaskStart: return "TaskStart";
    case Point::kMidTask: return "MidTask";
    case Point::kEncodeResult: return "EncodeResult";
    case Point::kMidSend: return "MidSend";
    case Point::kInitializer: return "Initializer";
    case Point::kExit: return "Exit";
  }
  return "?";
}

const char* ModeName(Mode mode) {
  switch (mode) {
    case Mode::kSigkill: return "Sigkill";
    case Mode::kSigsegv: return "Sigsegv";
    case Mode::kAbort: return "Abort";
    case Mode::kExit: return "Exit";
    case Mode::kCloseChannel: return "CloseChannel";
    case Mode::kCorruptFrame: return "CorruptFrame";
    case Mode::kStop: return "Stop";
    case Mode::kLieVersion: return "LieVersion";
    case Mode::kLieWorkId: return "LieWorkId";
    case Mode::kLieOutcomes: return "LieOutcomes";
    case Mode::kLieKind: return "LieKind";
    case Mode::kLieHelloAgain: return "LieHelloAgain";
  }
  return "?";
}

std::vector<Point> AllPoints() {
  return {Point::kDecodeCall,   Point::kTaskStart, Point::kMidTask,
          Point::kEncodeResult, Point::kMidSend,   Point::kInitializer,
          Point::kExit};
}

std::vector<Mode> AllModes() {
  return {Mode::kSigkill,      Mode::kSigsegv,      Mode::kAbort, Mode::kExit,
          Mode::kCloseChannel, Mode::kCorruptFrame, Mode::kStop};
}

std::vector<Mode> LyingModes() {
  return {Mode::kLieVersion, Mode::kLieWorkId, Mode::kLieOutcomes,
          Mode::kLieKind, Mode::kLieHelloAgain};
}

bool IsLie(Mode mode) {
  return mode == Mode::kLieVersion || mode == Mode::kLieWorkId ||
         mode == Mode::kLieOutcomes || mode == Mode::kLieKind ||
         mode == Mode::kLieHelloAgain;
}

bool Applies(Point point, Mode mode) {
  const bool channel_mode = mode == Mode::kCloseChannel ||
                            mode == Mode::kCorruptFrame || IsLie(mode);
  return !(channel_mode &&
           (point == Point::kMidSend || point == Point::kExit));
}

int SignalOf(Mode mode) {
  switch (mode) {
    case Mode::kSigkill: return SIGKILL;
    case Mode::kSigsegv: return SIGSEGV;
    case Mode::kAbort: return SIGABRT;
    case Mode::kStop: return SIGSTOP;
    default: return 0;
  }
}

Call ArmFault(const Spec& spec) {
  return MakeCall(Arm, static_cast<int>(spec.point), static_cast<int>(spec.mode),
                  spec.exit_code, spec.delay_ms, spec.on_call, spec.once_file,
                  spec.fired_file);
}

}  // namespace fault
}  // namespace procpool

PROCPOOL_TASK(procpool::fault::Arm);
