#include "shared_array/shared_region.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/posix_error.h"
#include "common/status_macros.h"
#include "common/sys.h"
#include "glog/logging.h"

namespace procpool {
namespace {

constexpr int kSizeSeals = F_SEAL_SHRINK | F_SEAL_GROW;

std::string ProcFdPath(int fd) { return absl::StrCat("/proc/self/fd/", fd); }

absl::Status CheckName(absl::string_view name) {
  if (name.size() > SharedRegion::kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("shared array: memfd name of ", name.size(),
                     " bytes; at most ", SharedRegion::kMaxNameBytes));
  }
  return absl::OkStatus();
}

// Maps `size` bytes of `fd` (size > 0), MADV_DONTFORK. `fixed`: over the
// mapping at that address (replacing it in one call), else anywhere.
absl::StatusOr<void*> MapFd(int fd, size_t size, bool writable, void* fixed,
                            absl::string_view context) {
  const int protection = writable ? PROT_READ | PROT_WRITE : PROT_READ;
  const int flags = MAP_SHARED | (fixed != nullptr ? MAP_FIXED : 0);
  void* address = GetSys().Mmap(fixed, size, protection, flags, fd, 0);
  if (address == MAP_FAILED) {
    return PosixError(absl::StrCat(context, ": mmap of ", size, " bytes"),
                      errno);
  }
  // Without it a worker started with fork() would hold every array the
  // parent had mapped, for as long as it lives.
  if (madvise(address, size, MADV_DONTFORK) != 0) {
    const int error = errno;
    if (fixed == nullptr) munmap(address, size);
    return PosixError(absl::StrCat(context, ": madvise(MADV_DONTFORK)"), error);
  }
  return address;
}

// "NAME" for a descriptor whose /proc link reads "/memfd:NAME (deleted)".
absl::StatusOr<std::string> MemfdName(int fd) {
  char link[512];
  const ssize_t n = readlink(ProcFdPath(fd).c_str(), link, sizeof(link));
  if (n < 0) {
    return PosixError(absl::StrCat("shared array: readlink(", ProcFdPath(fd),
                                   ") (is /proc mounted?)"),
                      errno);
  }
  absl::string_view target(link, static_cast<size_t>(n));
  constexpr absl::string_view kPrefix = "/memfd:";
  constexpr absl::string_view kSuffix = " (deleted)";
  if (target.substr(0, kPrefix.size()) != kPrefix ||
      target.size() < kPrefix.size() + kSuffix.size() ||
      target.substr(target.size() - kSuffix.size()) != kSuffix) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shared array: descriptor ", fd, " is \"", target,
        "\", not a memfd: a forged handle, or descriptors mixed up"));
  }
  target.remove_prefix(kPrefix.size());
  target.remove_suffix(kSuffix.size());
  return std::string(target);
}

}  // namespace

absl::string_view SharedAccessName(SharedAccess access) {
  return access == SharedAccess::kReadOnly ? "read-only" : "read-write";
}

SharedRegion::SharedRegion(void* address, size_t size, UniqueFd fd,
                           bool writable, bool sealed, bool sealable)
    : address_(address),
      size_(size),
      fd_(std::move(fd)),
      writable_(writable),
      sealed_(sealed),
      sealable_(sealable) {}

