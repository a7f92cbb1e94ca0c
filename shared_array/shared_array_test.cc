#include "shared_array/shared_array.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/time/time.h"
#include "common/sys.h"
#include "common/unique_fd.h"
#include "core/errors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shared_array/handle.h"
#include "shared_array/test_util.h"

namespace procpool {
namespace {

using shared_array_testing::ArrayMappingCount;
using shared_array_testing::FdCount;
using shared_array_testing::MapsLineCount;
using shared_array_testing::WaitChild;
using ::testing::HasSubstr;

struct Point {
  int32_t x, y;
};

UniqueFd Dup(int fd) { return UniqueFd(fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

TEST(SharedArrayTest, ZeroFilledWithSizeAndElementAccess) {
  SharedArray<double> a(1 << 20);
  EXPECT_EQ(a.size(), size_t{1} << 20);
  EXPECT_FALSE(a.empty());
  EXPECT_TRUE(a.writable());
  EXPECT_EQ(a.mode(), SharedArrayMode::kImmutable);
  for (double x : a) ASSERT_EQ(x, 0.0);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<double>(i);
  EXPECT_EQ(&a[7], a.data() + 7);
  EXPECT_EQ(a.span()[12345], 12345.0);
  const SharedArray<double>& c = a;
  static_assert(std::is_same<decltype(c.data()), const double*>::value, "");
  static_assert(std::is_same<decltype(c[0]), const double&>::value, "");
  static_assert(std::is_same<decltype(a[0]), double&>::value, "");
  EXPECT_EQ(c[99], 99.0);
}

TEST(SharedArrayTest, DefaultConstructedHoldsNothingAndCannotBeShared) {
  SharedArray<int> a;
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.Share().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(SharedArrayTest, ZeroLengthWorksEverywhere) {
  SharedArray<int> a(0);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.begin(), a.end());
  absl::StatusOr<SharedArrayHandle> h = a.Share();
  ASSERT_TRUE(h.ok()) << h.status();
  absl::StatusOr<SharedArray<int>> b =
      SharedArray<int>::Attach(*h, Dup(a.buffer().fd()));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->size(), 0u);
}

TEST(SharedArrayTest, CopiesShareMemory) {
  SharedArray<int64_t> a(100);
  SharedArray<int64_t> b = a;
  b[3] = 42;
  EXPECT_EQ(a[3], 42);
  EXPECT_EQ(a.data(), b.data());
  EXPECT_EQ(a.buffer().use_count(), 2);
  SharedArray<int64_t> c = std::move(b);
  EXPECT_EQ(a.buffer().use_count(), 2);
  EXPECT_EQ(a.buffer().id(), c.buffer().id());
}

TEST(SharedArrayTest, LastCopyUnmapsAndCloses) {
  const int fds = FdCount();
  {
    SharedArray<double> a(1 << 16);
    SharedBytes bytes(0);
    std::vector<SharedArray<double>> copies(10, a);
    ASSERT_TRUE(a.Share().ok());
    absl::StatusOr<SharedArray<double>> view =
        SharedArray<double>::Attach(*a.Share(), Dup(a.buffer().fd()));
    ASSERT_TRUE(view.ok()) << view.status();
    EXPECT_EQ(ArrayMappingCount(), 2);
    EXPECT_EQ(FdCount(), fds + 3);
    copies.clear();
    EXPECT_EQ(ArrayMappingCount(), 2);  // `a` still holds it
  }
  EXPECT_EQ(FdCount(), fds);
  // The arrays' own mappings (all of /proc/self/maps would count the
  // allocator's too: TSan's maps memory as the test runs).
  EXPECT_EQ(ArrayMappingCount(), 0);
}

TEST(SharedArrayTest, ShareSealsAnImmutableArrayInPlace) {
  SharedArray<double> a(1000);
  a[1] = 2.5;
  const double* before = a.data();
  absl::StatusOr<SharedArrayHandle> h = a.Share();
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->access, SharedAccess::kReadOnly);
  EXPECT_EQ(h->type_name, "f64");
  EXPECT_EQ(h->element_size, 8u);
  EXPECT_EQ(h->byte_size, 8000u);
  EXPECT_EQ(h->id, a.buffer().id());
  EXPECT_FALSE(a.writable());
  EXPECT_EQ(a.data(), before);
  EXPECT_EQ(a[1], 2.5);
  EXPECT_NE(mprotect(a.data(), 8000, PROT_READ | PROT_WRITE), 0);
  void* w = mmap(nullptr, 8000, PROT_READ | PROT_WRITE, MAP_SHARED,
                 a.buffer().fd(), 0);
  EXPECT_EQ(w, MAP_FAILED);
}

TEST(SharedArrayDeathTest, TheCreatorWritingAfterShareDiesOfSigsegv) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // re-runs the test body
  EXPECT_EXIT(
      {
        SharedArray<double> a(1000);
        a[0] = 1;
        if (!a.Share().ok()) _exit(1);
        signal(SIGSEGV, SIG_DFL);  // a sanitizer's handler would exit instead
        a[0] = 2;
        _exit(0);
      },
      ::testing::KilledBySignal(SIGSEGV), "");
}

TEST(SharedArrayTest, ConcurrentSharesSealOnce) {
  SharedArray<int> a(4096);
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<SharedArrayHandle>> handles(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { handles[i] = a.Share(); });
  }
  for (std::thread& t : threads) t.join();
  for (const auto& h : handles) {
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_EQ(h->id, a.buffer().id());
  }
}

