// The channel driven by its user's thread; see driven_channel.h.
#include "transport/capnp/driven_channel.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <limits.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include <kj/debug.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/event_fd.h"
#include "common/posix_error.h"
#include "common/status_macros.h"

namespace procpool {
namespace capnp_internal {

// A non-blocking stream socket as a kj::AsyncIoStream on a given
// UnixEventPort (KJ's own socket wrapper is made only by setupAsyncIo(),
// whose event loop stays bound to the thread that made it). Reads and writes
// go straight to the socket; only when it would block does the stream wait
// for the port to say it is ready.
class FdStream final : public kj::AsyncIoStream {
 public:
  // Must be made with the event loop current.
  FdStream(kj::UnixEventPort& port, UniqueFd fd)
      : FdStream(port, std::move(fd), kj::newPromiseAndFulfiller<void>()) {}

  ~FdStream() noexcept(false) {
    observer_ = nullptr;  // leaves the port's epoll set before the close
    socket_.reset();
  }

  // Whether a write waits for the socket to take more.
  bool write_blocked() const { return write_blocked_; }

  kj::Promise<size_t> tryRead(void* buffer, size_t min_bytes,
                              size_t max_bytes) override {
    return ReadFrom(static_cast<kj::byte*>(buffer), min_bytes, max_bytes, 0);
  }

  kj::Promise<void> write(const void* buffer, size_t size) override {
    auto iov = kj::heapArray<struct iovec>(1);
    iov[0].iov_base = const_cast<void*>(buffer);
    iov[0].iov_len = size;
    return WriteFrom(kj::mv(iov), 0);
  }

  kj::Promise<void> write(
      kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    auto iov = kj::heapArray<struct iovec>(pieces.size());
    for (size_t i = 0; i < pieces.size(); ++i) {
      iov[i].iov_base = const_cast<kj::byte*>(pieces[i].begin());
      iov[i].iov_len = pieces[i].size();
    }
    return WriteFrom(kj::mv(iov), 0);
  }

  kj::Promise<void> whenWriteDisconnected() override {
    return observer_->whenWriteDisconnected();
  }

  void shutdownWrite() override { ::shutdown(fd_, SHUT_WR); }

  kj::Maybe<int> getFd() const override { return fd_; }

  void getsockopt(int level, int option, void* value,
                  kj::uint* length) override {
    socklen_t len = *length;
    KJ_SYSCALL(::getsockopt(fd_, level, option, value, &len));
    *length = len;
  }

  void setsockopt(int level, int option, const void* value,
                  kj::uint length) override {
    KJ_SYSCALL(::setsockopt(fd_, level, option, value, length));
  }

 private:
  FdStream(kj::UnixEventPort& port, UniqueFd fd,
           kj::PromiseFulfillerPair<void> read_end)
      : socket_(std::move(fd)),
        fd_(socket_.get()),
        observer_(kj::heap<kj::UnixEventPort::FdObserver>(
            port, fd_, kj::UnixEventPort::FdObserver::OBSERVE_READ_WRITE)),
        read_end_(read_end.promise.fork()),
        read_end_fulfiller_(kj::mv(read_end.fulfiller)) {}

  void ReadEnded() { read_end_fulfiller_->fulfill(); }

  kj::Promise<size_t> ReadFrom(kj::byte* buffer, size_t min_bytes,
                               size_t max_bytes, size_t done) {
    for (;;) {
      const ssize_t n = ::recv(fd_, buffer, max_bytes, 0);
      if (n < 0) {
        const int error = errno;
        if (error == EINTR) continue;
        if (error == EAGAIN || error == EWOULDBLOCK) {
          return observer_->whenBecomesReadable().then(
              [this, buffer, min_bytes, max_bytes, done] {
                return ReadFrom(buffer, min_bytes, max_bytes, done);
              });
        }
        // As the end of stream: after what is already queued.
        ReadEnded();
        return kj::evalLast([error]() -> size_t {
          KJ_FAIL_SYSCALL("recv", error);
        });
      }
      if (n == 0) {
        // The end of stream goes to the RPC system only once nothing else
        // is queued: it dispatches each call it read on a later turn of the
        // loop (kj::evalLater), and a disconnect cancels the calls not yet
        // dispatched, so the frames a worker sent just before it exited
        // would be lost.
        ReadEnded();
        return kj::evalLast([done] { return done; });
      }
      const size_t got = static_cast<size_t>(n);
      done += got;
      if (got >= min_bytes) return done;
      buffer += got;
      min_bytes -= got;
      max_bytes -= got;
    }
  }

