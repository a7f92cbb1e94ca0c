#include "transport/shm/shm_segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"
#include "transport/shm/shm_ring.h"

namespace procpool {
namespace shm_internal {
namespace {

constexpr uint64_t kRing = kShmMinRingBytes;

// A memfd of `bytes` with `seals` added (0: none).
UniqueFd Memfd(size_t bytes, int seals) {
  UniqueFd fd(
      memfd_create("shm-segment-test", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(ftruncate(fd.get(), static_cast<off_t>(bytes)), 0);
  if (seals != 0) {
    EXPECT_EQ(fcntl(fd.get(), F_ADD_SEALS, seals), 0);
  }
  return fd;
}

TEST(ShmSegmentTest, RingSizes) {
  EXPECT_TRUE(ValidRingBytes(kShmMinRingBytes));
  EXPECT_TRUE(ValidRingBytes(kShmMaxRingBytes));
  EXPECT_TRUE(ValidRingBytes(1 << 20));
  EXPECT_FALSE(ValidRingBytes(0));
  EXPECT_FALSE(ValidRingBytes(kShmMinRingBytes / 2));
  EXPECT_FALSE(ValidRingBytes(kShmMaxRingBytes * 2));
  EXPECT_FALSE(ValidRingBytes(3 * kShmMinRingBytes));  // not a power of 2
  EXPECT_EQ(SegmentBytes(kRing), kShmControlBytes + 2 * kRing);
}

TEST(ShmSegmentTest, CreateSealsMapsAndWritesTheConstants) {
  UniqueFd memfd;
  absl::StatusOr<ShmSegment> segment = ShmSegment::Create(kRing, &memfd);
  ASSERT_TRUE(segment.ok()) << segment.status();
  ASSERT_TRUE(memfd.valid());
  EXPECT_NE(fcntl(memfd.get(), F_GETFD) & FD_CLOEXEC, 0);
  const int seals = fcntl(memfd.get(), F_GET_SEALS);
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
            F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  EXPECT_TRUE(CheckSealedMemfd(memfd.get(), kRing).ok());
  const ShmControl* control = segment->control();
  EXPECT_EQ(control->constants.magic, kControlMagic);
  EXPECT_EQ(control->constants.version, kControlVersion);
  EXPECT_EQ(control->constants.control_bytes, kShmControlBytes);
  EXPECT_EQ(control->constants.ring_bytes, kRing);
  EXPECT_EQ(control->to_child.head.value.load(), 0u);
  EXPECT_EQ(segment->ring_bytes(), kRing);
  EXPECT_EQ(segment->ring_to_parent() - segment->ring_to_child(),
            static_cast<ptrdiff_t>(kRing));
  // The seals hold: the memfd can neither shrink nor grow.
  EXPECT_NE(ftruncate(memfd.get(), 0), 0);
  EXPECT_NE(ftruncate(memfd.get(), SegmentBytes(kRing) * 2), 0);
}

TEST(ShmSegmentTest, MapSeesWhatCreateWrote) {
  UniqueFd memfd;
  absl::StatusOr<ShmSegment> parent = ShmSegment::Create(kRing, &memfd);
  ASSERT_TRUE(parent.ok()) << parent.status();
  absl::StatusOr<ShmSegment> child =
      ShmSegment::Map(memfd.get(), kRing, "shm/1;ring=4096");
  ASSERT_TRUE(child.ok()) << child.status();
  memfd.reset();  // the mappings keep the memory
  parent->ring_to_child()[7] = 'x';
  parent->control()->to_child.head.value.store(8);
  EXPECT_EQ(child->ring_to_child()[7], 'x');
  EXPECT_EQ(child->control()->to_child.head.value.load(), 8u);
  // Moving keeps the one mapping.
  ShmSegment moved(std::move(*child));
  EXPECT_EQ(moved.ring_to_child()[7], 'x');
}

TEST(ShmSegmentTest, CheckRejectsWrongSizes) {
  const int seals = F_SEAL_SHRINK | F_SEAL_GROW;
  for (size_t bytes : {size_t{0}, SegmentBytes(kRing) - 1,
                       SegmentBytes(kRing) + 4096, SegmentBytes(2 * kRing)}) {
    UniqueFd fd = Memfd(bytes, seals);
    const absl::Status s = CheckSealedMemfd(fd.get(), kRing);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bytes;
    EXPECT_TRUE(absl::StrContains(s.message(), "is not a sealed memfd of"))
        << s;
  }
}

TEST(ShmSegmentTest, CheckRejectsAMemfdNotSealedAgainstShrinking) {
  for (int seals : {0, F_SEAL_GROW, F_SEAL_WRITE}) {
    UniqueFd fd = Memfd(SegmentBytes(kRing), seals);
    EXPECT_EQ(CheckSealedMemfd(fd.get(), kRing).code(),
              absl::StatusCode::kInvalidArgument)
        << seals;
  }
  UniqueFd ok = Memfd(SegmentBytes(kRing), F_SEAL_SHRINK);
  EXPECT_TRUE(CheckSealedMemfd(ok.get(), kRing).ok());
}

TEST(ShmSegmentTest, CheckRejectsOtherDescriptors) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  EXPECT_EQ(CheckSealedMemfd(r.get(), kRing).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(CheckSealedMemfd(-1, kRing).ok());  // fstat fails
}

TEST(ShmSegmentTest, MapRejectsAnotherLayout) {
  // Sealed and of the right size, but no control page (all zero).
  UniqueFd zero = Memfd(SegmentBytes(kRing), F_SEAL_SHRINK | F_SEAL_GROW);
  absl::StatusOr<ShmSegment> s = ShmSegment::Map(zero.get(), kRing, "spec-x");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.status().message(), "\"spec-x\""))
      << s.status();
  // A real segment read with another ring size (the constants disagree).
  UniqueFd memfd;
  absl::StatusOr<ShmSegment> made = ShmSegment::Create(2 * kRing, &memfd);
  ASSERT_TRUE(made.ok()) << made.status();
  absl::StatusOr<ShmSegment> other =
      ShmSegment::Map(memfd.get(), kRing, "shm/1;ring=4096");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shm_internal
}  // namespace procpool