// numpy's out=: two processes write disjoint halves, the creator reads them
// once both are done.
TEST(SharedArrayTest, OutputArrayTakesDisjointSlicesFromOtherProcesses) {
  constexpr size_t kN = 1 << 16;
  SharedArray<double> in(kN);
  for (size_t i = 0; i < kN; ++i) in[i] = static_cast<double>(i);
  SharedArray<double> out(kN, SharedArrayMode::kOutput);
  absl::StatusOr<SharedArrayHandle> in_h = in.Share();
  absl::StatusOr<SharedArrayHandle> out_h = out.Share();
  ASSERT_TRUE(in_h.ok() && out_h.ok());
  EXPECT_EQ(out_h->access, SharedAccess::kReadWrite);
  EXPECT_TRUE(out.writable());
  std::vector<pid_t> children;
  for (size_t part = 0; part < 2; ++part) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      absl::StatusOr<SharedArray<double>> x =
          SharedArray<double>::Attach(*in_h, Dup(in.buffer().fd()));
      absl::StatusOr<SharedArray<double>> y =
          SharedArray<double>::Attach(*out_h, Dup(out.buffer().fd()));
      if (!x.ok() || !y.ok() || x->writable() || !y->writable()) _exit(3);
      for (size_t i = part * kN / 2; i < (part + 1) * kN / 2; ++i) {
        (*y)[i] = 2 * (*x)[i];
      }
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    std::optional<int> status = WaitChild(pid, absl::Seconds(30));
    ASSERT_TRUE(status.has_value()) << "a child did not end in 30 s";
    ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  }
  for (size_t i = 0; i < kN; ++i) ASSERT_EQ(out[i], 2.0 * i) << i;
}

TEST(SharedArrayTest, AttachRefusesWrongTypeWrongSizeAndAnotherBuffersFd) {
  SharedArray<double> a(100);
  SharedArray<double> b(100);
  absl::StatusOr<SharedArrayHandle> h = a.Share();
  ASSERT_TRUE(h.ok() && b.Share().ok());

  absl::Status s =
      SharedArray<float>::Attach(*h, Dup(a.buffer().fd())).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("holds f64"));

  SharedArrayHandle bigger = *h;
  bigger.byte_size += 8;
  s = SharedArray<double>::Attach(bigger, Dup(a.buffer().fd())).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("the handle says 808"));

  s = SharedArray<double>::Attach(*h, Dup(b.buffer().fd())).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr(b.buffer().id().ToString()));

  SharedArrayHandle read_write = *h;
  read_write.access = SharedAccess::kReadWrite;
  s = SharedArray<double>::Attach(read_write, Dup(a.buffer().fd())).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);

  EXPECT_EQ(SharedArray<int64_t>::FromBuffer(a.buffer()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(SharedArray<double>::FromBuffer(a.buffer()).ok());
}

TEST(SharedArrayTest, TypeNames) {
  EXPECT_EQ(SharedArrayTypeName<double>(), "f64");
  EXPECT_EQ(SharedArrayTypeName<float>(), "f32");
  EXPECT_EQ(SharedArrayTypeName<int64_t>(), "i64");
  EXPECT_EQ(SharedArrayTypeName<uint8_t>(), "u8");
  EXPECT_EQ(SharedArrayTypeName<std::byte>(), "byte");
  EXPECT_EQ(SharedArrayTypeName<Point>(), typeid(Point).name());
  SharedArray<Point> points(3);
  points[2].y = 7;
  EXPECT_EQ(points[2].y, 7);
  EXPECT_EQ(SharedBytes(5).size(), 5u);
}

class FailMemfd : public SysWrapper {
 public:
  using SysWrapper::SysWrapper;
  int MemfdCreate(const char*, unsigned int) override {
    errno = EMFILE;
    return -1;
  }
};

TEST(SharedArrayTest, FailuresAreClearAndLeakNothing) {
  const int fds = FdCount();
  {
    FailMemfd failing(&GetSys());
    ScopedSys installed(&failing);
    absl::Status s = SharedArray<double>::Create(10).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
    EXPECT_THAT(s.message(), HasSubstr("ulimit -n"));
    try {
      SharedArray<double> a(10);
      ADD_FAILURE() << "no exception";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr("memfd_create"));
    }
  }
  absl::Status s =
      SharedArray<double>::Create(std::numeric_limits<size_t>::max() / 4)
          .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(FdCount(), fds);
}

}  // namespace
}  // namespace procpool

namespace procpool {
namespace {

// A buffer that comes back to the process that holds it (a task returns the
// array it was given) is found as that buffer, with no second mapping; a
// handle that disagrees with the live buffer is refused.
TEST(SharedBufferTest, FindLiveIsTheBufferHeldHere) {
  SharedArray<double> a(1024);
  a[5] = 2.5;
  absl::StatusOr<SharedArrayHandle> h = a.Share();
  ASSERT_TRUE(h.ok()) << h.status();
  const int maps = shared_array_testing::ArrayMappingCount();
  absl::StatusOr<SharedBuffer> back = SharedBuffer::FindLive(*h);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->address(), a.data());
  EXPECT_EQ(shared_array_testing::ArrayMappingCount(), maps);
  SharedArrayHandle bigger = *h;
  bigger.byte_size += 8;
  EXPECT_EQ(SharedBuffer::FindLive(bigger).status().code(),
            absl::StatusCode::kInvalidArgument);
  SharedArrayHandle writable = *h;
  writable.access = SharedAccess::kReadWrite;
  EXPECT_EQ(SharedBuffer::FindLive(writable).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Once every copy is gone, it is not held here any more.
  a = SharedArray<double>();
  *back = SharedBuffer();
  EXPECT_EQ(SharedBuffer::FindLive(*h).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace procpool
