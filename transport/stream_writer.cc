// StreamWriter (see stream_writer.h).
#include "transport/stream_writer.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/big_buffers.h"
#include "common/posix_error.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "transport/frame_header.h"
#include "transport/scm_rights.h"

namespace procpool {
namespace {

// iovecs per sendmsg(): two per queued frame.
constexpr int kMaxIov = 128;

}  // namespace

StreamWriter::StreamWriter(int fd, const FrameFormat& format,
                           absl::string_view peer)
    : fd_(fd), format_(format), peer_(peer) {}

void StreamWriter::Push(uint64_t size, std::vector<absl::string_view> parts,
                        std::string payload,
                        std::shared_ptr<const void> owner,
                        std::vector<UniqueFd> fds) {
  out_.emplace_back().Fill(format_, size, std::move(parts), std::move(payload),
                          std::move(owner), std::move(fds));
}

void StreamWriter::Clear() {
  out_.clear();
  out_offset_ = 0;
}

absl::Status StreamWriter::Flush() {
  while (!out_.empty()) {
    struct iovec iov[kMaxIov];
    int n = 0;
    size_t want = 0;
    size_t offset = out_offset_;  // applies to the front frame only
    for (auto it = out_.begin(); it != out_.end() && n < kMaxIov; ++it) {
      // A frame with descriptors starts a sendmsg() of its own.
      if (it != out_.begin() && !it->fds.empty()) break;
      if (offset < kFrameHeaderSize) {
        iov[n++] = {it->header + offset, kFrameHeaderSize - offset};
        want += kFrameHeaderSize - offset;
      }
      // Bytes of the parts to skip (the front frame's, already written).
      size_t skip = offset > kFrameHeaderSize ? offset - kFrameHeaderSize : 0;
      for (absl::string_view part : it->Bytes()) {
        if (n == kMaxIov) break;
        if (skip >= part.size()) {
          skip -= part.size();
          continue;
        }
        iov[n++] = {const_cast<char*>(part.data()) + skip, part.size() - skip};
        want += part.size() - skip;
        skip = 0;
      }
      offset = 0;
    }
    struct msghdr msg = {};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    ScmSendControl control;
    std::vector<int> fds;
    if (!out_.front().fds.empty()) {
      // Not a byte of this frame is written yet (its descriptors go with
      // the first).
      for (const UniqueFd& fd : out_.front().fds) fds.push_back(fd.get());
      AttachScmRights(fds, &control, &msg);
    }
    ssize_t w = sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return absl::OkStatus();
      return WriteError(errno);
    }
    out_.front().fds.clear();  // sent: the peer has its own now
    ConsumeOutput(static_cast<size_t>(w));
    if (static_cast<size_t>(w) < want) return absl::OkStatus();  // full
  }
  return absl::OkStatus();
}

absl::Status StreamWriter::WriteBlocking(
    absl::Span<const absl::string_view> parts, uint64_t size,
    absl::Span<const int> fds) {
  // Output queued by Push() goes first, to keep frames in order.
  while (!out_.empty()) {
    RETURN_IF_ERROR(Flush());
    if (!out_.empty()) RETURN_IF_ERROR(WaitWritable());
  }
  char header[kFrameHeaderSize];
  EncodeFrameHeader(format_, size, header, static_cast<uint32_t>(fds.size()));
  std::vector<absl::string_view> pieces;
  pieces.reserve(parts.size() + 1);
  pieces.emplace_back(header, kFrameHeaderSize);
  for (absl::string_view part : parts) {
    if (!part.empty()) pieces.push_back(part);
  }
  size_t piece = 0;   // the first piece not wholly sent
  size_t offset = 0;  // bytes of it sent
  while (piece < pieces.size()) {
    struct iovec iov[kMaxIov];
    int n = 0;
    for (size_t i = piece; i < pieces.size() && n < kMaxIov; ++i) {
      const size_t skip = i == piece ? offset : 0;
      iov[n++] = {const_cast<char*>(pieces[i].data()) + skip,
                  pieces[i].size() - skip};
    }
    struct msghdr msg = {};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    ScmSendControl control;
    if (!fds.empty()) AttachScmRights(fds, &control, &msg);
    ssize_t w = sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        RETURN_IF_ERROR(WaitWritable());
        continue;
      }
      return WriteError(errno);
    }
    fds = {};  // they went with the first byte
    for (size_t sent = static_cast<size_t>(w); sent > 0;) {
      const size_t k = std::min(sent, pieces[piece].size() - offset);
      sent -= k;
      offset += k;
      if (offset == pieces[piece].size()) {
        ++piece;
        offset = 0;
      }
    }
  }
  return absl::OkStatus();
}

void StreamWriter::ConsumeOutput(size_t written) {
  while (written > 0) {
    const size_t left = kFrameHeaderSize + out_.front().size - out_offset_;
    if (written < left) {
      out_offset_ += written;
      return;
    }
    written -= left;
    RecycleBigBuffer(std::move(out_.front().payload));
    out_.pop_front();
    out_offset_ = 0;
  }
}

absl::Status StreamWriter::WaitWritable() const {
  struct pollfd p = {fd_, POLLOUT, 0};
  while (poll(&p, 1, -1) < 0) {
    if (errno != EINTR) return PosixError("poll", errno);
  }
  return absl::OkStatus();
}

absl::Status StreamWriter::WriteError(int error_number) const {
  const absl::Status s = PosixError("send", error_number);
  const std::string context =
      error_number == EPIPE || error_number == ECONNRESET
          ? absl::StrCat(format_.name, ": the ", peer_, " closed the channel")
          : absl::StrCat(format_.name, ": writing to the ", peer_);
  return absl::Status(s.code(), absl::StrCat(context, ": ", s.message()));
}

}  // namespace procpool
