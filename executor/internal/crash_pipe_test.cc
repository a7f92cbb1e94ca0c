#include "executor/internal/crash_pipe.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace procpool {
namespace internal {
namespace {

class CrashPipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(pipe2(fds_, O_CLOEXEC | O_NONBLOCK), 0);
  }
  void TearDown() override {
    close(fds_[0]);
    if (fds_[1] >= 0) close(fds_[1]);
  }
  void Write(const std::string& bytes) {
    ASSERT_EQ(write(fds_[1], bytes.data(), bytes.size()),
              static_cast<ssize_t>(bytes.size()));
  }
  int fds_[2] = {-1, -1};
};

TEST_F(CrashPipeTest, NothingToRead) {
  std::string report;
  EXPECT_FALSE(ReadCrashPipe(fds_[0], &report));
  EXPECT_TRUE(report.empty());
  EXPECT_FALSE(ReadCrashPipe(-1, &report));
}

TEST_F(CrashPipeTest, HeartbeatsAreNotPartOfTheReport) {
  std::string report = "earlier ";
  Write(std::string("\0SIGSEGV\0 at\0", 13));
  EXPECT_TRUE(ReadCrashPipe(fds_[0], &report));
  EXPECT_EQ(report, "earlier SIGSEGV at");
  // Drained: nothing more.
  EXPECT_FALSE(ReadCrashPipe(fds_[0], &report));
}

TEST_F(CrashPipeTest, AReportWithoutHeartbeatAndEndOfFile) {
  std::string report;
  Write("stack");
  close(fds_[1]);
  fds_[1] = -1;
  EXPECT_FALSE(ReadCrashPipe(fds_[0], &report));
  EXPECT_EQ(report, "stack");
}

TEST_F(CrashPipeTest, MoreThanOneBuffer) {
  std::string big(10000, 'x');
  big[9999] = '\0';
  Write(big);
  std::string report;
  EXPECT_TRUE(ReadCrashPipe(fds_[0], &report));
  EXPECT_EQ(report.size(), 9999u);
}

}  // namespace
}  // namespace internal
}  // namespace procpool
