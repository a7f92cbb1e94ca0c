#include "cluster/mpirun_watch.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace procpool {
namespace cluster {
namespace {

// A stand-in for a hung mpirun: bash copied to a file named "mpirun" (so
// that /proc/PID/comm says mpirun), which ignores the first SIGINT as mpirun
// does ("Abort is in progress") and exits 1 on the second, writing how many
// it got to `count_file`.
pid_t StartFakeMpirun(const std::string& dir, const std::string& count_file) {
  const std::string fake = dir + "/mpirun";
  const std::string copy = "cp /bin/bash " + fake;
  EXPECT_EQ(system(copy.c_str()), 0);
  const std::string script =
      "n=0; trap 'n=$((n+1)); echo $n > " + count_file +
      "; [ $n -ge 2 ] && exit 1' INT; for i in $(seq 600); do sleep 0.1; done";
  const pid_t pid = fork();
  if (pid == 0) {
    execl(fake.c_str(), fake.c_str(), "-c", script.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

std::string TestDir() {
  const char* dir = getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

TEST(MpirunWatchTest, RecognisesMpirunByName) {
  EXPECT_FALSE(IsMpirun(getpid()));
  EXPECT_FALSE(IsMpirun(1));
  const std::string dir = TestDir() + "/recognise";
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  const pid_t fake = StartFakeMpirun(dir, dir + "/count");
  absl::SleepFor(absl::Milliseconds(200));  // exec'd
  EXPECT_TRUE(IsMpirun(fake));
  kill(fake, SIGKILL);
  waitpid(fake, nullptr, 0);
  EXPECT_FALSE(IsMpirun(fake));
}

TEST(MpirunWatchTest, ALingeringMpirunGetsTwoSigints) {
  const std::string dir = TestDir() + "/linger";
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  const std::string count_file = dir + "/count";
  const pid_t fake = StartFakeMpirun(dir, count_file);
  absl::SleepFor(absl::Milliseconds(200));
  ASSERT_TRUE(IsMpirun(fake));
  const absl::Time start = absl::Now();
  EndMpirunIfItLingers(fake, absl::Milliseconds(300));
  // Not before the grace period: it may still end by itself.
  int status = 0;
  EXPECT_EQ(waitpid(fake, &status, WNOHANG), 0);
  // Then two SIGINTs, half a second apart: it ends.
  pid_t done = 0;
  while ((done = waitpid(fake, &status, WNOHANG)) == 0 &&
         absl::Now() - start < absl::Seconds(20)) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(done, fake) << "the fake mpirun was not ended";
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  std::ifstream in(count_file);
  std::stringstream got;
  got << in.rdbuf();
  EXPECT_EQ(got.str(), "2\n");
}

TEST(MpirunWatchTest, AnMpirunThatEndsByItselfIsLeftAlone) {
  const std::string dir = TestDir() + "/ends";
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  const std::string count_file = dir + "/count";
  const pid_t fake = StartFakeMpirun(dir, count_file);
  absl::SleepFor(absl::Milliseconds(200));
  EndMpirunIfItLingers(fake, absl::Seconds(1));
  kill(fake, SIGTERM);  // it ends by itself within the grace period
  int status = 0;
  ASSERT_EQ(waitpid(fake, &status, 0), fake);
  EXPECT_TRUE(WIFSIGNALED(status));
  absl::SleepFor(absl::Milliseconds(1500));  // the watcher gave up quietly
  EXPECT_NE(access(count_file.c_str(), F_OK), 0) << "it got a SIGINT";
}

}  // namespace
}  // namespace cluster
}  // namespace procpool
