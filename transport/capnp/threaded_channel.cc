// The channel with a KJ thread of its own; see threaded_channel.h.
#include "transport/capnp/threaded_channel.h"

#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <utility>

#include <kj/async-unix.h>

#include "absl/strings/str_cat.h"
#include "common/event_fd.h"
#include "common/posix_error.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"

namespace procpool {
namespace capnp_internal {
absl::StatusOr<std::unique_ptr<ThreadedChannel>> ThreadedChannel::Start(
    std::unique_ptr<StreamOpener> opener, ThreadedChannelOptions options) {
  ASSIGN_OR_RETURN(UniqueFd wake_fd, MakeEventFd("capnp transport"));
  ASSIGN_OR_RETURN(UniqueFd ready_fd, MakeEventFd("capnp transport"));
  return std::unique_ptr<ThreadedChannel>(
      new ThreadedChannel(std::move(opener), std::move(options),
                          std::move(wake_fd), std::move(ready_fd)));
}

ThreadedChannel::ThreadedChannel(std::unique_ptr<StreamOpener> opener,
                                 ThreadedChannelOptions options,
                                 UniqueFd wake_fd, UniqueFd ready_fd)
    : options_(std::move(options)),
      wake_fd_(std::move(wake_fd)),
      ready_fd_(std::move(ready_fd)),
      opener_(std::move(opener)) {
  thread_ = std::thread([this] { RunKjThread(); });
}

ThreadedChannel::~ThreadedChannel() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    WakeKjThreadLocked();
  }
  thread_.join();
}

absl::Status ThreadedChannel::WaitUntilOpen(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return open_ || !status_.ok();
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&done), timeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat("capnp transport: the connection to the ",
                     options_.peer_name, " did not open within ",
                     absl::FormatDuration(timeout)));
  }
  return status_;
}

absl::Status ThreadedChannel::Send(std::string frame) {
  absl::MutexLock lock(&mu_);
  if (!status_.ok()) return status_;
  outgoing_.push_back(std::move(frame));
  ++frames_queued_;
  WakeKjThreadLocked();
  return absl::OkStatus();
}

absl::Status ThreadedChannel::Pump(std::vector<std::string>* frames) {
  return Poll(frames, /*stay=*/false);
}

absl::Status ThreadedChannel::Poll(std::vector<std::string>* frames,
                                   bool stay) {
  // With `stay`, OnFrame() leaves the ready eventfd alone (the caller will
  // look again); without, it signals again. Stored before news_ is read, and
  // OnFrame() stores news_ before it reads stay_ (both sequentially
  // consistent): a frame is either seen here or signalled.
  stay_.store(stay);
  if (!news_.load()) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  TakeReadySignalLocked();
  for (std::string& frame : incoming_) frames->push_back(std::move(frame));
  incoming_.clear();
  news_.store(!status_.ok());
  return status_;
}

uint32_t ThreadedChannel::PollEvents() const { return EPOLLIN; }

absl::Status ThreadedChannel::SendBlocking(absl::string_view frame) {
  if (!options_.acknowledged_sends) return Send(std::string(frame));
  absl::MutexLock lock(&mu_);
  if (!status_.ok()) return status_;
  outgoing_.push_back(std::string(frame));
  const uint64_t mine = ++frames_queued_;
  WakeKjThreadLocked();
  auto answered = [this, mine]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return frames_acknowledged_ >= mine || !status_.ok();
  };
  mu_.Await(absl::Condition(&answered));
  return frames_acknowledged_ >= mine ? absl::OkStatus() : status_;
}

absl::StatusOr<std::string> ThreadedChannel::ReceiveBlocking() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      TakeReadySignalLocked();
      if (!incoming_.empty()) {
        std::string frame = std::move(incoming_.front());
        incoming_.pop_front();
        news_.store(!incoming_.empty() || !status_.ok());
        return frame;
      }
      if (!status_.ok()) return status_;
    }
    struct pollfd p = {ready_fd_.get(), POLLIN, 0};
    if (poll(&p, 1, -1) < 0 && errno != EINTR) {
      return PosixError("capnp transport: poll", errno);
    }
  }
}

void ThreadedChannel::WakeKjThreadLocked() {
  if (wake_pending_) return;
  wake_pending_ = true;
  SignalEventFd(wake_fd_.get());
}

void ThreadedChannel::SignalReadyLocked() {
  if (ready_signaled_) return;
  ready_signaled_ = true;
  SignalEventFd(ready_fd_.get());
}

void ThreadedChannel::TakeReadySignalLocked() {
  if (!ready_signaled_) return;
  ready_signaled_ = false;
  DrainEventFd(ready_fd_.get());
}

void ThreadedChannel::SetError(absl::Status status) {
  bool first_after_open = false;
  {
    absl::MutexLock lock(&mu_);
    if (status_.ok()) {
      status_ = status;
      first_after_open = open_;
    }
    outgoing_.clear();
    news_.store(true);
    SignalReadyLocked();
  }
  if (first_after_open && options_.on_error) options_.on_error(status);
}

