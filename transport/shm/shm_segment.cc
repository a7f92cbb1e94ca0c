#include "transport/shm/shm_segment.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/posix_error.h"
#include "common/sys.h"

namespace procpool {
namespace shm_internal {

static_assert(sizeof(ShmControl) <= kShmControlBytes,
              "the control block must fit its page");

bool ValidRingBytes(uint64_t ring_bytes) {
  return ring_bytes >= kShmMinRingBytes && ring_bytes <= kShmMaxRingBytes &&
         (ring_bytes & (ring_bytes - 1)) == 0;
}

size_t SegmentBytes(uint64_t ring_bytes) {
  return kShmControlBytes + 2 * static_cast<size_t>(ring_bytes);
}

absl::Status CheckSealedMemfd(int memfd, uint64_t ring_bytes) {
  const size_t bytes = SegmentBytes(ring_bytes);
  struct stat st;
  if (fstat(memfd, &st) != 0) {
    return PosixError("shm transport: fstat(endpoint memfd)", errno);
  }
  // Sealed against shrinking: the mapping cannot fault under us.
  const int seals = fcntl(memfd, F_GET_SEALS);
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != bytes ||
      seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("shm transport: endpoint descriptor ", memfd,
                     " is not a sealed memfd of ", bytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ShmSegment> ShmSegment::Create(uint64_t ring_bytes,
                                              UniqueFd* memfd_out) {
  const size_t bytes = SegmentBytes(ring_bytes);
  UniqueFd memfd(
      GetSys().MemfdCreate("procpool-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!memfd.valid()) return PosixError("shm transport: memfd_create", errno);
  if (GetSys().Ftruncate(memfd.get(), static_cast<off_t>(bytes)) != 0) {
    return PosixError("shm transport: ftruncate", errno);
  }
  // Neither side may shrink it under the other (that would be SIGBUS).
  if (fcntl(memfd.get(), F_ADD_SEALS,
            F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return PosixError("shm transport: F_ADD_SEALS", errno);
  }
  void* addr = GetSys().Mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                             MAP_SHARED, memfd.get(), 0);
  if (addr == MAP_FAILED) return PosixError("shm transport: mmap", errno);
  ShmSegment segment(addr, bytes, ring_bytes);
  // A worker started with fork() must not inherit other workers' rings.
  if (madvise(addr, bytes, MADV_DONTFORK) != 0) {
    return PosixError("shm transport: madvise(MADV_DONTFORK)", errno);
  }
  ShmControl* control = new (addr) ShmControl();
  control->constants.magic = kControlMagic;
  control->constants.version = kControlVersion;
  control->constants.control_bytes = kShmControlBytes;
  control->constants.ring_bytes = ring_bytes;
  *memfd_out = std::move(memfd);
  return segment;
}

absl::StatusOr<ShmSegment> ShmSegment::Map(int memfd, uint64_t ring_bytes,
                                           absl::string_view spec) {
  const size_t bytes = SegmentBytes(ring_bytes);
  void* addr = GetSys().Mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                             MAP_SHARED, memfd, 0);
  if (addr == MAP_FAILED) return PosixError("shm transport: mmap", errno);
  ShmSegment segment(addr, bytes, ring_bytes);
  const ShmControl* control = segment.control();
  if (control->constants.magic != kControlMagic ||
      control->constants.version != kControlVersion ||
      control->constants.control_bytes != kShmControlBytes ||
      control->constants.ring_bytes != ring_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shm transport: the shared memory does not match the spec \"", spec,
        "\" (another version of procpool?)"));
  }
  return segment;
}

ShmSegment::ShmSegment(ShmSegment&& other) noexcept
    : addr_(std::exchange(other.addr_, nullptr)),
      bytes_(other.bytes_),
      ring_bytes_(other.ring_bytes_) {}

ShmSegment::~ShmSegment() {
  if (addr_ != nullptr) munmap(addr_, bytes_);
}

}  // namespace shm_internal
}  // namespace procpool
