// SharedBuffer: the untyped, reference-counted shared memory under
// SharedArray<T> (shared_array.h). Copies share one SharedRegion (like a
// std::shared_ptr); the memory is unmapped and the memfd closed when the last
// copy in this process goes. SharedArray<T> is what programs use; this is the
// form the codec, the transports and MappingCache handle.
//
// Example:
//   ASSIGN_OR_RETURN(SharedBuffer b, SharedBuffer::Create(
//       /*element_count=*/n, /*element_size=*/8, "f64",
//       SharedArrayMode::kImmutable));
//   std::memcpy(b.address(), source, 8 * n);      // the creator fills it
//   ASSIGN_OR_RETURN(SharedArrayHandle h, b.Share());  // sealed from now on
//   // send EncodeHandle(h), and b.fd() once per receiving process; there:
//   ASSIGN_OR_RETURN(SharedBuffer view,
//                    SharedBuffer::Attach(h, std::move(fd)));
//
// Thread safety: copies may be made, destroyed and used from any threads
// (the count is a shared_ptr's); Seal()/Share() serialize on the buffer's
// mutex. The bytes are the callers' to synchronize (shared_array.h).
#ifndef PROCPOOL_SHARED_ARRAY_SHARED_BUFFER_H_
#define PROCPOOL_SHARED_ARRAY_SHARED_BUFFER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"
#include "shared_array/handle.h"

namespace procpool {

// Who may write a shared array, and when (shared_array.h has the rules).
enum class SharedArrayMode : uint8_t {
  // Writable by its creator until first shared (Share() or Seal()); from then
  // on sealed, read-only in every process.
  kImmutable,
  // Writable by every process that holds it, never sealed: tasks write
  // disjoint slices, the creator reads them once their futures are done.
  kOutput,
};

namespace shared_array_internal {
struct BufferState;
}  // namespace shared_array_internal

class SharedBuffer {
 public:
  // Holds nothing: address() nullptr, byte_size() 0; Share() and Seal() fail.
  SharedBuffer() = default;

  // `element_count` elements of `element_size` bytes named `type_name`
  // (SharedArrayTypeName<T>()), zero-filled, writable here. An overflowing
  // size is kInvalidArgument; the system's refusals are PosixErrors.
  static absl::StatusOr<SharedBuffer> Create(size_t element_count,
                                             size_t element_size,
                                             absl::string_view type_name,
                                             SharedArrayMode mode);

  // Maps buffer `handle` (decoded and type-checked by the caller) from `fd`,
  // which the buffer owns from now on (closed on failure): SharedRegion::
  // Attach checks the descriptor's name, size and seals against the handle.
  static absl::StatusOr<SharedBuffer> Attach(const SharedArrayHandle& handle,
                                             UniqueFd fd);

  // The buffer `handle` names if this process holds it already (a live copy:
  // one it made or attached), with no new mapping: so an array that comes
  // back to the parent (a task returns what it was given) costs no mmap.
  // kNotFound if none is held; kInvalidArgument if the held one disagrees
  // with the handle on size, type or access (forged or corrupted).
  static absl::StatusOr<SharedBuffer> FindLive(const SharedArrayHandle& handle);

  // Whether this process holds buffer `id` (a live copy).
  static bool IsLive(const BufferId& id);

  // The buffers this process stopped holding (their last copy went), for a
  // sender's picture of what its receivers hold (peer_arrays.h): appends to
  // `out` (if not null) the ids released since `*cursor` (start at 0), and
  // moves the cursor past them. False if the log no longer has all of them
  // (it keeps the last 1024): the caller asks IsLive() instead.
  static bool ReleasedSince(uint64_t* cursor, std::vector<BufferId>* out);

  // Whether this holds a buffer (false for a default-constructed one).
  explicit operator bool() const { return state_ != nullptr; }

  // The bytes; nullptr when byte_size() == 0 or nothing is held. Writing is
  // allowed only while writable(): afterwards it is SIGSEGV.
  void* address() const;
  size_t byte_size() const;
  size_t element_size() const;
  absl::string_view type_name() const;
  const BufferId& id() const;
  SharedArrayMode mode() const;

  // Whether this process may write the bytes now.
  bool writable() const;
  // Whether the bytes are sealed against writing (in every process).
  bool sealed() const;

  // Makes a kImmutable buffer read-only for good (SharedRegion::Seal: same
  // address, no copy). Idempotent. kFailedPrecondition for kOutput buffers
  // and for nothing held.
  absl::Status Seal() const;

  // What a sender sends: a kImmutable buffer is sealed first (Seal()), so its
  // handle says kReadOnly; a kOutput buffer's says kReadWrite.
  absl::StatusOr<SharedArrayHandle> Share() const;

  // The memfd to pass with the handle (owned by the buffer: dup it or send it
  // before the last copy goes). Call it after Share(): sealing replaces it
  // with a read-only descriptor. -1 if nothing is held.
  int fd() const;

  // The number of SharedBuffers (and SharedArrays) sharing this memory in
  // this process; 0 if nothing is held. MappingCache's pin count.
  long use_count() const { return state_.use_count(); }

 private:
  explicit SharedBuffer(std::shared_ptr<shared_array_internal::BufferState> s)
      : state_(std::move(s)) {}

  std::shared_ptr<shared_array_internal::BufferState> state_;
};

}  // namespace procpool

#endif  // PROCPOOL_SHARED_ARRAY_SHARED_BUFFER_H_