SharedRegion::SharedRegion(SharedRegion&& other) noexcept
    : address_(std::exchange(other.address_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      fd_(std::move(other.fd_)),
      writable_(std::exchange(other.writable_, false)),
      sealed_(std::exchange(other.sealed_, false)),
      sealable_(std::exchange(other.sealable_, false)) {}

SharedRegion& SharedRegion::operator=(SharedRegion&& other) noexcept {
  if (this != &other) {
    Reset();
    address_ = std::exchange(other.address_, nullptr);
    size_ = std::exchange(other.size_, 0);
    fd_ = std::move(other.fd_);
    writable_ = std::exchange(other.writable_, false);
    sealed_ = std::exchange(other.sealed_, false);
    sealable_ = std::exchange(other.sealable_, false);
  }
  return *this;
}

SharedRegion::~SharedRegion() { Reset(); }

void SharedRegion::Reset() {
  if (address_ != nullptr) munmap(address_, size_);
  address_ = nullptr;
  size_ = 0;
  fd_.reset();
}

absl::StatusOr<SharedRegion> SharedRegion::Create(size_t size,
                                                  absl::string_view name) {
  return CreateSealed(size, name, kSizeSeals, /*sealable=*/true);
}

absl::StatusOr<SharedRegion> SharedRegion::CreateOutput(
    size_t size, absl::string_view name) {
  return CreateSealed(size, name, kSizeSeals | F_SEAL_SEAL,
                      /*sealable=*/false);
}

absl::StatusOr<SharedRegion> SharedRegion::CreateSealed(size_t size,
                                                        absl::string_view name,
                                                        int seals,
                                                        bool sealable) {
  RETURN_IF_ERROR(CheckName(name));
  if (size > static_cast<size_t>(std::numeric_limits<off_t>::max())) {
    return absl::InvalidArgumentError(
        absl::StrCat("shared array: ", size, " bytes is too big"));
  }
  const std::string name_z(name);
  UniqueFd fd(
      GetSys().MemfdCreate(name_z.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) {
    return PosixError("shared array: memfd_create", errno);
  }
  // tmpfs pages read as zeros until written: the memory is zero-filled, and
  // only the pages written cost memory.
  if (GetSys().Ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return PosixError(
        absl::StrCat("shared array: ftruncate to ", size, " bytes"), errno);
  }
  if (fcntl(fd.get(), F_ADD_SEALS, seals) != 0) {
    return PosixError("shared array: F_ADD_SEALS", errno);
  }
  void* address = nullptr;
  if (size > 0) {
    ASSIGN_OR_RETURN(address, MapFd(fd.get(), size, /*writable=*/true, nullptr,
                                    "shared array"));
  }
  return SharedRegion(address, size, std::move(fd), /*writable=*/true,
                      /*sealed=*/false, sealable);
}

absl::Status SharedRegion::Seal() {
  if (sealed_) return absl::OkStatus();
  if (!sealable_) {
    return absl::FailedPreconditionError(
        "shared array: Seal() of an output array or of one attached from "
        "another process; only an array created in this process as immutable "
        "can be sealed");
  }
  // A descriptor opened read-only: its shared mappings do not count as
  // writable, so the kernel accepts F_SEAL_WRITE while we keep reading.
  UniqueFd read_only(
      GetSys().Open(ProcFdPath(fd_.get()).c_str(), O_RDONLY | O_CLOEXEC));
  if (!read_only.valid()) {
    return PosixError(
        absl::StrCat("shared array: Seal(): reopening the memfd "
                     "read-only through ",
                     ProcFdPath(fd_.get()), " (is /proc mounted?)"),
        errno);
  }
  // Back to the writable mapping at the same address, after a failure;
  // failing that, the pointers the caller holds would reach a read-only page
  // or none. Not through GetSys(): it replaces a mapping, acquiring nothing,
  // and must not fail where a test makes the acquiring calls fail.
  auto restore = [this] {
    if (size_ == 0) return;
    void* back = ::mmap(address_, size_, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_FIXED, fd_.get(), 0);
    CHECK(back == address_ && madvise(back, size_, MADV_DONTFORK) == 0)
        << "shared array: Seal() failed and could not restore the writable "
           "mapping: "
        << strerror(errno);
  };
  if (size_ > 0) {
    absl::Status mapped = MapFd(read_only.get(), size_, /*writable=*/false,
                                address_, "shared array: Seal()")
                              .status();
    if (!mapped.ok()) {
      restore();
      return mapped;
    }
  }
  if (fcntl(fd_.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    const int error = errno;
    restore();
    if (error == EBUSY) {
      return absl::FailedPreconditionError(
          "shared array: Seal(): another mapping of the memory is writable "
          "(the array was shared read-write); an array is sealed before it is "
          "shared read-only, never after");
    }
    return PosixError("shared array: Seal(): F_ADD_SEALS", error);
  }
  fd_ = std::move(read_only);
  writable_ = false;
  sealed_ = true;
  sealable_ = false;
  return absl::OkStatus();
}

absl::StatusOr<SharedRegion> SharedRegion::Attach(
    UniqueFd fd, size_t size, SharedAccess access,
    absl::string_view expected_name) {
  const std::string what =
      absl::StrCat("shared array: attaching descriptor ", fd.get(), " ",
                   SharedAccessName(access));
  RETURN_IF_ERROR(CheckName(expected_name));
  if (access != SharedAccess::kReadOnly && access != SharedAccess::kReadWrite) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": unknown access mode ", static_cast<int>(access)));
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) {
    return PosixError(absl::StrCat(what, ": fstat"), errno);
  }
  const int seals = fcntl(fd.get(), F_GET_SEALS);
  if (!S_ISREG(st.st_mode) || seals < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what,
                     ": not a memfd that allows sealing (a forged "
                     "handle, or descriptors mixed up)"));
  }
  if (static_cast<uint64_t>(st.st_size) != size) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": it holds ", st.st_size, " bytes, the handle says ", size,
        " (a forged or mismatched handle)"));
  }
  if (!expected_name.empty()) {
    ASSIGN_OR_RETURN(std::string name, MemfdName(fd.get()));
    if (name != expected_name) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": it is buffer \"", name,
                       "\", the handle names \"", expected_name,
                       "\" (a forged or stale handle, or descriptors mixed "
                       "up)"));
    }
  }
  if ((seals & kSizeSeals) != kSizeSeals) {
    return absl::FailedPreconditionError(absl::StrCat(
        what,
        ": the memfd is not sealed against shrinking and growing, so "
        "its owner could truncate it under this mapping; create it "
        "with SharedRegion::Create"));
  }
  const bool write_sealed = (seals & F_SEAL_WRITE) != 0;
  if (access == SharedAccess::kReadOnly && !write_sealed) {
    return absl::FailedPreconditionError(absl::StrCat(
        what,
        ": the memfd is not sealed against writing, so its bytes could "
        "change under a reader; the creator must Seal() it before "
        "sharing it read-only (or share it as an output array, "
        "read-write)"));
  }
  if (access == SharedAccess::kReadWrite && write_sealed) {
    return absl::FailedPreconditionError(absl::StrCat(
        what,
        ": the memfd is sealed against writing (an immutable array); "
        "attach it read-only"));
  }
  void* address = nullptr;
  const bool writable = access == SharedAccess::kReadWrite;
  if (size > 0) {
    ASSIGN_OR_RETURN(address, MapFd(fd.get(), size, writable, nullptr, what));
  }
  return SharedRegion(address, size, std::move(fd), writable,
                      /*sealed=*/write_sealed, /*sealable=*/false);
}

}  // namespace procpool
