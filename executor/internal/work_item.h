// One unit of work as the pool queues it (internal).
#ifndef PROCPOOL_EXECUTOR_INTERNAL_WORK_ITEM_H_
#define PROCPOOL_EXECUTOR_INTERNAL_WORK_ITEM_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "executor/internal/future_state.h"
#include "serialization/packed.h"
#include "shared_array/shared_buffer.h"

namespace procpool {
namespace internal {

// A task and one encoded argument tuple per element (one for Submit, a chunk
// for Map), and the state its outcome completes.
struct WorkItem {
  std::string task;
  // The elements: a string each, or, when `args` is empty, packed (Map's
  // chunks of small elements: AddElement). As wire::Call has them; kept
  // while the work runs, to run it again after a worker death.
  std::vector<std::string> args;
  PackedElements packed_args;
  // The shared arrays the arguments name by reference, by index: their
  // memfds go beside the Call (wire::Call::descriptors), and these copies
  // keep them open while the work may still be sent.
  std::vector<SharedBuffer> arrays;
  // The output arrays the arguments carry by value (a pool whose workers get
  // copies), by index: what the tasks changed in their copies comes back
  // (wire::Result::output_writes) and is written into these before the
  // futures complete (ArrayTransfer::ApplyOutputWrites).
  std::vector<SharedBuffer> output_copies;
  std::shared_ptr<StateBase> state;
  // Per-task timeout (TaskOptions / MapOptions::chunk_timeout).
  absl::Duration timeout = absl::InfiniteDuration();
  // Runs left after a worker death (Options::max_retries).
  int retries_left = 0;
  // Already RUNNING: handed out before, put back after its worker died.
  bool requeued = false;

  size_t size() const { return args.empty() ? packed_args.size() : args.size(); }
};

// wire::kExternalBlobBytes: a Map chunk with an element this big is a string
// per element (the big one then goes from its own buffer into the
// transport); otherwise it is packed.
inline constexpr size_t kBigElementBytes = size_t{16} << 10;

// Adds an encoded argument tuple to a Map chunk (packed, or a string each:
// kBigElementBytes).
void AddElement(WorkItem* item, std::string encoded);
// Makes the element whose encoding is item->packed_args.bytes from `begin`
// on, kBigElementBytes or more, a string of its own (a copy), and the chunk
// a string per element.
void EndAppendedElement(WorkItem* item, size_t begin);

}  // namespace internal
}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_INTERNAL_WORK_ITEM_H_
