#include "shared_array/peer_arrays.h"

#include <utility>

namespace procpool {

void PeerArrays::PlanFrame(absl::Span<const SharedBuffer> arrays,
                           Plan* plan) {
  plan->held.clear();
  plan->fds.clear();
  plan->forget.clear();
  if (held_.empty()) {
    // Nothing to forget: skip what was released meanwhile.
    SharedBuffer::ReleasedSince(&release_cursor_, nullptr);
    if (arrays.empty()) return;
  } else {
    ForgetReleased(plan);
  }
  const uint64_t frame_start = clock_ + 1;
  for (size_t i = 0; i < arrays.size(); ++i) {
    const SharedBuffer& b = arrays[i];
    auto [it, inserted] = held_.try_emplace(b.id());
    it->second.last_sent = ++clock_;
    if (inserted) {
      it->second.bytes = b.byte_size();
      bytes_ += b.byte_size();
      plan->fds.push_back(b.fd());
    } else {
      plan->held.push_back(static_cast<uint32_t>(i));
    }
  }
  EvictOverBounds(frame_start, plan);
}

void PeerArrays::Drop(const BufferId& id, Plan* plan) {
  auto it = held_.find(id);
  if (it == held_.end()) return;
  bytes_ -= it->second.bytes;
  held_.erase(it);
  plan->forget.push_back(id);
}

void PeerArrays::ForgetReleased(Plan* plan) {
  std::vector<BufferId> released;
  if (SharedBuffer::ReleasedSince(&release_cursor_, &released)) {
    for (const BufferId& id : released) Drop(id, plan);
    return;
  }
  // More went than the log keeps: ask about each held array.
  std::vector<BufferId> gone;
  for (const auto& [id, entry] : held_) {
    if (!SharedBuffer::IsLive(id)) gone.push_back(id);
  }
  for (const BufferId& id : gone) Drop(id, plan);
}

void PeerArrays::EvictOverBounds(uint64_t keep_from, Plan* plan) {
  while (held_.size() > limits_.max_entries || bytes_ > limits_.max_bytes) {
    auto victim = held_.end();
    for (auto it = held_.begin(); it != held_.end(); ++it) {
      if (it->second.last_sent >= keep_from) continue;  // this frame's
      if (victim == held_.end() ||
          it->second.last_sent < victim->second.last_sent) {
        victim = it;
      }
    }
    if (victim == held_.end()) return;  // all in this frame
    const BufferId id = victim->first;
    Drop(id, plan);
  }
}

}  // namespace procpool