  // Writes iov[first..]; the array is advanced in place as bytes go out.
  kj::Promise<void> WriteFrom(kj::Array<struct iovec> iov, size_t first) {
    while (first < iov.size()) {
      if (iov[first].iov_len == 0) {
        ++first;
        continue;
      }
      struct msghdr msg = {};
      msg.msg_iov = iov.begin() + first;
      msg.msg_iovlen = std::min<size_t>(iov.size() - first, IOV_MAX);
      const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
      if (n < 0) {
        const int error = errno;
        if (error == EINTR) continue;
        if (error == EAGAIN || error == EWOULDBLOCK) {
          write_blocked_ = true;
          return observer_->whenBecomesWritable().then(
              [this, iov = kj::mv(iov), first]() mutable {
                return WriteFrom(kj::mv(iov), first);
              });
        }
        write_blocked_ = false;
        if (error == EPIPE || error == ECONNRESET) {
          // The worker is gone, but what it sent before may still wait in
          // the socket: the write fails only once that has been read, or
          // the failure would break the connection before its last frames
          // were dispatched.
          return read_end_.addBranch().then(
              [error] { KJ_FAIL_SYSCALL("sendmsg", error); });
        }
        KJ_FAIL_SYSCALL("sendmsg", error);
      }
      size_t left = static_cast<size_t>(n);
      while (left > 0) {
        struct iovec& v = iov[first];
        const size_t take = std::min(left, v.iov_len);
        v.iov_base = static_cast<char*>(v.iov_base) + take;
        v.iov_len -= take;
        left -= take;
        if (v.iov_len == 0) ++first;
      }
    }
    write_blocked_ = false;
    return kj::READY_NOW;
  }

  UniqueFd socket_;  // closed by the destructor, after observer_ is gone
  const int fd_;     // socket_.get()
  kj::Own<kj::UnixEventPort::FdObserver> observer_;
  bool write_blocked_ = false;
  // Resolves once reading met the end of stream or an error.
  kj::ForkedPromise<void> read_end_;
  kj::Own<kj::PromiseFulfiller<void>> read_end_fulfiller_;
};

absl::StatusOr<std::unique_ptr<DrivenChannel>> DrivenChannel::Open(
    UniqueFd socket, std::string peer_name) {
  ASSIGN_OR_RETURN(UniqueFd pending, MakeEventFd("capnp transport"));
  ASSIGN_OR_RETURN(UniqueFd kick, MakeEventFd("capnp transport"));
  std::unique_ptr<DrivenChannel> channel(new DrivenChannel(
      std::move(peer_name), std::move(pending), std::move(kick)));
  absl::Status status;
  {
    absl::MutexLock lock(&channel->mu_);
    status =
        CatchKj(absl::StrCat("opening the channel to the ",
                             channel->peer_name_),
                [&channel, &socket]()
                    ABSL_NO_THREAD_SAFETY_ANALYSIS { channel->Init(&socket); });
  }
  if (!status.ok()) return status;  // `socket` closes if Init() left it
  DrivenChannel* raw = channel.get();
  channel->thread_ = std::thread([raw] { raw->RunLoopThread(); });
  {
    absl::MutexLock lock(&channel->mu_);
    channel->mu_.Await(absl::Condition(&channel->loop_thread_started_));
  }
  return channel;
}

DrivenChannel::DrivenChannel(std::string peer_name, UniqueFd pending_fd,
                             UniqueFd kick_fd)
    : peer_name_(std::move(peer_name)),
      pending_fd_(std::move(pending_fd)),
      kick_fd_(std::move(kick_fd)) {}

void DrivenChannel::Init(UniqueFd* socket) {
  const int socket_fd = socket->get();
  port_ = std::make_unique<kj::UnixEventPort>();
  loop_ = std::make_unique<kj::EventLoop>(*port_);
  kj::WaitScope wait_scope(*loop_);
  const int flags = fcntl(socket_fd, F_GETFL);
  KJ_SYSCALL(fcntl(socket_fd, F_SETFL, flags | O_NONBLOCK));
  stream_ = kj::heap<FdStream>(*port_, std::move(*socket));
  socket_fd_ = socket_fd;
  conn_ = std::make_unique<FrameConnection>(
      *stream_, socket_fd, capnp::rpc::twoparty::Side::CLIENT, this,
      peer_name_, [this](absl::Status s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        Fail(std::move(s));
      });
  wait_scope.poll();
}

DrivenChannel::~DrivenChannel() noexcept {
  if (thread_.joinable()) {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    SignalEventFd(kick_fd_.get());
    thread_.join();
  }
  absl::MutexLock lock(&mu_);
  if (loop_ != nullptr) {
    // Members that need the event loop go first, with the loop current.
    (void)CatchKj("closing the channel",
                  [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
                    kj::WaitScope wait_scope(*loop_);
                    waiter_ = nullptr;
                    conn_.reset();
                    stream_ = nullptr;
                  });
    (void)CatchKj("closing the channel", [this] {
      loop_.reset();
      port_.reset();
    });
  }
}

template <typename Body>
void DrivenChannel::Drive(absl::string_view context, Body&& body) {
  absl::Status status =
      CatchKj(context, [this, &body]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        kj::WaitScope wait_scope(*loop_);
        body(wait_scope);
        wait_scope.poll();
      });
  if (!status.ok()) Fail(std::move(status));
}

short DrivenChannel::LoopThreadEvents() const {
  if (!status_.ok()) return 0;  // a failed socket stays readable
  short events = 0;
  if (!user_polling_) events |= POLLIN;
  if (stream_->write_blocked()) events |= POLLOUT;
  return events;
}

void DrivenChannel::AfterTurn(bool handed_out) {
  const bool waiting = !ready_.empty() || !status_.ok();
  if (waiting && !pending_signaled_ && !handed_out) {
    SignalEventFd(pending_fd_.get());
    pending_signaled_ = true;
  } else if (!waiting && pending_signaled_) {
    DrainEventFd(pending_fd_.get());
    pending_signaled_ = false;
  }
  if ((LoopThreadEvents() & ~loop_thread_events_) != 0) {
    SignalEventFd(kick_fd_.get());
  }
}

// Sleeps until the socket has something for it (nothing while a user polls
// with `stay`, output space while a write waits) or it is kicked, then turns
// the loop. Its wake-ups cost the worker's round trip nothing: a caller that
// waits for a result reads it itself.
void DrivenChannel::RunLoopThread() {
  short events;
  {
    absl::MutexLock lock(&mu_);
    events = loop_thread_events_ = LoopThreadEvents();
    loop_thread_started_ = true;
  }
  for (;;) {
    struct pollfd fds[2] = {{kick_fd_.get(), POLLIN, 0},
                            {socket_fd_, events, 0}};
    if (poll(fds, events != 0 ? 2 : 1, -1) < 0 && errno != EINTR) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    if ((fds[0].revents & POLLIN) != 0) DrainEventFd(kick_fd_.get());
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    if ((fds[1].revents & LoopThreadEvents()) != 0 ||
        (fds[1].revents & (POLLHUP | POLLERR)) != 0) {
      Drive("the connection to the worker",
            [](kj::WaitScope&) {});
      AfterTurn(/*handed_out=*/false);
    }
    events = loop_thread_events_ = LoopThreadEvents();
  }
}

absl::Status DrivenChannel::Send(std::string frame) {
  absl::string_view whole = frame;
  return SendParts({whole}, nullptr);
}

absl::Status DrivenChannel::SendParts(std::vector<absl::string_view> parts,
                                      std::shared_ptr<const void> owner) {
  (void)owner;  // PushFrame copies the bytes into its messages
  absl::MutexLock lock(&mu_);
  if (!status_.ok()) return status_;
  Drive("sending to the worker",
        [this, &parts](kj::WaitScope&) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          conn_->tasks().add(
              kj::joinPromises(PushFrame(conn_->peer(), parts)));
        });
  AfterTurn(/*handed_out=*/false);
  return absl::OkStatus();
}

