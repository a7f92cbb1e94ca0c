#include "transport/descriptor_queue.h"

#include <fcntl.h>
#include <unistd.h>

#include <vector>

#include "absl/status/status.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"

namespace procpool {
namespace {

// `n` open descriptors (pipe ends).
std::vector<UniqueFd> Fds(int n) {
  std::vector<UniqueFd> fds;
  for (int i = 0; i < n; i += 2) {
    int p[2];
    EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
    fds.emplace_back(p[0]);
    if (i + 1 < n) {
      fds.emplace_back(p[1]);
    } else {
      close(p[1]);
    }
  }
  return fds;
}

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) >= 0; }

TEST(DescriptorQueueTest, TakesOnlyWhatHandedOutFramesBrought) {
  DescriptorQueue q("t", "worker");
  std::vector<UniqueFd> came = Fds(3);
  const int first = came[0].get();
  q.Add(&came);
  EXPECT_TRUE(came.empty());
  EXPECT_EQ(q.received(), 3u);
  EXPECT_EQ(q.size(), 3u);

  // Received, but no frame handed out yet.
  absl::StatusOr<std::vector<UniqueFd>> none = q.Take(1);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(none.status().message(),
            "t: 1 descriptors asked for, but the frames handed out so far "
            "brought only 0 more from the worker");

  q.Completed(2);
  q.HandedOut(2);
  absl::StatusOr<std::vector<UniqueFd>> three = q.Take(3);
  EXPECT_EQ(three.status().message(),
            "t: 3 descriptors asked for, but the frames handed out so far "
            "brought only 2 more from the worker");
  EXPECT_EQ(q.size(), 3u);  // nothing taken

  absl::StatusOr<std::vector<UniqueFd>> two = q.Take(2);
  ASSERT_TRUE(two.ok());
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[0].get(), first);  // in order
  EXPECT_EQ(q.size(), 1u);

  ASSERT_TRUE(q.Take(0).ok());
  EXPECT_TRUE(q.Take(0)->empty());
  EXPECT_FALSE(q.Take(1).ok());
}

TEST(DescriptorQueueTest, DropIncompleteKeepsWhatCompletedFramesOwe) {
  DescriptorQueue q("t", "parent");
  std::vector<UniqueFd> came = Fds(4);
  const int third = came[2].get();
  q.Add(&came);
  q.Completed(2);  // the other two came ahead of a frame cut short
  q.DropIncomplete();
  EXPECT_EQ(q.size(), 2u);
  EXPECT_FALSE(IsOpen(third));
  q.HandedOut(2);
  EXPECT_TRUE(q.Take(2).ok());
}

TEST(DescriptorQueueTest, LoseClosesAllAndFailsTake) {
  DescriptorQueue q("t", "worker");
  std::vector<UniqueFd> came = Fds(2);
  const int first = came[0].get();
  q.Add(&came);
  q.Completed(2);
  q.HandedOut(2);
  q.Lose();
  EXPECT_TRUE(q.lost());
  EXPECT_EQ(q.size(), 0u);
  EXPECT_FALSE(IsOpen(first));
  absl::StatusOr<std::vector<UniqueFd>> taken = q.Take(1);
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(taken.status().message(),
            "t: 1 descriptors asked for, but the frames handed out so far "
            "brought only 0 more from the worker (its descriptors were "
            "inconsistent: all dropped)");

  std::vector<UniqueFd> late = Fds(1);
  const int late_fd = late[0].get();
  q.Add(&late);
  EXPECT_EQ(q.size(), 0u);
  EXPECT_FALSE(IsOpen(late_fd));
}

}  // namespace
}  // namespace procpool
