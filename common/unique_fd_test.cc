#include "common/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <utility>

#include "gtest/gtest.h"

namespace procpool {
namespace {

// Whether `fd` names an open descriptor of this process.
bool IsOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }

int NewFd() {
  const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0);
  return fd;
}

TEST(UniqueFdTest, DefaultHoldsNothing) {
  UniqueFd fd;
  EXPECT_EQ(fd.get(), -1);
  EXPECT_FALSE(fd.valid());
  EXPECT_EQ(fd.release(), -1);
  UniqueFd negative(-5);
  EXPECT_EQ(negative.get(), -1);
}

TEST(UniqueFdTest, ClosesOnDestruction) {
  const int raw = NewFd();
  {
    UniqueFd fd(raw);
    EXPECT_TRUE(fd.valid());
    EXPECT_EQ(fd.get(), raw);
    EXPECT_TRUE(IsOpen(raw));
  }
  EXPECT_FALSE(IsOpen(raw));
}

TEST(UniqueFdTest, ReleaseHandsOnWithoutClosing) {
  const int raw = NewFd();
  {
    UniqueFd fd(raw);
    EXPECT_EQ(fd.release(), raw);
    EXPECT_EQ(fd.get(), -1);
  }
  EXPECT_TRUE(IsOpen(raw));
  close(raw);
}

TEST(UniqueFdTest, ResetClosesTheOldOne) {
  const int a = NewFd();
  const int b = NewFd();
  UniqueFd fd(a);
  fd.reset(b);
  EXPECT_FALSE(IsOpen(a));
  EXPECT_TRUE(IsOpen(b));
  EXPECT_EQ(fd.get(), b);
  fd.reset(b);  // the same one: stays open
  EXPECT_TRUE(IsOpen(b));
  fd.reset();
  EXPECT_FALSE(IsOpen(b));
  EXPECT_EQ(fd.get(), -1);
}

TEST(UniqueFdTest, MoveTransfersOwnershipOnce) {
  const int a = NewFd();
  const int b = NewFd();
  UniqueFd first(a);
  UniqueFd second(std::move(first));
  EXPECT_EQ(first.get(), -1);  // NOLINT(bugprone-use-after-move): specified
  EXPECT_EQ(second.get(), a);
  UniqueFd third(b);
  third = std::move(second);  // closes b, takes a
  EXPECT_FALSE(IsOpen(b));
  EXPECT_TRUE(IsOpen(a));
  EXPECT_EQ(third.get(), a);
  UniqueFd& alias = third;
  third = std::move(alias);  // self-move keeps it
  EXPECT_TRUE(IsOpen(a));
  EXPECT_EQ(third.get(), a);
  third.reset();
  EXPECT_FALSE(IsOpen(a));
}

TEST(UniqueFdTest, CloseFdIgnoresNegative) {
  CloseFd(-1);
  const int raw = NewFd();
  CloseFd(raw);
  EXPECT_FALSE(IsOpen(raw));
}

}  // namespace
}  // namespace procpool
