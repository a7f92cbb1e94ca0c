#include "shared_array/mapping_cache.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace procpool {

absl::Status MappingCache::CheckEntry(const Entry& entry,
                                      const SharedArrayHandle& handle) const {
  const SharedBuffer& b = entry.buffer;
  const SharedAccess access = b.mode() == SharedArrayMode::kImmutable
                                  ? SharedAccess::kReadOnly
                                  : SharedAccess::kReadWrite;
  if (b.byte_size() != handle.byte_size ||
      b.element_size() != handle.element_size ||
      b.type_name() != handle.type_name || access != handle.access) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shared array handle for buffer ", handle.id.ToString(), " says ",
        handle.byte_size, " bytes of ", handle.type_name, " ",
        SharedAccessName(handle.access), "; the buffer mapped here is ",
        b.byte_size(), " bytes of ", b.type_name(), " ",
        SharedAccessName(access), " (a forged or corrupt handle)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<SharedBuffer> MappingCache::Insert(
    const SharedArrayHandle& handle, UniqueFd fd) {
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(handle.id);
    if (it != entries_.end()) {
      absl::Status same = CheckEntry(it->second, handle);
      if (!same.ok()) return same;
      it->second.last_use = ++clock_;
      return it->second.buffer;  // `fd` closes: the mapping has its own
    }
  }
  // Map outside the lock: other workers' threads need not wait for mmap.
  absl::StatusOr<SharedBuffer> attached =
      SharedBuffer::Attach(handle, std::move(fd));
  if (!attached.ok()) return attached.status();
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = entries_.try_emplace(handle.id);
  if (!inserted) {
    // Another thread inserted it meanwhile: keep one mapping.
    absl::Status same = CheckEntry(it->second, handle);
    if (!same.ok()) return same;
  } else {
    it->second.buffer = *attached;
    bytes_ += attached->byte_size();
    ++attached_;
  }
  it->second.last_use = ++clock_;
  SharedBuffer result = it->second.buffer;
  TrimLocked();
  return result;
}

absl::StatusOr<SharedBuffer> MappingCache::Lookup(
    const SharedArrayHandle& handle) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(handle.id);
  if (it == entries_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "shared array ", handle.id.ToString(),
        " is not mapped in this process: a stale handle, or its descriptor "
        "was never sent here or was dropped (the sender must send it again)"));
  }
  absl::Status same = CheckEntry(it->second, handle);
  if (!same.ok()) return same;
  it->second.last_use = ++clock_;
  SharedBuffer result = it->second.buffer;
  TrimLocked();
  return result;
}

void MappingCache::Trim() {
  absl::MutexLock lock(&mu_);
  TrimLocked();
}

void MappingCache::TrimLocked() {
  while (entries_.size() > limits_.max_entries || bytes_ > limits_.max_bytes) {
    // Only the cache's copy left: nobody can take another without mu_.
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.buffer.use_count() != 1) continue;
      if (victim == entries_.end() ||
          it->second.last_use < victim->second.last_use) {
        victim = it;
      }
    }
    if (victim == entries_.end()) return;  // all pinned
    bytes_ -= victim->second.buffer.byte_size();
    dropped_.push_back(victim->first);
    entries_.erase(victim);  // unmaps and closes: the last copy
  }
}

void MappingCache::Forget(absl::Span<const BufferId> ids) {
  std::vector<Entry> gone;
  {
    absl::MutexLock lock(&mu_);
    for (const BufferId& id : ids) {
      auto it = entries_.find(id);
      if (it == entries_.end()) continue;
      bytes_ -= it->second.buffer.byte_size();
      dropped_.push_back(id);
      gone.push_back(std::move(it->second));
      entries_.erase(it);
    }
  }
  // `gone` unmaps here, outside the lock.
}

uint64_t MappingCache::attached() const {
  absl::MutexLock lock(&mu_);
  return attached_;
}

std::vector<BufferId> MappingCache::TakeDropped() {
  absl::MutexLock lock(&mu_);
  return std::exchange(dropped_, {});
}

void MappingCache::Clear() {
  absl::flat_hash_map<BufferId, Entry> gone;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, entry] : entries_) dropped_.push_back(id);
    gone.swap(entries_);
    bytes_ = 0;
  }
  // `gone` unmaps here, outside the lock.
}

size_t MappingCache::entries() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

size_t MappingCache::bytes() const {
  absl::MutexLock lock(&mu_);
  return bytes_;
}

size_t MappingCache::pinned() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, entry] : entries_) {
    if (entry.buffer.use_count() > 1) ++n;
  }
  return n;
}

}  // namespace procpool
