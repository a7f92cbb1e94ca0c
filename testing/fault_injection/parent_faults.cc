#include "testing/fault_injection/parent_faults.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "transport/transport.h"

namespace procpool {
namespace fault {
namespace {

constexpr char kGarbage[] = "this is not a procpool message";

// What the armed fault tells a channel to do with one event.
enum class Act { kNone, kFail, kCorrupt };

enum class Event { kSend, kPump, kFrame };

// The armed fault of this process and its counts.
class Armed {
 public:
  void Arm(const ParentSpec& spec) {
    absl::MutexLock lock(&mu_);
    armed_ = true;
    spec_ = spec;
    sends_ = pumps_ = frames_ = fired_ = 0;
  }
  int Disarm() {
    absl::MutexLock lock(&mu_);
    armed_ = false;
    return fired_;
  }
  // Counts `event`; says what to do if it is the one the fault fires on.
  Act On(Event event) {
    absl::MutexLock lock(&mu_);
    if (!armed_) return Act::kNone;
    int count = 0;
    Event wanted = Event::kSend;
    switch (spec_.mode) {
      case ParentMode::kSendFails:
      case ParentMode::kCorruptOutgoing:
        wanted = Event::kSend;
        break;
      case ParentMode::kPumpFails:
      case ParentMode::kPumpDataLoss:
        wanted = Event::kPump;
        break;
      case ParentMode::kCorruptIncoming:
        wanted = Event::kFrame;
        break;
    }
    if (event != wanted) return Act::kNone;
    switch (event) {
      case Event::kSend: count = ++sends_; break;
      case Event::kPump: count = ++pumps_; break;
      case Event::kFrame: count = ++frames_; break;
    }
    if (count != spec_.on_event || fired_ > 0) return Act::kNone;
    ++fired_;
    const bool corrupt = spec_.mode == ParentMode::kCorruptIncoming ||
                         spec_.mode == ParentMode::kCorruptOutgoing;
    return corrupt ? Act::kCorrupt : Act::kFail;
  }
  // The error a failing Send or Pump returns.
  absl::Status Error() {
    absl::MutexLock lock(&mu_);
    if (spec_.mode == ParentMode::kPumpDataLoss) {
      return absl::DataLossError("fault injection: the parent's Pump saw "
                                 "bytes that are not a frame");
    }
    return absl::UnavailableError(absl::StrCat(
        "fault injection: the parent's ", ParentModeName(spec_.mode)));
  }

 private:
  absl::Mutex mu_;
  bool armed_ ABSL_GUARDED_BY(mu_) = false;
  ParentSpec spec_ ABSL_GUARDED_BY(mu_);
  int sends_ ABSL_GUARDED_BY(mu_) = 0;
  int pumps_ ABSL_GUARDED_BY(mu_) = 0;
  int frames_ ABSL_GUARDED_BY(mu_) = 0;
  int fired_ ABSL_GUARDED_BY(mu_) = 0;
};

Armed& GetArmed() {
  static Armed* armed = new Armed;
  return *armed;
}

// The parent's end of a channel, forwarding to the real one. Used by one
// thread at a time (the Channel contract), so it needs no lock of its own.
class FaultParentChannel final : public Channel {
 public:
  explicit FaultParentChannel(std::unique_ptr<Channel> inner)
      : inner_(std::move(inner)) {}

  // What an armed fault makes of a send: its status, or nullopt (send it).
  std::optional<absl::Status> InterceptSend() {
    if (!failed_.ok()) return failed_;
    switch (GetArmed().On(Event::kSend)) {
      case Act::kFail:
        return failed_ = GetArmed().Error();
      case Act::kCorrupt:
        return inner_->Send(kGarbage);
      case Act::kNone:
        break;
    }
    return std::nullopt;
  }

