#include "shared_array/transfer.h"

#include <unistd.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "shared_array/mapping_cache.h"

namespace procpool {
namespace {

thread_local ArrayTransfer* current_transfer = nullptr;

}  // namespace

size_t ArrayTransfer::Add(const SharedBuffer& buffer) {
  for (size_t i = 0; i < outgoing_.size(); ++i) {
    if (outgoing_[i].id() == buffer.id()) return i;
  }
  outgoing_.push_back(buffer);
  return outgoing_.size() - 1;
}

std::vector<int> ArrayTransfer::OutgoingFds() const {
  std::vector<int> fds;
  fds.reserve(outgoing_.size());
  for (const SharedBuffer& b : outgoing_) fds.push_back(b.fd());
  return fds;
}

void ArrayTransfer::SetIncoming(std::vector<UniqueFd> fds,
                                MappingCache* cache) {
  incoming_ = std::move(fds);
  resolved_.assign(incoming_.size(), std::nullopt);
  cache_ = cache;
}

absl::StatusOr<SharedBuffer> ArrayTransfer::Resolve(
    const SharedArrayHandle& handle, size_t index) {
  if (index >= incoming_.size()) {
    return absl::DataLossError(absl::StrCat(
        "a shared array names descriptor ", index, " of its frame, but ",
        incoming_.size(), " came with it"));
  }
  if (resolved_[index].has_value()) {
    if (!(resolved_[index]->id() == handle.id)) {
      return absl::DataLossError(absl::StrCat(
          "descriptor ", index, " of the frame is shared array ",
          resolved_[index]->id().ToString(), ", not ", handle.id.ToString()));
    }
    return *resolved_[index];
  }
  absl::StatusOr<SharedBuffer> buffer;
  if (cache_ != nullptr) {
    buffer = cache_->Lookup(handle);
    if (absl::IsNotFound(buffer.status())) {
      buffer = cache_->Insert(handle, std::move(incoming_[index]));
    }
  } else {
    // The parent: an array it holds comes back as that array (the
    // descriptor that came is closed with the transfer).
    buffer = SharedBuffer::FindLive(handle);
    if (absl::IsNotFound(buffer.status())) {
      buffer = SharedBuffer::Attach(handle, std::move(incoming_[index]));
    }
  }
  if (buffer.ok()) resolved_[index] = *buffer;
  return buffer;
}

absl::Status ArrayTransfer::OutputByValueError() {
  return absl::FailedPreconditionError(
      "an output SharedArray (SharedArrayMode::kOutput) cannot be passed to a "
      "pool whose workers get copies of shared arrays (the capnp transport, "
      "remote workers): the tasks' writes would not come back. Use "
      "--procpool_transport=shm or unix, or return the slices as results");
}

ArrayTransfer* CurrentArrayTransfer() { return current_transfer; }

ArrayTransferScope::ArrayTransferScope(ArrayTransfer* transfer)
    : previous_(current_transfer) {
  current_transfer = transfer;
}

ArrayTransferScope::~ArrayTransferScope() { current_transfer = previous_; }

}  // namespace procpool
