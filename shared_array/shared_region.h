// SharedRegion: one process's mapping of one memfd, the memory under a
// SharedArray (shared_array.h). It creates the memfd, seals it immutable, and
// attaches a memfd received from another process after checking that it is
// what the receiver expects.
//
// Example:
//   ASSIGN_OR_RETURN(SharedRegion region,
//                    SharedRegion::Create(4096, "procpool-array:1.2.3"));
//   static_cast<char*>(region.address())[0] = 'x';   // writable until sealed
//   RETURN_IF_ERROR(region.Seal());                   // now read-only, forever
//   // ... region.fd() travels to another process (SCM_RIGHTS), which calls
//   ASSIGN_OR_RETURN(SharedRegion view,
//                    SharedRegion::Attach(std::move(received_fd), 4096,
//                                         SharedAccess::kReadOnly,
//                                         "procpool-array:1.2.3"));
//
// The memfd (memfd_create, MFD_CLOEXEC | MFD_ALLOW_SEALING) is named nowhere
// in the file system: no other user can open it, and it is gone with the last
// descriptor and mapping of it in any process. Its name ("/memfd:NAME" in
// /proc/PID/maps) carries the buffer's identity, which Attach checks.
//
// Seals (fcntl F_ADD_SEALS; memfd_create(2)):
//   * At creation: F_SEAL_SHRINK | F_SEAL_GROW. The size is fixed for good, so
//     no process can truncate the memory under another's mapping (SIGBUS).
//   * Seal(): F_SEAL_WRITE | F_SEAL_SEAL. Nobody can write the bytes any more:
//     a PROT_WRITE MAP_SHARED mmap fails with EPERM, mprotect(PROT_WRITE) of
//     a read-only mapping with EACCES, write(2) with EPERM.
//     The kernel refuses F_SEAL_WRITE (EBUSY) while any writable shared
//     mapping of the memfd exists, and counts a PROT_READ MAP_SHARED mapping
//     of a descriptor opened read-write as one (it could be mprotect()ed
//     writable). So Seal() first reopens the memfd read-only through
//     /proc/self/fd/N and maps that over the writable mapping with MAP_FIXED:
//     one mmap, at the same address (pointers into the region stay valid and
//     a reader in another thread never sees a hole), then adds the seals and
//     keeps only the read-only descriptor, which is the one that travels.
//     A writable mapping in another process (an Attach with kReadWrite) makes
//     Seal() fail with kFailedPrecondition.
//   * CreateOutput regions are sealed F_SEAL_SHRINK | F_SEAL_GROW |
//     F_SEAL_SEAL at creation: writable by everyone who maps them, and never
//     sealable (nobody can freeze them under the others' writes).
//
// Attach() checks, before mapping: the descriptor is a memfd (F_GET_SEALS
// works) of exactly `size` bytes (fstat) named `expected_name`, sealed against
// shrinking and growing; for kReadOnly it must be sealed against writing
// (F_SEAL_WRITE) or Attach fails with kFailedPrecondition: we chose to refuse
// a read-only attach of an unsealed buffer rather than map it PROT_READ,
// because its bytes could still change under the reader and the reader could
// mprotect it writable; for kReadWrite it must not be (kFailedPrecondition:
// attach it read-only). A kReadOnly mapping is PROT_READ: a write through it
// is SIGSEGV.
//
// Every mapping is MADV_DONTFORK: a worker started with fork() does not
// inherit the parent's arrays (it attaches the ones it is sent), so memory is
// freed when its holders let go, not when the last forked child exits. In a
// forked child, a SharedRegion inherited from the parent points at nothing.
//
// Zero bytes: a memfd of size 0 cannot be mmapped (EINVAL), so a region of 0
// bytes has a memfd and no mapping; address() is nullptr.
//
// Errors are absl::Status with the call, the reason and what to do; resources
// that ran out (EMFILE, ENOMEM, ENOSPC) are kResourceExhausted with advice
// (common/posix_error.h). Every system call that acquires a descriptor or
// memory goes through GetSys() (common/sys.h), so tests can fail it. A failed
// call leaks nothing.
//
// Thread safety: a SharedRegion is a move-only value used by one thread at a
// time; its const methods may be called concurrently. The memory itself is
// the caller's to synchronize (shared_array.h states the rules).
#ifndef PROCPOOL_SHARED_ARRAY_SHARED_REGION_H_
#define PROCPOOL_SHARED_ARRAY_SHARED_REGION_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/unique_fd.h"

namespace procpool {

// How a receiver maps a buffer.
enum class SharedAccess : uint8_t {
  kReadOnly = 1,   // sealed against writing; mapped PROT_READ
  kReadWrite = 2,  // an output buffer; mapped PROT_READ | PROT_WRITE
};

// "read-only" or "read-write".
absl::string_view SharedAccessName(SharedAccess access);

class SharedRegion {
 public:
  // The longest name Create and Attach accept (memfd_create allows 249).
  static constexpr size_t kMaxNameBytes = 200;

  // Creates a memfd named `name` of `size` bytes, zero-filled, mapped read-
  // write, sealed against shrinking and growing. Seal() makes it immutable.
  static absl::StatusOr<SharedRegion> Create(size_t size,
                                             absl::string_view name);

  // As Create, for a buffer that stays writable by everyone who maps it (also
  // sealed F_SEAL_SEAL: Seal() fails on it).
  static absl::StatusOr<SharedRegion> CreateOutput(size_t size,
                                                   absl::string_view name);

  // Maps `fd`, received from another process, after the checks above; the
  // region owns `fd` from now on (on failure it is closed). `expected_name`
  // empty: the name is not checked.
  static absl::StatusOr<SharedRegion> Attach(UniqueFd fd, size_t size,
                                             SharedAccess access,
                                             absl::string_view expected_name);

  SharedRegion(SharedRegion&& other) noexcept;
  SharedRegion& operator=(SharedRegion&& other) noexcept;
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;

  // Unmaps the memory and closes the descriptor.
  ~SharedRegion();

  // Makes the region immutable everywhere (above). Idempotent. On failure the
  // region is as it was (writable). kFailedPrecondition: a writable mapping
  // exists elsewhere, or the region is an output region or was attached.
  absl::Status Seal();

  // The first byte (nullptr when size() == 0). Writable iff writable(); a
  // write through a read-only region is SIGSEGV.
  void* address() const { return address_; }
  size_t size() const { return size_; }
  // The memfd (owned); after Seal() a read-only descriptor of it.
  int fd() const { return fd_.get(); }
  // Whether this process's mapping accepts writes.
  bool writable() const { return writable_; }
  // Whether the memfd is sealed against writing (Seal(), or attached so).
  bool sealed() const { return sealed_; }

 private:
  SharedRegion(void* address, size_t size, UniqueFd fd, bool writable,
               bool sealed, bool sealable);
  static absl::StatusOr<SharedRegion> CreateSealed(size_t size,
                                                   absl::string_view name,
                                                   int seals, bool sealable);
  void Reset();

  void* address_ = nullptr;
  size_t size_ = 0;
  UniqueFd fd_;
  bool writable_ = false;
  bool sealed_ = false;
  bool sealable_ = false;  // created here by Create(), not yet sealed
};

}  // namespace procpool

#endif  // PROCPOOL_SHARED_ARRAY_SHARED_REGION_H_