void ThreadedChannel::OnFrame(std::string frame) {
  absl::MutexLock lock(&mu_);
  incoming_.push_back(std::move(frame));
  news_.store(true);
  if (!stay_.load()) SignalReadyLocked();
}

void ThreadedChannel::RunKjThread() {
  absl::Status status = CatchKj(
      absl::StrCat("the event loop of the channel to the ", options_.peer_name),
      [this] { RunKjLoop(); });
  if (!status.ok()) SetError(status);
  opener_.reset();
}

kj::Promise<void> ThreadedChannel::StopRequested(
    kj::UnixEventPort::FdObserver& wake) {
  // Drain first, then wait: the observer is edge-triggered. Frames queued
  // meanwhile stay queued: the main loop looks at the queue before it waits.
  DrainEventFd(wake_fd_.get());
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return kj::READY_NOW;
    wake_pending_ = false;
  }
  return wake.whenBecomesReadable().then(
      [this, &wake] { return StopRequested(wake); });
}

kj::Promise<void> ThreadedChannel::Heartbeat(kj::Timer& timer,
                                             FrameSink::Client& peer,
                                             kj::TaskSet& tasks) {
  const absl::Duration tick = std::min(options_.heartbeat_interval,
                                       options_.heartbeat_timeout / 8);
  return timer.afterDelay(ToKj(tick)).then([this, &timer, &peer, &tasks] {
    const kj::TimePoint now = timer.now();
    if (now - last_heard_ > ToKj(options_.heartbeat_timeout)) {
      SetError(absl::UnavailableError(absl::StrCat(
          "capnp transport: no heartbeat from the ", options_.peer_name,
          " for ", absl::FormatDuration(options_.heartbeat_timeout),
          " (it stopped answering: the host or the network is down, or the "
          "process is stopped)")));
      return kj::Promise<void>(kj::READY_NOW);
    }
    if (now - last_ping_ >= ToKj(options_.heartbeat_interval)) {
      last_ping_ = now;
      // A ping that fails fails with the connection, which
      // WhenDisconnected() reports better.
      tasks.add(peer.pingRequest(capnp::MessageSize{4, 0})
                    .send()
                    .ignoreResult()
                    .catch_([](kj::Exception&&) {}));
    }
    return Heartbeat(timer, peer, tasks);
  });
}

// Runs until the destructor sets stop_. The peer going away does not end the
// loop: it records the error, and Send() reports it from then on.
void ThreadedChannel::RunKjLoop() {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::UnixEventPort::FdObserver wake(
      io.unixEventPort, wake_fd_.get(),
      kj::UnixEventPort::FdObserver::OBSERVE_READ);

  // Open the stream, unless the channel is destroyed first.
  kj::Promise<OpenedStream> opening = kj::evalNow(
      [this, &io] { return opener_->Open(io); });
  kj::Maybe<OpenedStream> maybe_opened =
      opening
          .then([](OpenedStream&& s) -> kj::Maybe<OpenedStream> {
            return kj::mv(s);
          })
          .exclusiveJoin(StopRequested(wake).then(
              []() -> kj::Maybe<OpenedStream> { return nullptr; }))
          .wait(io.waitScope);
  OpenedStream* opened;
  KJ_IF_MAYBE(o, maybe_opened) {
    opened = o;
  } else {
    return;  // stopped
  }
  if (!opened->status.ok()) {
    SetError(opened->status);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }

  kj::Timer& timer = io.provider->getTimer();
  last_heard_ = last_ping_ = timer.now();
  FrameConnection conn(
      *opened->stream, opened->socket_fd, options_.side, this,
      options_.peer_name, [this](absl::Status s) { SetError(std::move(s)); },
      [this, &timer] { last_heard_ = timer.now(); });
  FrameSink::Client& peer = conn.peer();
  kj::TaskSet& tasks = conn.tasks();
  if (options_.heartbeat_interval > absl::ZeroDuration() &&
      options_.heartbeat_timeout > absl::ZeroDuration()) {
    tasks.add(Heartbeat(timer, peer, tasks));
  }
  for (;;) {
    // Drain first, then wait: the observer is edge-triggered.
    DrainEventFd(wake_fd_.get());
    std::deque<std::string> out;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      wake_pending_ = false;
      out.swap(outgoing_);
    }
    for (const std::string& frame : out) {
      kj::Promise<void> answered = kj::joinPromises(PushFrame(peer, frame));
      if (options_.acknowledged_sends) {
        answered = answered.then([this] {
          absl::MutexLock lock(&mu_);
          ++frames_acknowledged_;
        });
      }
      tasks.add(kj::mv(answered));
    }
    out.clear();
    wake.whenBecomesReadable().wait(io.waitScope);
  }
}

}  // namespace capnp_internal
}  // namespace procpool
