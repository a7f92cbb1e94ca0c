// DescriptorQueue (see descriptor_queue.h).
#include "transport/descriptor_queue.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"

namespace procpool {

DescriptorQueue::DescriptorQueue(absl::string_view name,
                                 absl::string_view peer)
    : name_(name), peer_(peer) {}

void DescriptorQueue::Add(std::vector<UniqueFd>* fds) {
  received_ += fds->size();
  if (!lost_) {
    for (UniqueFd& fd : *fds) fds_.push_back(std::move(fd));
  }
  fds->clear();
}

absl::StatusOr<std::vector<UniqueFd>> DescriptorQueue::Take(size_t n) {
  if (n == 0) return std::vector<UniqueFd>();
  const uint64_t owed = handed_out_ - taken_;
  if (lost_ || n > owed || n > fds_.size()) {
    return absl::DataLossError(absl::StrCat(
        name_, ": ", n, " descriptors asked for, but the frames "
        "handed out so far brought only ",
        lost_ ? 0 : std::min<uint64_t>(owed, fds_.size()), " more from the ",
        peer_,
        lost_ ? " (its descriptors were inconsistent: all dropped)" : ""));
  }
  std::vector<UniqueFd> taken;
  taken.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    taken.push_back(std::move(fds_.front()));
    fds_.pop_front();
  }
  taken_ += n;
  return taken;
}

void DescriptorQueue::Lose() {
  lost_ = true;
  fds_.clear();
}

void DescriptorQueue::DropIncomplete() {
  const uint64_t owed = completed_ - taken_;
  while (fds_.size() > owed) fds_.pop_back();
}

}  // namespace procpool
