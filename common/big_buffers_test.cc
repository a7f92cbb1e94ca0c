#include "common/big_buffers.h"

#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace procpool {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

// The cache is process-wide: every test starts by waiting until the
// releaser has emptied it (bounded).
bool WaitUntilEmpty(absl::Duration limit = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + limit;
  while (KeptBigBuffers() != 0) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

TEST(BigBuffers, ARecycledBufferIsTheNextOneTaken) {
  ASSERT_TRUE(WaitUntilEmpty());
  std::string a = TakeBigBuffer(8 * kMiB - 100);
  EXPECT_GE(a.capacity(), 8 * kMiB);  // whole 2 MiB steps
  EXPECT_TRUE(a.empty());
  a.assign(8 * kMiB, 'x');
  const char* memory = a.data();
  RecycleBigBuffer(std::move(a));
  EXPECT_EQ(KeptBigBuffers(), 1u);
  EXPECT_GE(KeptBigBufferBytes(), 8 * kMiB);
  // A slightly longer need of the same 2 MiB class fits it too.
  std::string b = TakeBigBuffer(8 * kMiB - 10);
  EXPECT_EQ(b.data(), memory);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(KeptBigBuffers(), 0u);
}

TEST(BigBuffers, SmallOrMuchTooBigIsNotReused) {
  ASSERT_TRUE(WaitUntilEmpty());
  std::string small(64 * 1024, 'x');
  RecycleBigBuffer(std::move(small));
  EXPECT_EQ(KeptBigBuffers(), 0u);  // below kMinBigBuffer: freed
  std::string big = TakeBigBuffer(32 * kMiB);
  const char* memory = big.data();
  RecycleBigBuffer(std::move(big));
  // A need of less than half its capacity gets a buffer of its own.
  std::string other = TakeBigBuffer(4 * kMiB);
  EXPECT_NE(other.data(), memory);
  EXPECT_EQ(KeptBigBuffers(), 1u);
  // A need bigger than anything kept too.
  std::string bigger = TakeBigBuffer(64 * kMiB);
  EXPECT_NE(bigger.data(), memory);
  EXPECT_GE(bigger.capacity(), 64 * kMiB);
}

TEST(BigBuffers, KeepsAtMostSoManyAndFreesTheOldestFirst) {
  ASSERT_TRUE(WaitUntilEmpty());
  std::vector<const char*> memory;
  for (size_t i = 0; i < kMaxBigBuffers + 2; ++i) {
    std::string b = TakeBigBuffer((4 + 2 * i) * kMiB);  // 2 MiB classes
    memory.push_back(b.data());
    RecycleBigBuffer(std::move(b));  // each is too small for the next
  }
  EXPECT_EQ(KeptBigBuffers(), kMaxBigBuffers);
  EXPECT_LE(KeptBigBufferBytes(), kMaxBigBufferBytes);
  // The two oldest (4 and 6 MiB) are gone: a 4 MiB need gets the 8 MiB one.
  std::string b = TakeBigBuffer(4 * kMiB);
  EXPECT_EQ(b.data(), memory[2]);
}

TEST(BigBuffers, AnIdleCacheIsFreedByItself) {
  ASSERT_TRUE(WaitUntilEmpty());
  RecycleBigBuffer(TakeBigBuffer(8 * kMiB));
  EXPECT_EQ(KeptBigBuffers(), 1u);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(WaitUntilEmpty());
  EXPECT_GE(absl::Now() - start,
            absl::Milliseconds(kBigBufferIdleMs) - absl::Milliseconds(50));
  // And the releaser comes back for the next one.
  RecycleBigBuffer(TakeBigBuffer(8 * kMiB));
  EXPECT_EQ(KeptBigBuffers(), 1u);
  EXPECT_TRUE(WaitUntilEmpty());
}

TEST(BigBuffers, AForkedChildStartsEmpty) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "TSan does not support threads started after a fork of a "
                  "multithreaded process (tools/SANITIZERS.md)";
#endif
  ASSERT_TRUE(WaitUntilEmpty());
  RecycleBigBuffer(TakeBigBuffer(8 * kMiB));
  ASSERT_EQ(KeptBigBuffers(), 1u);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const bool empty = KeptBigBuffers() == 0 && KeptBigBufferBytes() == 0;
    RecycleBigBuffer(TakeBigBuffer(8 * kMiB));  // usable there too
    const bool kept = KeptBigBuffers() == 1;
    // And its releaser runs there.
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (KeptBigBuffers() != 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    _exit(empty && kept && KeptBigBuffers() == 0 ? 0 : 1);
  }
  EXPECT_EQ(KeptBigBuffers(), 1u);  // the parent's own, untouched
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
}  // namespace procpool
