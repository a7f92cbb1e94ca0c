// ShmSegment: the shared memory of one shm channel, mapped. One memfd holds
// the control page and both rings (offsets from its start; R = ring_bytes):
//   [0, kShmControlBytes)                 ShmControl (shm_ring.h)
//   [kShmControlBytes, +R)                ring to child
//   [kShmControlBytes + R, +2R)           ring to parent
//
// Contract:
//   * Create() makes the memfd (close-on-exec), sizes it and seals it against
//     shrinking and growing (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), so
//     that neither process can make the other's accesses fault (SIGBUS);
//     maps it MADV_DONTFORK (a worker started with fork() does not inherit
//     other workers' rings) and writes a fresh control page's constants.
//   * The receiving side checks the descriptor first (CheckSealedMemfd: a
//     regular file of exactly SegmentBytes(R), sealed against shrinking),
//     then Map()s it, which checks the control page's constants against the
//     spec. Mapping a descriptor that did not pass CheckSealedMemfd is unsafe.
//   * The segment owns its mapping and unmaps it when destroyed; the memory
//     goes away with the last mapping and descriptor (nothing is named in
//     /dev/shm, nothing is left when either process dies).
//
// Example:
//   UniqueFd memfd;
//   ASSIGN_OR_RETURN(ShmSegment parent, ShmSegment::Create(ring, &memfd));
//   // in the child, given memfd:
//   RETURN_IF_ERROR(CheckSealedMemfd(fd, ring));
//   ASSIGN_OR_RETURN(ShmSegment child, ShmSegment::Map(fd, ring, spec));
//
// Thread safety: the object is immutable after construction. The memory it
// maps is shared by two processes under the protocol in shm_transport.h.
#ifndef PROCPOOL_TRANSPORT_SHM_SHM_SEGMENT_H_
#define PROCPOOL_TRANSPORT_SHM_SHM_SEGMENT_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"
#include "transport/shm/shm_options.h"
#include "transport/shm/shm_ring.h"

namespace procpool {
namespace shm_internal {

// Whether `ring_bytes` is a ring size the transport accepts: a power of two
// in [kShmMinRingBytes, kShmMaxRingBytes].
bool ValidRingBytes(uint64_t ring_bytes);

// Bytes of the memfd for rings of `ring_bytes`: the control page and two
// rings.
size_t SegmentBytes(uint64_t ring_bytes);

// OK if `memfd` is a regular file of SegmentBytes(ring_bytes) bytes sealed
// against shrinking; kInvalidArgument if not ("shm transport: endpoint
// descriptor N is not a sealed memfd of B bytes"), a PosixError if fstat()
// fails.
absl::Status CheckSealedMemfd(int memfd, uint64_t ring_bytes);

class ShmSegment {
 public:
  // A new sealed memfd for rings of `ring_bytes` (ValidRingBytes), mapped,
  // its control page's constants written and every other word zero (empty
  // rings, nobody waiting). `*memfd` receives the descriptor, for the peer.
  static absl::StatusOr<ShmSegment> Create(uint64_t ring_bytes,
                                           UniqueFd* memfd);

  // Maps the segment in `memfd` (which passed CheckSealedMemfd for
  // `ring_bytes`; still owned by the caller, who may close it afterwards)
  // and checks its control page: kInvalidArgument naming `spec` when the
  // magic, version or sizes differ (another version of procpool).
  static absl::StatusOr<ShmSegment> Map(int memfd, uint64_t ring_bytes,
                                        absl::string_view spec);

  ShmSegment(ShmSegment&& other) noexcept;
  ShmSegment& operator=(ShmSegment&&) = delete;
  ShmSegment(const ShmSegment&) = delete;
  ShmSegment& operator=(const ShmSegment&) = delete;
  ~ShmSegment();

  ShmControl* control() const { return static_cast<ShmControl*>(addr_); }
  uint64_t ring_bytes() const { return ring_bytes_; }
  // The rings' bytes (ring_bytes() each).
  char* ring_to_child() const {
    return static_cast<char*>(addr_) + kShmControlBytes;
  }
  char* ring_to_parent() const { return ring_to_child() + ring_bytes_; }

 private:
  ShmSegment(void* addr, size_t bytes, uint64_t ring_bytes)
      : addr_(addr), bytes_(bytes), ring_bytes_(ring_bytes) {}

  void* addr_;  // nullptr once moved from
  size_t bytes_;
  uint64_t ring_bytes_;
};

}  // namespace shm_internal
}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_SHM_SHM_SEGMENT_H_
