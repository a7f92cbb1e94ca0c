#include "shared_array/transfer.h"

#include <unistd.h>

#include <algorithm>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "shared_array/mapping_cache.h"
#include "shared_array/output_writes.h"

namespace procpool {
namespace {

thread_local ArrayTransfer* current_transfer = nullptr;

}  // namespace

size_t ArrayTransfer::Add(const SharedBuffer& buffer) {
  for (size_t i = 0; i < outgoing_.size(); ++i) {
    if (outgoing_[i].id() == buffer.id()) return i;
  }
  for (const BufferId& id : came_) {
    if (id == buffer.id()) {
      held_outgoing_.push_back(static_cast<uint32_t>(outgoing_.size()));
      break;
    }
  }
  outgoing_.push_back(buffer);
  return outgoing_.size() - 1;
}

std::vector<int> ArrayTransfer::OutgoingFds() const {
  std::vector<int> fds;
  fds.reserve(outgoing_.size() - held_outgoing_.size());
  size_t next_held = 0;
  for (size_t i = 0; i < outgoing_.size(); ++i) {
    if (next_held < held_outgoing_.size() && held_outgoing_[next_held] == i) {
      ++next_held;
      continue;
    }
    fds.push_back(outgoing_[i].fd());
  }
  return fds;
}

void ArrayTransfer::SetIncoming(std::vector<UniqueFd> fds,
                                std::vector<uint32_t> held,
                                MappingCache* cache) {
  incoming_ = std::move(fds);
  resolved_.assign(incoming_.size(), std::nullopt);
  held_incoming_ = std::move(held);
  cache_ = cache;
}

absl::StatusOr<SharedBuffer> ArrayTransfer::Resolve(
    const SharedArrayHandle& handle, size_t index) {
  // Arrays before `index` that came without a descriptor.
  const auto held_before = std::lower_bound(
      held_incoming_.begin(), held_incoming_.end(), index);
  if (held_before != held_incoming_.end() && *held_before == index) {
    absl::StatusOr<SharedBuffer> held = cache_ != nullptr
                                            ? cache_->Lookup(handle)
                                            : SharedBuffer::FindLive(handle);
    if (absl::IsNotFound(held.status())) {
      return absl::DataLossError(absl::StrCat(
          "shared array ", handle.id.ToString(),
          " came without its descriptor, as one this process holds, but it "
          "holds no such array (a stale or forged frame)"));
    }
    if (held.ok()) came_.push_back(handle.id);
    return held;
  }
  const size_t slot = index - (held_before - held_incoming_.begin());
  if (slot >= incoming_.size()) {
    return absl::DataLossError(absl::StrCat(
        "shared array ", index, " of its frame needs descriptor ", slot,
        ", but ", incoming_.size(), " came with it"));
  }
  if (resolved_[slot].has_value()) {
    if (!(resolved_[slot]->id() == handle.id)) {
      return absl::DataLossError(absl::StrCat(
          "descriptor ", slot, " of the frame is shared array ",
          resolved_[slot]->id().ToString(), ", not ", handle.id.ToString()));
    }
    return *resolved_[slot];
  }
  absl::StatusOr<SharedBuffer> buffer;
  if (cache_ != nullptr) {
    buffer = cache_->Lookup(handle);
    if (absl::IsNotFound(buffer.status())) {
      buffer = cache_->Insert(handle, std::move(incoming_[slot]));
    }
  } else {
    // The parent: an array it holds comes back as that array (the
    // descriptor that came is closed with the transfer).
    buffer = SharedBuffer::FindLive(handle);
    if (absl::IsNotFound(buffer.status())) {
      buffer = SharedBuffer::Attach(handle, std::move(incoming_[slot]));
    }
  }
  if (buffer.ok()) {
    resolved_[slot] = *buffer;
    came_.push_back(handle.id);
  }
  return buffer;
}

size_t ArrayTransfer::AddOutputCopy(const SharedBuffer& buffer, bool* first) {
  for (size_t i = 0; i < output_copies_.size(); ++i) {
    if (output_copies_[i].id() == buffer.id()) {
      *first = false;
      return i;
    }
  }
  *first = true;
  output_copies_.push_back(buffer);
  return output_copies_.size() - 1;
}

void ArrayTransfer::KeepOutputCopy(size_t index, SharedBuffer copy) {
  std::string original;
  if (copy.byte_size() > 0) {
    original.assign(static_cast<const char*>(copy.address()),
                    copy.byte_size());
  }
  kept_copies_.push_back({index, std::move(copy), std::move(original)});
}

absl::StatusOr<SharedBuffer> ArrayTransfer::OutputCopy(size_t index) const {
  for (const KeptCopy& k : kept_copies_) {
    if (k.index == index) return k.copy;
  }
  return absl::DataLossError(absl::StrCat(
      "output array ", index,
      " of the frame is named before its bytes came (a forged frame)"));
}

std::string ArrayTransfer::TakeOutputWrites() {
  // The worker asks after every call; most carry no output array.
  if (kept_copies_.empty()) return std::string();
  OutputWrites writes;
  for (const KeptCopy& k : kept_copies_) {
    writes.AddChanges(static_cast<uint32_t>(k.index), k.original,
                      k.copy.address());
  }
  kept_copies_.clear();
  return writes.Release();
}

absl::Status ArrayTransfer::ApplyOutputWrites() {
  const std::string writes = std::move(output_writes_);
  output_writes_.clear();
  if (writes.empty()) return absl::OkStatus();
  return OutputWrites::Apply(writes, output_copies_);
}

ArrayTransfer* CurrentArrayTransfer() { return current_transfer; }

ArrayTransferScope::ArrayTransferScope(ArrayTransfer* transfer)
    : previous_(current_transfer) {
  current_transfer = transfer;
}

ArrayTransferScope::~ArrayTransferScope() { current_transfer = previous_; }

}  // namespace procpool
