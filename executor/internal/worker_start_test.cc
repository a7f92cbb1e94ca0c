#include "executor/internal/worker_start.h"

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "executor/internal/idle_channel_for_test.h"
#include "gtest/gtest.h"

namespace procpool {
namespace internal {
namespace {

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }

// A transport whose pairs are an IdleChannel and a pipe's two ends as the
// child's descriptors (so that the test can see them closed).
class FakeTransport : public Transport {
 public:
  absl::string_view name() const override { return "fake"; }
  absl::StatusOr<ChannelPair> CreatePair() override {
    if (!create_error.ok()) return create_error;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe2");
    child_fds = {fds[0], fds[1]};
    ChannelPair pair;
    pair.parent = std::make_unique<IdleChannel>();
    pair.child.fds = child_fds;
    return pair;
  }
  absl::StatusOr<std::unique_ptr<Channel>> OpenChild(
      const ChildEndpoint&) override {
    return absl::UnimplementedError("fake");
  }
  absl::StatusOr<std::unique_ptr<Channel>> ConnectRemote(
      const RemoteWorkerSpec&) override {
    return absl::UnimplementedError("fake");
  }

  absl::Status create_error;
  std::vector<int> child_fds;
};

// Starts no process: records the request and answers as told.
class FakeLauncher : public Launcher {
 public:
  absl::StatusOr<WorkerProcess> Start(const LaunchRequest& request) override {
    transport = request.transport;
    binary = request.binary;
    crash_fd_open = IsOpen(request.crash_fd);
    if (!start_error.ok()) return start_error;
    WorkerProcess p;
    p.pid = 4242;  // and no pidfd
    return p;
  }
  absl::StatusOr<int> Reap(const WorkerProcess&, absl::Duration) override {
    return 0;
  }

  absl::Status start_error;
  std::string transport, binary;
  bool crash_fd_open = false;
};

TEST(LaunchLocalWorkerTest, HandsOverTheParentsEndsAndClosesTheChilds) {
  FakeTransport transport;
  FakeLauncher launcher;
  LaunchedWorker launched;
  StartFailure failure;
  ASSERT_TRUE(LaunchLocalWorker(transport, launcher, "/bin/worker", &launched,
                                &failure));
  EXPECT_EQ(launcher.transport, "fake");
  EXPECT_EQ(launcher.binary, "/bin/worker");
  EXPECT_TRUE(launcher.crash_fd_open);
  EXPECT_EQ(launched.process.pid, 4242);
  ASSERT_NE(launched.channel, nullptr);
  ASSERT_TRUE(launched.crash_fd.valid());
  EXPECT_TRUE(IsOpen(launched.crash_fd.get()));
  EXPECT_NE(fcntl(launched.crash_fd.get(), F_GETFL) & O_NONBLOCK, 0);
  for (int fd : transport.child_fds) EXPECT_FALSE(IsOpen(fd)) << fd;
  // The crash pipe's write end (the launcher's) is closed: the read end sees
  // EOF once the pipe is empty.
  char byte;
  EXPECT_EQ(read(launched.crash_fd.get(), &byte, 1), 0);
}

TEST(LaunchLocalWorkerTest, AChannelThatCannotBeMadeIsAStartFailure) {
  FakeTransport transport;
  transport.create_error = absl::ResourceExhaustedError("no segments left");
  FakeLauncher launcher;
  LaunchedWorker launched;
  StartFailure failure;
  EXPECT_FALSE(LaunchLocalWorker(transport, launcher, "/bin/worker",
                                 &launched, &failure));
  EXPECT_EQ(failure.message, "A child process could not be started");
  EXPECT_EQ(failure.crash.cause, "no segments left");
  EXPECT_EQ(launched.channel, nullptr);
}

TEST(LaunchLocalWorkerTest, ALaunchFailureClosesEverything) {
  FakeTransport transport;
  FakeLauncher launcher;
  launcher.start_error =
      absl::NotFoundError("could not be started: /bin/worker: no such file");
  LaunchedWorker launched;
  StartFailure failure;
  EXPECT_FALSE(LaunchLocalWorker(transport, launcher, "/bin/worker",
                                 &launched, &failure));
  EXPECT_EQ(failure.message,
            "A child process could not be started: /bin/worker: no such file");
  EXPECT_FALSE(launched.crash_fd.valid());
  for (int fd : transport.child_fds) EXPECT_FALSE(IsOpen(fd)) << fd;
}

TEST(FreeRemoteSlotTest, FirstSlotNoWorkerFills) {
  WorkerTable table;
  EXPECT_EQ(FreeRemoteSlot(table, {}, 0), -1);
  EXPECT_EQ(FreeRemoteSlot(table, {}, 3), 0);
  table.Add().remote_slot = 0;
  Worker& second = table.Add();
  second.remote_slot = 1;
  EXPECT_EQ(FreeRemoteSlot(table, {}, 3), 2);
  table.Add().remote_slot = 2;
  EXPECT_EQ(FreeRemoteSlot(table, {}, 3), -1);
  table.Erase(second.id);
  EXPECT_EQ(FreeRemoteSlot(table, {}, 3), 1);
}

TEST(FreeRemoteSlotTest, LostSlotsAreSkipped) {
  WorkerTable table;
  EXPECT_EQ(FreeRemoteSlot(table, {true}, 3), 1);
  EXPECT_EQ(FreeRemoteSlot(table, {true, true, false}, 3), 2);
  EXPECT_EQ(FreeRemoteSlot(table, {true, true, true}, 3), -1);
  table.Add().remote_slot = 1;
  EXPECT_EQ(FreeRemoteSlot(table, {true, false, false}, 3), 2);
}

}  // namespace
}  // namespace internal
}  // namespace procpool
