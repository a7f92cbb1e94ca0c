// The launchers' failures and helpers, without starting a worker (the
// executor suite starts real ones by every start method).
#include "worker/parent/launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "common/unique_fd.h"
#include "core/start_method.h"
#include "gtest/gtest.h"
#include "worker/parent/fork_server_launcher.h"
#include "worker/parent/make_launcher.h"

namespace procpool {
namespace {

constexpr char kMissing[] = "/nonexistent/procpool_worker";

TEST(LauncherTest, SelfExecutableIsThisTest) {
  EXPECT_TRUE(absl::EndsWith(SelfExecutable(), "/launcher_test"))
      << SelfExecutable();
}

TEST(LauncherTest, EveryStartMethodHasALauncher) {
  for (StartMethod m :
       {StartMethod::kFork, StartMethod::kForkServer, StartMethod::kSpawn}) {
    EXPECT_NE(MakeLauncher(m), nullptr) << StartMethodName(m);
  }
}

TEST(LauncherTest, MissingBinaryCannotBeStarted) {
  for (StartMethod m : {StartMethod::kForkServer, StartMethod::kSpawn}) {
    std::unique_ptr<Launcher> launcher = MakeLauncher(m);
    LaunchRequest request;
    request.transport = "unix";
    request.binary = kMissing;
    absl::StatusOr<WorkerProcess> p = launcher->Start(request);
    ASSERT_FALSE(p.ok()) << StartMethodName(m);
    EXPECT_TRUE(absl::StartsWith(
        p.status().message(),
        std::string("could not be started: ") + kMissing + ": "))
        << StartMethodName(m) << ": " << p.status();
  }
  // No fork server was left running for the missing binary.
  EXPECT_EQ(ForkServerPid(kMissing), -1);
}

TEST(LauncherTest, ForkServerReapsOnlyItsOwnPids) {
  std::unique_ptr<Launcher> launcher = MakeLauncher(StartMethod::kForkServer);
  absl::StatusOr<int> status =
      launcher->Reap(WorkerProcess{getpid(), UniqueFd()},
                      absl::Milliseconds(10));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.status().code(), absl::StatusCode::kNotFound);
}

TEST(LauncherTest, PidFdOfAReapedProcessIsReadableAtOnce) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(0);
  ASSERT_EQ(waitpid(pid, nullptr, 0), pid);
  absl::StatusOr<WorkerProcess> watched =
      internal::WatchStartedProcess("fork()", pid, /*our_child=*/false);
  ASSERT_TRUE(watched.ok()) << watched.status();
  const UniqueFd& fd = watched->pidfd;
  struct pollfd p = {fd.get(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 5000), 1);
  // Close-on-exec, so that a worker started later does not inherit it.
  EXPECT_NE(fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, 0);
}

}  // namespace
}  // namespace procpool
