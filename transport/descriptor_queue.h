// DescriptorQueue: the receiving side's bookkeeping of a channel that
// carries descriptors with its frames (unix: stream_channel.cc; shm:
// shm/shm_channel.cc): the descriptors received and not taken yet, in order;
// how many the frames completed and the frames handed out brought; how many
// were taken; and whether they were lost (what came no longer matched the
// frames, so that which frame owns which is unknown). Take() is
// Channel::TakeDescriptors(): it hands out only what the frames handed out
// so far brought.
//
// Example (a channel's reading path):
//   DescriptorQueue queue("unix transport", "worker");
//   queue.Add(&came);           // descriptors a read brought
//   queue.Completed(n);         // a frame that announced n is complete
//   queue.HandedOut(n);         // ... and the caller has it
//   ASSIGN_OR_RETURN(std::vector<UniqueFd> fds, queue.Take(n));
//   ...
//   queue.Lose();               // what came did not match the headers
//
// Internal to the transport implementations. Thread safety: none; used by
// the one thread that uses its channel.
#ifndef PROCPOOL_TRANSPORT_DESCRIPTOR_QUEUE_H_
#define PROCPOOL_TRANSPORT_DESCRIPTOR_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"

namespace procpool {

class DescriptorQueue {
 public:
  // `name` starts every error ("shm transport"); `peer` names the other end
  // in them ("worker", "parent").
  DescriptorQueue(absl::string_view name, absl::string_view peer);

  DescriptorQueue(const DescriptorQueue&) = delete;
  DescriptorQueue& operator=(const DescriptorQueue&) = delete;

  // Appends the descriptors in `*fds` (which is left empty), in order, and
  // counts them as received. Once lost(), they are closed instead.
  void Add(std::vector<UniqueFd>* fds);

  // A frame that brought `n` descriptors is complete (in the channel's own
  // hands or the caller's); then handed out to the caller.
  void Completed(uint64_t n) { completed_ += n; }
  void HandedOut(uint64_t n) { handed_out_ += n; }

  // The next `n` descriptors of the frames handed out so far, in order.
  // Take(0) is an empty vector. kDataLoss ("<name>: <n> descriptors asked
  // for, but the frames handed out so far brought only <k> more from the
  // <peer>") if those frames did not bring n more not taken yet, or if
  // lost(); nothing is taken then.
  absl::StatusOr<std::vector<UniqueFd>> Take(size_t n);

  // What came no longer matches the frames: closes every descriptor held;
  // from now on Take() fails and Add() closes what it is given.
  void Lose();
  bool lost() const { return lost_; }

  // Closes the descriptors that came ahead of the frames completed (those of
  // a frame cut short), keeping the ones completed frames still owe.
  void DropIncomplete();

  // Descriptors received since construction (all Add()s); held now.
  uint64_t received() const { return received_; }
  size_t size() const { return fds_.size(); }

 private:
  // Constant after construction.
  const std::string name_;
  const std::string peer_;

  // Received, not taken yet, in order.
  std::deque<UniqueFd> fds_;
  // Totals since construction: received, of frames completed, of frames
  // handed out, taken.
  uint64_t received_ = 0;
  uint64_t completed_ = 0;
  uint64_t handed_out_ = 0;
  uint64_t taken_ = 0;
  bool lost_ = false;
};

}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_DESCRIPTOR_QUEUE_H_
