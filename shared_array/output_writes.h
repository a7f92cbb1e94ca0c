// OutputWrites: what tasks wrote into the copies of output arrays
// (SharedArrayMode::kOutput) that reached them by value (the capnp
// transport, remote workers), so that the parent can write the same bytes
// into the arrays themselves before the futures complete; over shm and unix
// the workers write the shared memory itself and none of this happens.
//
// A task writes its own slice of an output array (shared_array.h's rules:
// the slices of concurrent tasks are disjoint), so a copy's changes are
// exactly the bytes that differ from what the copy was made of: those bytes,
// and only those, go back. Bytes between two changes are never sent (they
// may be another task's slice, already written in the parent), so a change
// is a run of differing bytes, however short; a byte a task wrote with the
// value it already had is not sent and needs not be.
//
// Wire format (serialization/byte_io.h's varints), per changed copy:
//   varint index      the copy's index among its frame's output arrays
//   varint byte_size  the array's size, checked against the parent's
//   per run: varint skip (bytes from the end of the last run, or from the
//            start), varint length (> 0), the bytes
//   varint 0, varint 0   the end of the copy's runs
// Copies with no change are left out; an empty string says nothing changed.
//
// Example (the worker, then the parent):
//   OutputWrites writes;
//   writes.AddChanges(0, original_bytes, copy.address());
//   result.output_writes = writes.Release();
//   ...
//   RETURN_IF_ERROR(OutputWrites::Apply(result.output_writes, call_outputs));
//
// Thread safety: an OutputWrites is used by one thread at a time.
#ifndef PROCPOOL_SHARED_ARRAY_OUTPUT_WRITES_H_
#define PROCPOOL_SHARED_ARRAY_OUTPUT_WRITES_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "serialization/byte_io.h"
#include "shared_array/shared_buffer.h"

namespace procpool {

class OutputWrites {
 public:
  // Records copy `index`'s changes: the bytes of `now` (before.size() of
  // them) that differ from `before`. Nothing if none do.
  void AddChanges(uint32_t index, absl::string_view before, const void* now);

  bool empty() const { return w_.size() == 0; }
  // The encoded changes; leaves this empty.
  std::string Release() { return w_.Release(); }

  // Writes `writes` (Release()'s encoding) into `targets`, the arrays whose
  // copies they came from, by index. Checks all of it first: an index past
  // `targets`, a size that is not the target's, a run past its end, a target
  // this process may not write, or bytes that do not parse are kDataLoss, and
  // then nothing is written.
  static absl::Status Apply(absl::string_view writes,
                            absl::Span<const SharedBuffer> targets);

 private:
  Writer w_;
};

}  // namespace procpool

#endif  // PROCPOOL_SHARED_ARRAY_OUTPUT_WRITES_H_
