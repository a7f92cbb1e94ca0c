#include <errno.h>
#include <unistd.h>

#include "common/posix_error.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"

namespace procpool {
namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::Status Check(int x) {
  RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusMacros, Propagate) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().message(), "odd");
  EXPECT_TRUE(Check(2).ok());
  EXPECT_FALSE(Check(3).ok());
}

TEST(PosixError, MapsCodes) {
  EXPECT_TRUE(absl::IsNotFound(PosixError("open x", ENOENT)));
  EXPECT_TRUE(absl::IsPermissionDenied(PosixError("open x", EACCES)));
  EXPECT_TRUE(absl::IsUnavailable(PosixError("write", EPIPE)));
  EXPECT_EQ(PosixError("open x", ENOENT).message(),
            "open x: No such file or directory");
}

TEST(ReadWriteFully, RoundTripAndEof) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  ASSERT_TRUE(WriteFully(fds[1], "hello", 5).ok());
  char buf[8];
  ASSERT_TRUE(ReadFully(fds[0], buf, 5).ok());
  EXPECT_EQ(std::string(buf, 5), "hello");
  ASSERT_TRUE(WriteFully(fds[1], "ab", 2).ok());
  close(fds[1]);
  EXPECT_TRUE(absl::IsDataLoss(ReadFully(fds[0], buf, 4)));
  EXPECT_TRUE(absl::IsUnavailable(ReadFully(fds[0], buf, 4)));
  close(fds[0]);
}

}  // namespace
}  // namespace procpool
