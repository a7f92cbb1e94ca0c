#include "shared_array/shared_region.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "common/sys.h"
#include "common/unique_fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shared_array/test_util.h"

namespace procpool {
namespace {

using shared_array_testing::ArrayMappingCount;
using shared_array_testing::FdCount;
using shared_array_testing::WaitChild;
using ::testing::HasSubstr;

constexpr char kName[] = "procpool-array:test";
constexpr size_t kBytes = 3 * 4096 + 100;  // not a whole number of pages

UniqueFd Dup(int fd) { return UniqueFd(fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

SharedRegion MustCreate(size_t size) {
  absl::StatusOr<SharedRegion> region = SharedRegion::Create(size, kName);
  EXPECT_TRUE(region.ok()) << region.status();
  return *std::move(region);
}

TEST(SharedRegionTest, CreateIsZeroFilledWritableAndFixedInSize) {
  SharedRegion region = MustCreate(kBytes);
  ASSERT_NE(region.address(), nullptr);
  EXPECT_EQ(region.size(), kBytes);
  EXPECT_TRUE(region.writable());
  EXPECT_FALSE(region.sealed());
  const char* p = static_cast<const char*>(region.address());
  for (size_t i = 0; i < kBytes; ++i) ASSERT_EQ(p[i], 0) << i;
  std::memset(region.address(), 7, kBytes);
  EXPECT_NE(ftruncate(region.fd(), 1), 0);  // F_SEAL_SHRINK
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(ftruncate(region.fd(), 2 * kBytes), 0);  // F_SEAL_GROW
  EXPECT_EQ(errno, EPERM);
}

TEST(SharedRegionTest, ZeroBytesHasAMemfdAndNoMapping) {
  SharedRegion region = MustCreate(0);
  EXPECT_EQ(region.address(), nullptr);
  EXPECT_GE(region.fd(), 0);
  ASSERT_TRUE(region.Seal().ok());
  absl::StatusOr<SharedRegion> view =
      SharedRegion::Attach(Dup(region.fd()), 0, SharedAccess::kReadOnly, kName);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->address(), nullptr);
  EXPECT_EQ(view->size(), 0u);
}

TEST(SharedRegionTest, SealKeepsAddressAndBytesAndRefusesEveryWrite) {
  SharedRegion region = MustCreate(kBytes);
  UniqueFd read_write = Dup(region.fd());  // taken before the seal
  void* address = region.address();
  std::memset(address, 'a', kBytes);
  ASSERT_TRUE(region.Seal().ok());
  EXPECT_EQ(region.address(), address);
  EXPECT_FALSE(region.writable());
  EXPECT_TRUE(region.sealed());
  EXPECT_EQ(static_cast<const char*>(address)[kBytes - 1], 'a');
  EXPECT_EQ(fcntl(region.fd(), F_GETFL) & O_ACCMODE, O_RDONLY);
  EXPECT_EQ(fcntl(region.fd(), F_GET_SEALS),
            F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  ASSERT_TRUE(region.Seal().ok());  // idempotent

  // Even through a read-write descriptor: no writable shared mapping ...
  void* w = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED,
                 read_write.get(), 0);
  EXPECT_EQ(w, MAP_FAILED);
  EXPECT_EQ(errno, EPERM);
  // ... no mprotect of a read-only one to writable ...
  void* r = mmap(nullptr, kBytes, PROT_READ, MAP_SHARED, read_write.get(), 0);
  ASSERT_NE(r, MAP_FAILED);
  EXPECT_NE(mprotect(r, kBytes, PROT_READ | PROT_WRITE), 0);
  EXPECT_EQ(errno, EACCES);
  munmap(r, kBytes);
  EXPECT_NE(mprotect(address, kBytes, PROT_READ | PROT_WRITE), 0);
  // ... and no write(2).
  EXPECT_EQ(pwrite(read_write.get(), "x", 1, 0), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(static_cast<const char*>(address)[0], 'a');
}

TEST(SharedRegionTest,
     SealFailsWhileAnotherMappingIsWritableAndChangesNothing) {
  SharedRegion region = MustCreate(kBytes);
  UniqueFd other = Dup(region.fd());
  void* elsewhere =
      mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, other.get(), 0);
  ASSERT_NE(elsewhere, MAP_FAILED);
  absl::Status sealed = region.Seal();
  EXPECT_EQ(sealed.code(), absl::StatusCode::kFailedPrecondition) << sealed;
  EXPECT_THAT(sealed.message(), HasSubstr("writable"));
  EXPECT_TRUE(region.writable());
  static_cast<char*>(region.address())[0] = 'z';  // still writable here
  EXPECT_EQ(static_cast<char*>(elsewhere)[0], 'z');
  munmap(elsewhere, kBytes);
  EXPECT_TRUE(region.Seal().ok());
}

TEST(SharedRegionTest, OutputRegionsAndAttachedOnesCannotBeSealed) {
  absl::StatusOr<SharedRegion> out = SharedRegion::CreateOutput(kBytes, kName);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->Seal().code(), absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<SharedRegion> view = SharedRegion::Attach(
      Dup(out->fd()), kBytes, SharedAccess::kReadWrite, kName);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->Seal().code(), absl::StatusCode::kFailedPrecondition);
  // Both mappings are the same memory.
  static_cast<char*>(view->address())[5] = 'q';
  EXPECT_EQ(static_cast<char*>(out->address())[5], 'q');
}

TEST(SharedRegionTest, ReadOnlyAttachOfAnUnsealedBufferIsRefused) {
  SharedRegion region = MustCreate(kBytes);
  absl::StatusOr<SharedRegion> view = SharedRegion::Attach(
      Dup(region.fd()), kBytes, SharedAccess::kReadOnly, kName);
  EXPECT_EQ(view.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(view.status().message(), HasSubstr("not sealed against writing"));
}

TEST(SharedRegionTest, ReadWriteAttachOfASealedBufferIsRefused) {
  SharedRegion region = MustCreate(kBytes);
  ASSERT_TRUE(region.Seal().ok());
  absl::StatusOr<SharedRegion> view = SharedRegion::Attach(
      Dup(region.fd()), kBytes, SharedAccess::kReadWrite, kName);
  EXPECT_EQ(view.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(view.status().message(), HasSubstr("attach it read-only"));
}

TEST(SharedRegionTest, AttachChecksSizeNameKindAndSeals) {
  SharedRegion region = MustCreate(kBytes);
  ASSERT_TRUE(region.Seal().ok());
  absl::StatusOr<SharedRegion> view = SharedRegion::Attach(
      Dup(region.fd()), kBytes + 1, SharedAccess::kReadOnly, kName);
  EXPECT_EQ(view.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(view.status().message(), HasSubstr("the handle says"));

  view = SharedRegion::Attach(Dup(region.fd()), kBytes, SharedAccess::kReadOnly,
                              "procpool-array:other");
  EXPECT_EQ(view.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(view.status().message(), HasSubstr("procpool-array:other"));

  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd write_end(pipe_fds[1]);
  view = SharedRegion::Attach(UniqueFd(pipe_fds[0]), 0, SharedAccess::kReadOnly,
                              kName);
  EXPECT_EQ(view.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(view.status().message(), HasSubstr("not a memfd"));

  // A memfd that its owner could still truncate.
  UniqueFd loose(memfd_create(kName + 15, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(ftruncate(loose.get(), 4096), 0);
  view = SharedRegion::Attach(std::move(loose), 4096, SharedAccess::kReadWrite,
                              "test");
  EXPECT_EQ(view.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(view.status().message(), HasSubstr("shrinking"));
}

TEST(SharedRegionTest, ReadOnlyAttachInAnotherProcessDiesOfSigsegvOnWrite) {
  SharedRegion region = MustCreate(kBytes);
  static_cast<char*>(region.address())[0] = 'r';
  ASSERT_TRUE(region.Seal().ok());
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The parent's mapping is not inherited (MADV_DONTFORK) ...
    if (ArrayMappingCount() != 0) _exit(2);
    // ... the child maps the memfd it was given, reads it, then writes.
    absl::StatusOr<SharedRegion> view = SharedRegion::Attach(
        UniqueFd(dup(region.fd())), kBytes, SharedAccess::kReadOnly, kName);
    if (!view.ok()) _exit(3);
    volatile char* p = static_cast<char*>(view->address());
    if (p[0] != 'r') _exit(4);
    signal(SIGSEGV, SIG_DFL);  // a sanitizer's handler would exit instead
    p[0] = 'w';
    _exit(0);
  }
  std::optional<int> status = WaitChild(pid, absl::Seconds(30));
  ASSERT_TRUE(status.has_value()) << "the child did not end in 30 s";
  ASSERT_TRUE(WIFSIGNALED(*status)) << "exit code " << WEXITSTATUS(*status);
  EXPECT_EQ(WTERMSIG(*status), SIGSEGV);
  EXPECT_EQ(static_cast<const char*>(region.address())[0], 'r');
}

TEST(SharedRegionTest, LastOwnerUnmapsAndClosesEverything) {
  const int fds = FdCount();
  {
    SharedRegion a = MustCreate(kBytes);
    SharedRegion zero = MustCreate(0);
    ASSERT_TRUE(a.Seal().ok());
    absl::StatusOr<SharedRegion> view = SharedRegion::Attach(
        Dup(a.fd()), kBytes, SharedAccess::kReadOnly, kName);
    ASSERT_TRUE(view.ok());
    SharedRegion moved = std::move(*view);
    EXPECT_EQ(ArrayMappingCount(), 2);
    EXPECT_EQ(FdCount(), fds + 3);
  }
  EXPECT_EQ(FdCount(), fds);
  // The regions' own mappings (all of /proc/self/maps would count the
  // allocator's too, which a sanitizer's maps as the test runs).
  EXPECT_EQ(ArrayMappingCount(), 0);
}

// The Sys seam: each acquiring call fails as the kernel would.
class FailingSys : public SysWrapper {
 public:
  using SysWrapper::SysWrapper;
  int MemfdCreate(const char* name, unsigned int flags) override {
    if (memfd_errno != 0) return Fail(memfd_errno);
    return SysWrapper::MemfdCreate(name, flags);
  }
  int Ftruncate(int fd, off_t length) override {
    if (ftruncate_errno != 0) return Fail(ftruncate_errno);
    return SysWrapper::Ftruncate(fd, length);
  }
  int Open(const char* path, int flags) override {
    if (open_errno != 0) return Fail(open_errno);
    return SysWrapper::Open(path, flags);
  }
  void* Mmap(void* address, size_t length, int protection, int flags, int fd,
             off_t offset) override {
    if (mmap_errno != 0) {
      errno = mmap_errno;
      return MAP_FAILED;
    }
    return SysWrapper::Mmap(address, length, protection, flags, fd, offset);
  }
  int memfd_errno = 0, ftruncate_errno = 0, open_errno = 0, mmap_errno = 0;

 private:
  static int Fail(int error) {
    errno = error;
    return -1;
  }
};

TEST(SharedRegionTest, ExhaustionIsResourceExhaustedWithAdviceAndLeaksNothing) {
  FailingSys failing(&GetSys());
  ScopedSys installed(&failing);
  const int fds = FdCount();
  const int maps = ArrayMappingCount();

  failing.memfd_errno = EMFILE;
  absl::Status s = SharedRegion::Create(kBytes, kName).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(s.message(), HasSubstr("memfd_create"));
  EXPECT_THAT(s.message(), HasSubstr("ulimit -n"));
  failing.memfd_errno = 0;

  failing.ftruncate_errno = ENOSPC;
  s = SharedRegion::Create(kBytes, kName).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(s.message(), HasSubstr("ftruncate"));
  failing.ftruncate_errno = 0;

  failing.mmap_errno = ENOMEM;
  s = SharedRegion::Create(kBytes, kName).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(s.message(), HasSubstr("mmap"));
  failing.mmap_errno = 0;
  EXPECT_EQ(FdCount(), fds);
  EXPECT_EQ(ArrayMappingCount(), maps);

  // A failed Seal leaves the region writable, at the same address.
  SharedRegion region = MustCreate(kBytes);
  void* address = region.address();
  failing.open_errno = EMFILE;
  s = region.Seal();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  failing.open_errno = 0;
  failing.mmap_errno = ENOMEM;
  s = region.Seal();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  failing.mmap_errno = 0;
  EXPECT_TRUE(region.writable());
  EXPECT_EQ(region.address(), address);
  static_cast<char*>(address)[0] = 1;
  EXPECT_EQ(FdCount(), fds + 1);
  ASSERT_TRUE(region.Seal().ok());

  // Attach: a failed mmap closes the descriptor it was given.
  failing.mmap_errno = ENOMEM;
  s = SharedRegion::Attach(Dup(region.fd()), kBytes, SharedAccess::kReadOnly,
                           kName)
          .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  failing.mmap_errno = 0;
  EXPECT_EQ(FdCount(), fds + 1);
}

}  // namespace
}  // namespace procpool
