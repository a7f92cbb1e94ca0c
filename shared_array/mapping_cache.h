// MappingCache: a worker's mappings of the shared arrays it was sent, keyed by
// buffer identity, so that a buffer is mapped once per worker, not once per
// call. The sender passes a buffer's memfd once per worker (Insert); later
// calls carry only the handle (Lookup).
//
// Two ways to bound it: by its own Limits (evicting on Insert, Lookup and
// Trim), or by the sender: a worker's cache has no limits of its own and
// drops entries only when a Call says so (Forget), because the parent keeps
// the picture of it that decides which descriptors to send again
// (peer_arrays.h, with the same default bounds).
//
// Example (in a worker, per shared array argument):
//   ASSIGN_OR_RETURN(SharedArrayHandle h, DecodeHandle(bytes));
//   absl::StatusOr<SharedBuffer> b = received_fd.valid()
//       ? cache.Insert(h, std::move(received_fd))
//       : cache.Lookup(h);
//   ... run the task with SharedArray<T>::FromBuffer(*b) ...
//   // before the next call: cache.Forget(call.forget_arrays)
//
// Policy:
//   * Pins: an entry is in use while any SharedBuffer or SharedArray copy of
//     it lives outside the cache (a running task's argument, a result not yet
//     sent). Pinned entries are never evicted.
//   * Bounds: at most `max_entries` entries and `max_bytes` mapped bytes.
//     Insert, Lookup and Trim evict the least recently used unpinned entries
//     until both hold (O(entries) per eviction). Pinned entries may exceed the
//     bounds (a task needs its arrays mapped); they are evicted by the first
//     Trim after they are unpinned.
//   * Eviction unmaps and closes the memfd (the last copy goes), and records
//     the id: TakeDropped() returns those ids, which the worker reports to
//     the sender so that it sends the descriptor again next time. A handle
//     for a buffer not (or no longer) cached is Lookup's kNotFound.
//   * Clear() drops every entry (worker exit, tests): what is unpinned is
//     unmapped at once; a pinned mapping goes with its last holder.
//   * A handle whose id is cached but whose size, type or access differ from
//     the cached entry is forged or corrupt: kInvalidArgument, and the entry
//     stays.
//
// Thread safety: all methods are thread-safe.
#ifndef PROCPOOL_SHARED_ARRAY_MAPPING_CACHE_H_
#define PROCPOOL_SHARED_ARRAY_MAPPING_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/unique_fd.h"
#include "shared_array/handle.h"
#include "shared_array/shared_buffer.h"

namespace procpool {

class MappingCache {
 public:
  struct Limits {
    size_t max_entries = 256;
    size_t max_bytes = size_t{4} << 30;  // address space, not memory
  };

  explicit MappingCache(Limits limits) : limits_(limits) {}
  MappingCache() : MappingCache(Limits()) {}
  MappingCache(const MappingCache&) = delete;
  MappingCache& operator=(const MappingCache&) = delete;
  ~MappingCache() { Clear(); }

  // The buffer of `handle`, whose memfd `fd` arrived with it (owned from now
  // on). Not cached: attaches it (SharedBuffer::Attach checks the descriptor)
  // and caches it. Cached (the sender sent it again): checks the handle
  // against the entry and closes `fd`. The result pins the entry.
  absl::StatusOr<SharedBuffer> Insert(const SharedArrayHandle& handle,
                                      UniqueFd fd) ABSL_LOCKS_EXCLUDED(mu_);

  // The cached buffer of `handle`: kNotFound if it is not cached (never sent
  // to this process, evicted, or a stale handle), kInvalidArgument if the
  // handle disagrees with the entry. The result pins the entry.
  absl::StatusOr<SharedBuffer> Lookup(const SharedArrayHandle& handle)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Evicts unpinned entries, least recently used first, until within bounds.
  void Trim() ABSL_LOCKS_EXCLUDED(mu_);

  // Drops the entries of `ids` (those it has), pinned or not: a pinned
  // mapping goes with its last holder. Unknown ids are ignored.
  void Forget(absl::Span<const BufferId> ids) ABSL_LOCKS_EXCLUDED(mu_);

  // The ids evicted or cleared since the last call, oldest first.
  std::vector<BufferId> TakeDropped() ABSL_LOCKS_EXCLUDED(mu_);

  // Drops every entry (above).
  void Clear() ABSL_LOCKS_EXCLUDED(mu_);

  size_t entries() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t bytes() const ABSL_LOCKS_EXCLUDED(mu_);
  // Entries in use outside the cache.
  size_t pinned() const ABSL_LOCKS_EXCLUDED(mu_);
  // Buffers attached from a descriptor so far (Insert of one not cached).
  uint64_t attached() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    SharedBuffer buffer;
    uint64_t last_use = 0;
  };

  absl::Status CheckEntry(const Entry& entry,
                          const SharedArrayHandle& handle) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TrimLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Limits limits_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<BufferId, Entry> entries_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t clock_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<BufferId> dropped_ ABSL_GUARDED_BY(mu_);
  uint64_t attached_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace procpool

#endif  // PROCPOOL_SHARED_ARRAY_MAPPING_CACHE_H_
