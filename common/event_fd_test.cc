#include "common/event_fd.h"

#include <fcntl.h>
#include <poll.h>

#include <thread>

#include "gtest/gtest.h"

namespace procpool {
namespace {

bool Readable(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

TEST(EventFdTest, MadeNonBlockingAndCloseOnExec) {
  absl::StatusOr<UniqueFd> fd = MakeEventFd("test");
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_TRUE(fd->valid());
  EXPECT_NE(fcntl(fd->get(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(fcntl(fd->get(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_FALSE(Readable(fd->get()));
}

TEST(EventFdTest, SignalThenDrain) {
  absl::StatusOr<UniqueFd> fd = MakeEventFd("test");
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_FALSE(DrainEventFd(fd->get()));  // unset: returns at once
  SignalEventFd(fd->get());
  SignalEventFd(fd->get());
  EXPECT_TRUE(Readable(fd->get()));
  EXPECT_TRUE(DrainEventFd(fd->get()));  // both signals in one read
  EXPECT_FALSE(Readable(fd->get()));
  EXPECT_FALSE(DrainEventFd(fd->get()));
}

TEST(EventFdTest, InitialCount) {
  absl::StatusOr<UniqueFd> fd = MakeEventFd("test", 1);
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_TRUE(Readable(fd->get()));
  EXPECT_TRUE(DrainEventFd(fd->get()));
  EXPECT_FALSE(Readable(fd->get()));
}

TEST(EventFdTest, WakesAnotherThread) {
  absl::StatusOr<UniqueFd> fd = MakeEventFd("test");
  ASSERT_TRUE(fd.ok()) << fd.status();
  std::thread waker([&fd] { SignalEventFd(fd->get()); });
  struct pollfd p = {fd->get(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 10'000), 1);  // bounded wait
  waker.join();
  EXPECT_TRUE(DrainEventFd(fd->get()));
}

TEST(EventFdTest, DrainOfABadDescriptorIsFalse) {
  EXPECT_FALSE(DrainEventFd(-1));
}

}  // namespace
}  // namespace procpool