  absl::Status Send(std::string frame) override {
    if (std::optional<absl::Status> done = InterceptSend()) return *done;
    return inner_->Send(std::move(frame));
  }
  absl::Status SendParts(std::vector<absl::string_view> parts,
                         std::shared_ptr<const void> owner) override {
    if (std::optional<absl::Status> done = InterceptSend()) return *done;
    return inner_->SendParts(std::move(parts), std::move(owner));
  }
  absl::Status Pump(std::vector<std::string>* frames) override {
    if (!failed_.ok()) return failed_;
    if (GetArmed().On(Event::kPump) == Act::kFail) {
      return failed_ = GetArmed().Error();
    }
    const size_t before = frames->size();
    absl::Status status = inner_->Pump(frames);
    CorruptNew(frames, before);
    return status;
  }
  absl::Status Poll(std::vector<std::string>* frames, bool stay) override {
    if (!failed_.ok()) return failed_;
    if (GetArmed().On(Event::kPump) == Act::kFail) {
      return failed_ = GetArmed().Error();
    }
    const size_t before = frames->size();
    absl::Status status = inner_->Poll(frames, stay);
    CorruptNew(frames, before);
    return status;
  }
  bool PollIsCheap() const override { return inner_->PollIsCheap(); }
  int PollFd() const override { return inner_->PollFd(); }
  uint32_t PollEvents() const override { return inner_->PollEvents(); }
  absl::Status SendBlocking(absl::string_view frame) override {
    return inner_->SendBlocking(frame);
  }
  absl::Status SendBlockingParts(
      absl::Span<const absl::string_view> parts) override {
    return inner_->SendBlockingParts(parts);
  }
  absl::StatusOr<std::string> ReceiveBlocking() override {
    return inner_->ReceiveBlocking();
  }
  bool CarriesDescriptors() const override {
    return inner_->CarriesDescriptors();
  }
  absl::Status SendPartsWithDescriptors(std::vector<absl::string_view> parts,
                                        std::shared_ptr<const void> owner,
                                        absl::Span<const int> fds) override {
    if (std::optional<absl::Status> done = InterceptSend()) return *done;
    return inner_->SendPartsWithDescriptors(std::move(parts), std::move(owner),
                                            fds);
  }
  absl::Status SendBlockingPartsWithDescriptors(
      absl::Span<const absl::string_view> parts,
      absl::Span<const int> fds) override {
    return inner_->SendBlockingPartsWithDescriptors(parts, fds);
  }
  absl::StatusOr<std::vector<UniqueFd>> TakeDescriptors(size_t n) override {
    return inner_->TakeDescriptors(n);
  }

 private:
  // Counts the frames appended since `before`; garbles the one the fault
  // fires on.
  static void CorruptNew(std::vector<std::string>* frames, size_t before) {
    for (size_t i = before; i < frames->size(); ++i) {
      if (GetArmed().On(Event::kFrame) == Act::kCorrupt) (*frames)[i] = kGarbage;
    }
  }

  const std::unique_ptr<Channel> inner_;
  absl::Status failed_;  // set once a Send or Pump failed by injection
};

// "fault-NAME": forwards to NAME's transport, wrapping the parent's ends.
class FaultTransport final : public Transport {
 public:
  explicit FaultTransport(std::string inner)
      : inner_name_(std::move(inner)), name_(WrappedTransportName(inner_name_)) {}

  absl::string_view name() const override { return name_; }
  absl::Duration WaiterPollBudget() const override {
    absl::StatusOr<Transport*> inner = Inner();
    return inner.ok() ? (*inner)->WaiterPollBudget()
                      : Transport::WaiterPollBudget();
  }
  absl::StatusOr<ChannelPair> CreatePair() override {
    absl::StatusOr<Transport*> inner = Inner();
    if (!inner.ok()) return inner.status();
    absl::StatusOr<ChannelPair> pair = (*inner)->CreatePair();
    if (!pair.ok()) return pair;
    pair->parent = std::make_unique<FaultParentChannel>(std::move(pair->parent));
    return pair;
  }
  absl::StatusOr<std::unique_ptr<Channel>> OpenChild(
      const ChildEndpoint& endpoint) override {
    absl::StatusOr<Transport*> inner = Inner();
    if (!inner.ok()) return inner.status();
    return (*inner)->OpenChild(endpoint);
  }

 private:
  // Looked up when first needed: registration order is unspecified.
  absl::StatusOr<Transport*> Inner() const { return GetTransport(inner_name_); }

  const std::string inner_name_;
  const std::string name_;
};

const bool registered = [] {
  for (const char* name : {"shm", "unix", "capnp"}) {
    RegisterTransport(new FaultTransport(name));
  }
  return true;
}();

}  // namespace

const char* ParentModeName(ParentMode mode) {
  switch (mode) {
    case ParentMode::kSendFails: return "SendFails";
    case ParentMode::kPumpFails: return "PumpFails";
    case ParentMode::kPumpDataLoss: return "PumpDataLoss";
    case ParentMode::kCorruptIncoming: return "CorruptIncoming";
    case ParentMode::kCorruptOutgoing: return "CorruptOutgoing";
  }
  return "?";
}

std::vector<ParentMode> AllParentModes() {
  return {ParentMode::kSendFails, ParentMode::kPumpFails,
          ParentMode::kPumpDataLoss, ParentMode::kCorruptIncoming,
          ParentMode::kCorruptOutgoing};
}

std::string WrappedTransportName(absl::string_view transport) {
  return absl::StrCat("fault-", transport);
}

void ArmParentFault(const ParentSpec& spec) { GetArmed().Arm(spec); }

int DisarmParentFault() { return GetArmed().Disarm(); }

}  // namespace fault
}  // namespace procpool
