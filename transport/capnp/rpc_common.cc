// Shared pieces of the "capnp" transport; see rpc_common.h.
#include "transport/capnp/rpc_common.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <capnp/any.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/big_buffers.h"
#include "common/posix_error.h"
#include "common/spin.h"
#include "transport/capnp/chunk_size.h"

namespace procpool {
namespace capnp_internal {

absl::Status StatusFromKj(const kj::Exception& e, absl::string_view context,
                          bool peer_open) {
  const std::string message = absl::StrCat("capnp transport: ", context, ": ",
                                           e.getDescription().cStr());
  // KJ tells a failed system call only as text ("epoll_create1(...): Too
  // many open files"): a resource that ran out keeps its code and advice.
  for (int error : {EMFILE, ENFILE, ENOMEM, ENOSPC}) {
    if (absl::StrContains(e.getDescription().cStr(), strerror(error))) {
      return absl::ResourceExhaustedError(
          absl::StrCat(message, " (", ExhaustionAdvice(error), ")"));
    }
  }
  switch (e.getType()) {
    case kj::Exception::Type::DISCONNECTED:
      if (peer_open) {
        return absl::DataLossError(absl::StrCat(
            message, " (the peer is still connected: its bytes are not a "
                     "valid Cap'n Proto RPC stream)"));
      }
      return absl::UnavailableError(message);
    case kj::Exception::Type::OVERLOADED:
      return absl::ResourceExhaustedError(message);
    case kj::Exception::Type::UNIMPLEMENTED:
      return absl::UnimplementedError(message);
    case kj::Exception::Type::FAILED:
    default:
      return absl::DataLossError(message);
  }
}

kj::Promise<void> FrameSinkImpl::push(PushContext context) {
  FrameSink::PushParams::Reader params = context.getParams();
  const capnp::Data::Reader chunk = params.getChunk();
  // The first of several chunks: the whole frame's buffer at once (a
  // recycled one if common/big_buffers.h has it), not grown by doubling; up
  // to 1 GiB, so that a bad size costs no more than that much address space.
  constexpr uint64_t kMaxReserve = uint64_t{1} << 30;
  const uint64_t frame_size = params.getFrameSize();
  if (partial_.empty() && frame_size > chunk.size() &&
      frame_size <= kMaxReserve) {
    partial_ = TakeBigBuffer(frame_size);
  }
  partial_.append(reinterpret_cast<const char*>(chunk.begin()), chunk.size());
  if (params.getLast()) {
    receiver_->OnFrame(std::move(partial_));
    partial_ = std::string();
  }
  return kj::READY_NOW;
}

kj::Promise<void> FrameSinkImpl::ping(PingContext context) {
  return kj::READY_NOW;
}

kj::Array<kj::Promise<void>> PushFrame(FrameSink::Client& peer,
                                       absl::Span<const absl::string_view> parts,
                                       const void** last_message) {
  size_t total = 0;
  for (absl::string_view part : parts) total += part.size();
  kj::Vector<kj::Promise<void>> answers;
  size_t offset = 0;  // into the frame
  size_t part = 0;    // the part holding byte `offset`
  size_t in_part = 0;
  do {
    const size_t n = std::min(kCapnpChunkSize, total - offset);
    auto request = peer.pushRequest(capnp::MessageSize{n / 8 + 16, 0});
    capnp::Data::Builder chunk = request.initChunk(n);
    for (size_t copied = 0; copied < n;) {
      const absl::string_view from = parts[part];
      const size_t take = std::min(n - copied, from.size() - in_part);
      std::memcpy(chunk.begin() + copied, from.data() + in_part, take);
      copied += take;
      in_part += take;
      if (in_part == from.size()) {
        ++part;
        in_part = 0;
      }
    }
    if (offset == 0) request.setFrameSize(total);
    request.setLast(offset + n == total);
    if (last_message != nullptr) {
      FrameSink::PushParams::Builder params = request;
      *last_message =
          capnp::AnyStruct::Builder(kj::mv(params)).getDataSection().begin();
    }
    answers.add(request.send().ignoreResult());
    offset += n;
  } while (offset < total);
  return answers.releaseAsArray();
}

FrameSink::Client Bootstrap(capnp::RpcSystem<capnp::rpc::twoparty::VatId>& rpc,
                            capnp::rpc::twoparty::Side peer_side) {
  capnp::MallocMessageBuilder message(16);
  auto vat_id = message.initRoot<capnp::rpc::twoparty::VatId>();
  vat_id.setSide(peer_side);
  return rpc.bootstrap(vat_id).castAs<FrameSink>();
}

kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>>
ObservedMessageStream::tryReadMessage(kj::ArrayPtr<kj::AutoCloseFd> fd_space,
                                      capnp::ReaderOptions options,
                                      kj::ArrayPtr<capnp::word> scratch) {
  kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> read =
      inner_.tryReadMessage(fd_space, options, scratch);
  if (on_read_ == nullptr) return read;
  return read.then([this](kj::Maybe<capnp::MessageReaderAndFds>&& message) {
    if (message != nullptr) on_read_();
    return kj::mv(message);
  });
}

kj::Promise<void> ObservedMessageStream::writeMessage(
    kj::ArrayPtr<const int> fds,
    kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) {
  return WatchMarker(inner_.writeMessage(fds, segments),
                     HoldsMarker(segments));
}

kj::Promise<void> ObservedMessageStream::writeMessages(
    kj::ArrayPtr<kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>>
        messages) {
  bool marked = false;
  for (auto& segments : messages) marked = marked || HoldsMarker(segments);
  return WatchMarker(inner_.writeMessages(messages), marked);
}

kj::Promise<void> ObservedMessageStream::WatchMarker(kj::Promise<void> written,
                                                     bool marked) {
  if (!marked) return written;
  return written.then([this] {
    marker_written_ = true;
    if (marker_fulfiller_.get() != nullptr) {
      marker_fulfiller_->fulfill();
      marker_fulfiller_ = nullptr;
    }
  });
}

bool ObservedMessageStream::HoldsMarker(
    kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) const {
  if (marker_ == nullptr) return false;
  for (const auto& segment : segments) {
    if (marker_ >= segment.begin() && marker_ < segment.end()) return true;
  }
  return false;
}

// onDisconnect() itself only resolves, so this then probes `peer` with an
// empty, not-last chunk (a no-op if it were ever delivered): a call on a
// broken connection fails with the exception that broke it (DISCONNECTED for
// an end of stream, FAILED for bytes that are not Cap'n Proto RPC).
kj::Promise<void> WhenDisconnected(
    capnp::TwoPartyVatNetwork& network, FrameSink::Client& peer, int socket_fd,
    std::string peer_name, std::function<void(absl::Status)> on_disconnect) {
  return network.onDisconnect()
      .then([&peer] {
        auto probe = peer.pushRequest(capnp::MessageSize{8, 0});
        probe.setLast(false);
        return probe.send().ignoreResult();
      })
      .then(
          [peer_name, on_disconnect] {
            on_disconnect(absl::UnavailableError(absl::StrCat(
                "capnp transport: the ", peer_name, " closed the channel")));
          },
          [socket_fd, peer_name, on_disconnect](kj::Exception&& e) {
            bool peer_open = false;
            if (socket_fd >= 0) {
              struct pollfd p = {socket_fd, POLLRDHUP, 0};
              peer_open = poll(&p, 1, 0) == 0 ||
                          (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) == 0;
            }
            on_disconnect(StatusFromKj(
                e, absl::StrCat("the connection to the ", peer_name),
                peer_open));
          });
}

namespace {

capnp::rpc::twoparty::Side OtherSide(capnp::rpc::twoparty::Side side) {
  return side == capnp::rpc::twoparty::Side::CLIENT
             ? capnp::rpc::twoparty::Side::SERVER
             : capnp::rpc::twoparty::Side::CLIENT;
}

}  // namespace

FrameConnection::FrameConnection(kj::AsyncIoStream& stream, int socket_fd,
                                 capnp::rpc::twoparty::Side side,
                                 FrameReceiver* receiver,
                                 const std::string& peer_name,
                                 std::function<void(absl::Status)> on_error,
                                 std::function<void()> on_read)
    : messages_(stream, std::move(on_read)),
      network_(messages_, side),
      rpc_(capnp::makeRpcServer(network_, kj::heap<FrameSinkImpl>(receiver))),
      peer_(Bootstrap(rpc_, OtherSide(side))),
      handler_(absl::StrCat("the connection to the ", peer_name), on_error),
      tasks_(handler_) {
  tasks_.add(WhenDisconnected(network_, peer_, socket_fd, peer_name,
                              std::move(on_error)));
}

bool SpinUntilReady(kj::Promise<void>& promise, kj::WaitScope& wait_scope,
                    absl::Duration budget) {
  // A gap this long between two polls means the thread lost its CPU.
  constexpr int64_t kPreemptedNs = 50'000;
  const int64_t budget_ns = absl::ToInt64Nanoseconds(budget);
  int64_t now = MonotonicNanos();
  const int64_t deadline = now + budget_ns;
  for (;;) {
    if (promise.poll(wait_scope)) return true;
    if (budget_ns <= 0) return false;
    const int64_t before = now;
    now = MonotonicNanos();
    if (now >= deadline || now - before > kPreemptedNs) return false;
    sched_yield();
  }
}

kj::Duration ToKj(absl::Duration d) {
  return absl::ToInt64Nanoseconds(d) * kj::NANOSECONDS;
}

}  // namespace capnp_internal
}  // namespace procpool