absl::Status DrivenChannel::Pump(std::vector<std::string>* frames) {
  return Poll(frames, /*stay=*/false);
}

absl::Status DrivenChannel::Poll(std::vector<std::string>* frames,
                                 bool stay) {
  absl::MutexLock lock(&mu_);
  user_polling_ = stay;
  Drive("receiving from the worker", [](kj::WaitScope&) {});
  for (std::string& frame : ready_) frames->push_back(std::move(frame));
  ready_.clear();
  AfterTurn(/*handed_out=*/true);
  return status_;
}

uint32_t DrivenChannel::PollEvents() const { return EPOLLIN; }

absl::Status DrivenChannel::SendBlocking(absl::string_view frame) {
  absl::MutexLock lock(&mu_);
  if (!status_.ok()) return status_;
  Drive("sending to the worker",
        [this, frame](kj::WaitScope& wait_scope)
            ABSL_NO_THREAD_SAFETY_ANALYSIS {
              kj::joinPromises(PushFrame(conn_->peer(), frame))
                  .wait(wait_scope);
            });
  AfterTurn(/*handed_out=*/false);
  return status_;
}

absl::StatusOr<std::string> DrivenChannel::ReceiveBlocking() {
  absl::MutexLock lock(&mu_);
  for (;;) {
    if (!ready_.empty()) {
      std::string frame = std::move(ready_.front());
      ready_.pop_front();
      AfterTurn(/*handed_out=*/ready_.empty());
      return frame;
    }
    if (!status_.ok()) return status_;
    Drive("waiting for the worker",
          [this](kj::WaitScope& wait_scope) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            auto paf = kj::newPromiseAndFulfiller<void>();
            waiter_ = kj::mv(paf.fulfiller);
            paf.promise.wait(wait_scope);
          });
  }
}

void DrivenChannel::Wake() {
  if (waiter_.get() != nullptr) {
    waiter_->fulfill();
    waiter_ = nullptr;
  }
}

void DrivenChannel::Fail(absl::Status status) {
  if (status_.ok()) status_ = std::move(status);
  Wake();
}

void DrivenChannel::OnFrame(std::string frame) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  ready_.push_back(std::move(frame));
  Wake();
}

}  // namespace capnp_internal
}  // namespace procpool
