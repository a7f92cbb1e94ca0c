// StreamWriter: the sending half of a StreamChannel (stream_channel.h): the
// frames queued for a connected stream socket and the sendmsg() calls that
// write them, header and bytes gathered (up to 128 pieces per call), with
// MSG_NOSIGNAL. A frame that carries descriptors (formats with
// `descriptors`) has them go as SCM_RIGHTS (scm_rights.h) on the sendmsg()
// that writes its first byte, and always starts a sendmsg() of its own (a
// frame without descriptors is gathered with the ones before it). The
// kernel attaches them to the first skb of that sendmsg(), so they go
// exactly once, with byte 0 of the frame, however the write is cut short.
//
// Two ways to write, as a Channel's two sides:
//   * queued (the parent): Push() a frame, Flush() what the socket takes
//     now (never blocks); the rest stays queued for a later Flush();
//   * blocking (a worker): WriteBlocking() writes what is queued, then one
//     frame straight from the caller's bytes, waiting for room with poll().
// Errors: a dead peer is kUnavailable ("<format.name>: the <peer> closed the
// channel: send: ..."), other write errors name the peer too. The writer
// keeps no error state: its owner decides that an error ends the channel.
//
// Example (a channel's Send):
//   StreamWriter out(fd, kUnixFrameFormat, "worker");
//   out.Push(size, {}, std::move(frame), nullptr, {});
//   absl::Status s = out.Flush();  // OK: written, or queued until EPOLLOUT
//
// Internal to the transport implementations. Thread safety: none; used by
// one thread at a time (as its Channel).
#ifndef PROCPOOL_TRANSPORT_STREAM_WRITER_H_
#define PROCPOOL_TRANSPORT_STREAM_WRITER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/unique_fd.h"
#include "transport/frame_header.h"
#include "transport/out_frame.h"

namespace procpool {

class StreamWriter {
 public:
  // Writes to `fd` (not owned; must outlive the writer). `format` (static
  // storage) gives the magic and the words of errors; `peer` names the
  // other end in them.
  StreamWriter(int fd, const FrameFormat& format, absl::string_view peer);

  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;

  // Nothing is queued.
  bool empty() const { return out_.empty(); }

  // Queues the `size`-byte frame made of `parts` kept alive by `owner` (no
  // payload) or of `payload` (no parts), with `fds` (duplicates that the
  // writer closes once they are sent; empty unless format.descriptors). The
  // caller checked `size` and the number of `fds`. Writes nothing.
  void Push(uint64_t size, std::vector<absl::string_view> parts,
            std::string payload, std::shared_ptr<const void> owner,
            std::vector<UniqueFd> fds);

  // Writes queued output until it is all written, the socket is full
  // (EAGAIN or a short write) or an error, which is returned.
  absl::Status Flush();

  // Writes all queued output, then the `size`-byte frame made of `parts`
  // with `fds` (the caller's own, checked), blocking until it is all written.
  absl::Status WriteBlocking(absl::Span<const absl::string_view> parts,
                             uint64_t size, absl::Span<const int> fds);

  // Drops the queued output (closing its descriptors).
  void Clear();

 private:
  using OutFrame = procpool::OutFrame<kFrameHeaderSize>;

  // Drops `written` bytes from the front of out_.
  void ConsumeOutput(size_t written);
  // Waits until the socket has room.
  absl::Status WaitWritable() const;
  absl::Status WriteError(int error_number) const;

  // Constant after construction.
  const int fd_;
  const FrameFormat& format_;
  const std::string peer_;

  // Output not yet written; out_offset_ bytes of the front frame are written.
  std::deque<OutFrame> out_;
  size_t out_offset_ = 0;
};

}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_STREAM_WRITER_H_
