// PeerArrays: a sender's picture of the shared arrays one receiver holds, so
// that an array's memfd crosses to each worker once, not with every call.
//
// The pool keeps one per worker (executor/internal/worker_table.h). For each
// Call it plans which of the call's arrays travel with their descriptor (the
// worker does not hold them yet) and which go as a handle only (Call::
// held_arrays), and which arrays the worker drops from its cache before the
// call (Call::forget_arrays). The worker's cache (mapping_cache.h) evicts
// nothing on its own: it forgets only what a Call says, so the picture is
// exact whatever number of calls are in flight (a worker serves its calls in
// order, and a forget list is applied before that call's arguments).
//
// An array is forgotten when
//   * the sender has let it go (its last copy in this process went:
//     SharedBuffer::ReleasedSince), so a worker does not keep memory alive
//     that nobody can name any more; it goes at the worker's next call, or
//     with the worker;
//   * or the picture is over its bounds (entries, mapped bytes): least
//     recently sent first, never one the planned call itself carries.
//
// Example:
//   PeerArrays held;                      // one per worker
//   PeerArrays::Plan plan;
//   held.PlanFrame(item.arrays, &plan);   // the call's arrays, index order
//   call.held_arrays = plan.held;         // these go without a descriptor
//   ... send the call with plan.fds beside it; tell it to forget plan.forget
//
// Thread safety: none; the pool uses each under its I/O lock.
#ifndef PROCPOOL_SHARED_ARRAY_PEER_ARRAYS_H_
#define PROCPOOL_SHARED_ARRAY_PEER_ARRAYS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "shared_array/handle.h"
#include "shared_array/shared_buffer.h"

namespace procpool {

class PeerArrays {
 public:
  struct Limits {
    size_t max_entries = 256;
    size_t max_bytes = size_t{4} << 30;  // the worker's address space
  };

  // What one frame does with its arrays.
  struct Plan {
    // Indices (increasing) of the arrays sent as a handle only.
    std::vector<uint32_t> held;
    // The other arrays' descriptors, in index order (the buffers' own:
    // valid while the caller holds the arrays).
    std::vector<int> fds;
    // What the receiver drops before it reads the frame.
    std::vector<BufferId> forget;

    bool empty() const { return held.empty() && fds.empty() && forget.empty(); }
  };

  explicit PeerArrays(Limits limits) : limits_(limits) {}
  PeerArrays() : PeerArrays(Limits()) {}

  // Plans a frame that carries `arrays` (its shared arrays, index order),
  // and records that the receiver holds them once it has read the frame.
  // Cheap when the frame has no arrays and the receiver holds none.
  void PlanFrame(absl::Span<const SharedBuffer> arrays, Plan* plan);

  size_t entries() const { return held_.size(); }
  size_t bytes() const { return bytes_; }

 private:
  struct Entry {
    size_t bytes = 0;
    uint64_t last_sent = 0;
  };

  void Drop(const BufferId& id, Plan* plan);
  void ForgetReleased(Plan* plan);
  // Evicts entries not sent at or after `keep_from`, oldest first.
  void EvictOverBounds(uint64_t keep_from, Plan* plan);

  const Limits limits_;
  absl::flat_hash_map<BufferId, Entry> held_;
  size_t bytes_ = 0;
  uint64_t clock_ = 0;
  uint64_t release_cursor_ = 0;  // SharedBuffer::ReleasedSince's
};

}  // namespace procpool

#endif  // PROCPOOL_SHARED_ARRAY_PEER_ARRAYS_H_
