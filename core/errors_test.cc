#include "core/errors.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdio.h>

#include <exception>
#include <new>
#include <stdexcept>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace procpool {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Runs `child` in a forked process and returns its waitpid() status.
template <class F>
int StatusOfChild(F child) {
  pid_t pid = fork();
  if (pid == 0) {
    child();
    _exit(0);
  }
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  return status;
}

TEST(SignalName, KnownAndUnknown) {
  EXPECT_EQ(SignalName(SIGKILL), "SIGKILL");
  EXPECT_EQ(SignalName(SIGSEGV), "SIGSEGV");
  EXPECT_EQ(SignalName(SIGTERM), "SIGTERM");
  EXPECT_EQ(SignalName(SIGABRT), "SIGABRT");
  EXPECT_EQ(SignalName(SIGINT), "SIGINT");
  EXPECT_EQ(SignalName(SIGBUS), "SIGBUS");
  EXPECT_EQ(SignalName(SIGPIPE), "SIGPIPE");
  EXPECT_EQ(SignalName(42), "signal 42");
  EXPECT_EQ(SignalName(0), "signal 0");
  EXPECT_EQ(SignalName(-1), "signal -1");
}

TEST(DescribeExit, ExitCodesAndSignals) {
  EXPECT_EQ(DescribeExit(StatusOfChild([] { _exit(3); })), "exit code 3");
  EXPECT_EQ(DescribeExit(StatusOfChild([] {})), "exit code 0");
  EXPECT_EQ(DescribeExit(StatusOfChild([] { raise(SIGKILL); })),
            "killed by SIGKILL");
  EXPECT_EQ(DescribeExit(StatusOfChild([] { raise(SIGTERM); })),
            "killed by SIGTERM");
  // Whether a core is dumped depends on ulimit -c.
  EXPECT_THAT(DescribeExit(StatusOfChild([] {
                signal(SIGSEGV, SIG_DFL);
                raise(SIGSEGV);
              })),
              StartsWith("killed by SIGSEGV"));
}

TEST(WorkerCrash, FromWaitStatus) {
  WorkerCrash exited = WorkerCrash::FromWaitStatus(77, StatusOfChild([] { _exit(5); }));
  EXPECT_EQ(exited.pid, 77);
  EXPECT_EQ(exited.exit_code, 5);
  EXPECT_FALSE(exited.signal.has_value());

  WorkerCrash killed =
      WorkerCrash::FromWaitStatus(78, StatusOfChild([] { raise(SIGKILL); }));
  EXPECT_EQ(killed.signal, SIGKILL);
  EXPECT_FALSE(killed.exit_code.has_value());
  EXPECT_EQ(killed.Describe(), "worker pid 78 killed by SIGKILL");
}

TEST(BrokenProcessPool, NoDetails) {
  BrokenProcessPool e("pool is broken");
  EXPECT_STREQ(e.what(), "pool is broken");
  EXPECT_EQ(e.pid(), -1);
  EXPECT_FALSE(e.exit_code().has_value());
  EXPECT_FALSE(e.signal().has_value());
  EXPECT_EQ(e.signal_name(), "");
  EXPECT_FALSE(e.task_name().has_value());
  EXPECT_FALSE(e.work_id().has_value());
  EXPECT_EQ(e.cause(), "");
}

TEST(BrokenProcessPool, Accessors) {
  WorkerCrash crash;
  crash.pid = 1234;
  crash.signal = SIGKILL;
  crash.task_name = "Square";
  crash.work_id = 7;
  BrokenProcessPool e("A process in the pool was terminated abruptly", crash);
  EXPECT_EQ(e.pid(), 1234);
  EXPECT_EQ(e.signal(), SIGKILL);
  EXPECT_EQ(e.signal_name(), "SIGKILL");
  EXPECT_FALSE(e.exit_code().has_value());
  EXPECT_EQ(e.task_name(), "Square");
  EXPECT_EQ(e.work_id(), 7);
  EXPECT_EQ(e.crash().pid, 1234);
  EXPECT_STREQ(e.what(),
               "A process in the pool was terminated abruptly (worker pid 1234 "
               "killed by SIGKILL while running task Square (work id 7))");
}

TEST(BrokenProcessPool, ExitCodeAndCause) {
  WorkerCrash crash;
  crash.pid = 9;
  crash.exit_code = 3;
  crash.cause = "bad frame";
  BrokenProcessPool e("broken", crash);
  EXPECT_EQ(e.exit_code(), 3);
  EXPECT_EQ(e.cause(), "bad frame");
  EXPECT_STREQ(e.what(),
               "broken (worker pid 9 exited with exit code 3; cause: bad frame)");

  WorkerCrash only_cause;
  only_cause.cause = "could not exec /nope: No such file or directory";
  EXPECT_STREQ(BrokenProcessPool("cannot start a worker", only_cause).what(),
               "cannot start a worker (cause: could not exec /nope: No such "
               "file or directory)");
}

// A frame of this program as the worker's handler writes it: the file of the
// executable mapping that holds `pc`, "+0x", the offset into that file.
std::string FrameOf(const void* pc) {
  FILE* maps = fopen("/proc/self/maps", "r");
  char line[4096];
  std::string frame;
  const unsigned long addr = reinterpret_cast<unsigned long>(pc);
  while (frame.empty() && fgets(line, sizeof(line), maps) != nullptr) {
    unsigned long start, end, offset;
    char perms[5];
    int path_at = 0;
    if (sscanf(line, "%lx-%lx %4s %lx %*s %*s %n", &start, &end, perms, &offset,
               &path_at) >= 4 &&
        addr >= start && addr < end && perms[2] == 'x') {
      std::string path(line + path_at);
      if (!path.empty() && path.back() == '\n') path.pop_back();
      char hex[32];
      snprintf(hex, sizeof(hex), "+0x%lx", addr - start + offset);
      frame = path + hex;
    }
  }
  fclose(maps);
  return frame;
}

extern "C" __attribute__((noinline)) int ErrorsTestCrashSite(int x) {
  return x * 7;
}

std::string ReportWithFrame() {
  const std::string frame =
      FrameOf(reinterpret_cast<const void*>(&ErrorsTestCrashSite));
  EXPECT_NE(frame, "");
  return "  signal SIGSEGV in worker pid 12 while running task Square\n  #0 " +
         frame + "\n  #1 0x7f0000001234\n";
}

TEST(WorkerStack, EmptyAndSymbolizedOnRead) {
  EXPECT_TRUE(WorkerStack().empty());
  EXPECT_EQ(WorkerStack().text(), "");
  EXPECT_TRUE(WorkerStack("").empty());
  const WorkerStack stack(ReportWithFrame());
  EXPECT_FALSE(stack.empty());
  EXPECT_EQ(stack.text(),
            "  signal SIGSEGV in worker pid 12 while running task Square\n"
            "  #0 ErrorsTestCrashSite\n"
            "  #1 0x7f0000001234\n");
  // Copies share the text: it is symbolized once.
  const WorkerStack copy = stack;
  EXPECT_EQ(&copy.text(), &stack.text());
}

TEST(BrokenProcessPool, StackInWhatButNotInSummary) {
  WorkerCrash crash;
  crash.pid = 12;
  crash.signal = SIGSEGV;
  crash.stack = WorkerStack(ReportWithFrame());
  const BrokenProcessPool e("A process died", crash);
  EXPECT_STREQ(e.summary(), "A process died (worker pid 12 killed by SIGSEGV)");
  EXPECT_THAT(e.what(), StartsWith("A process died (worker pid 12 killed by "
                                   "SIGSEGV)\nstack of the worker when it "
                                   "died:\n  signal SIGSEGV"));
  EXPECT_THAT(e.what(), HasSubstr("  #0 ErrorsTestCrashSite\n"));
  EXPECT_THAT(e.stack(), HasSubstr("  #0 ErrorsTestCrashSite\n"));
  const BrokenProcessPool copy = e;  // as each future gets
  EXPECT_EQ(copy.what(), e.what());
  // Without a stack, what() is the summary.
  const BrokenProcessPool plain("A process died", WorkerCrash{});
  EXPECT_STREQ(plain.what(), plain.summary());
}

TEST(WorkerDiedError, StackInWhatButNotInSummary) {
  WorkerCrash crash;
  crash.pid = 5;
  crash.signal = SIGABRT;
  crash.stack = WorkerStack(ReportWithFrame());
  const WorkerDiedError e("The worker died", crash);
  EXPECT_STREQ(e.summary(), "The worker died (worker pid 5 killed by SIGABRT)");
  EXPECT_THAT(e.what(), HasSubstr("SIGABRT)\nstack of the worker when it "
                                  "died:\n"));
  EXPECT_THAT(e.stack(), HasSubstr("  #0 ErrorsTestCrashSite\n"));
}

TEST(Errors, Hierarchy) {
  try {
    throw BrokenProcessPool("x");
  } catch (const BrokenExecutor& e) {
    EXPECT_STREQ(e.what(), "x");
  }
  EXPECT_THROW(throw BrokenProcessPool("x"), Error);
  EXPECT_THROW(throw CancelledError("x"), Error);
  EXPECT_THROW(throw TimeoutError("x"), Error);
  EXPECT_THROW(throw InvalidStateError("x"), Error);
  EXPECT_THROW(throw ShutdownError("x"), Error);
  EXPECT_THROW(throw RemoteError("T", "x"), Error);
  EXPECT_THROW(throw Error("x"), std::runtime_error);
}

TEST(RemoteError, CarriesTypeAndMessage) {
  RemoteError e("ns::MyErr", "boom");
  EXPECT_EQ(e.type_name(), "ns::MyErr");
  EXPECT_STREQ(e.what(), "boom");
  EXPECT_EQ(RemoteError("boom").type_name(), "procpool::RemoteError");
}

RemoteTracebackInfo Info() {
  RemoteTracebackInfo info;
  info.pid = 4321;
  info.task_name = "Divide";
  info.type_name = "std::domain_error";
  info.traceback = "0x1 Divide\n0x2 main\n";
  return info;
}

TEST(WithRemoteTraceback, CatchableAsBaseWithTraceback) {
  try {
    throw WithRemoteTraceback<std::domain_error>(Info(), "division by zero");
  } catch (const std::domain_error& e) {
    EXPECT_STREQ(e.what(), "division by zero");
    const RemoteTraceback* tb = GetRemoteTraceback(e);
    ASSERT_NE(tb, nullptr);
    EXPECT_EQ(tb->pid(), 4321);
    EXPECT_EQ(tb->task_name(), "Divide");
    EXPECT_EQ(tb->type_name(), "std::domain_error");
    EXPECT_EQ(tb->traceback(), "0x1 Divide\n0x2 main\n");
    EXPECT_EQ(tb->ToString(),
              "Traceback (worker pid 4321, task Divide):\n"
              "  0x1 Divide\n"
              "  0x2 main\n"
              "std::domain_error");
  }
}

TEST(WithRemoteTraceback, RemoteError) {
  try {
    throw WithRemoteTraceback<RemoteError>(Info(), "MyErr", "bad");
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type_name(), "MyErr");
    EXPECT_STREQ(e.what(), "bad");
    EXPECT_NE(GetRemoteTraceback(e), nullptr);
  }
}

TEST(WithRemoteTraceback, BadAllocKeepsMessage) {
  try {
    throw WithRemoteTraceback<std::bad_alloc>(Info(), "remote: std::bad_alloc");
  } catch (const std::bad_alloc& e) {
    EXPECT_STREQ(e.what(), "remote: std::bad_alloc");
    EXPECT_NE(GetRemoteTraceback(e), nullptr);
  }
}

TEST(GetRemoteTraceback, NoneOnLocalExceptions) {
  std::runtime_error local("local");
  EXPECT_EQ(GetRemoteTraceback(local), nullptr);
  EXPECT_EQ(GetRemoteTraceback(std::exception_ptr()), nullptr);
  EXPECT_EQ(GetRemoteTraceback(std::make_exception_ptr(42)), nullptr);
  EXPECT_EQ(GetRemoteTraceback(std::make_exception_ptr(local)), nullptr);
}

TEST(GetRemoteTraceback, FromExceptionPtr) {
  std::exception_ptr e = std::make_exception_ptr(
      WithRemoteTraceback<std::out_of_range>(Info(), "index 9"));
  const RemoteTraceback* tb = GetRemoteTraceback(e);
  ASSERT_NE(tb, nullptr);
  EXPECT_EQ(tb->pid(), 4321);
  // The pointer refers to the object held by `e`, so it is the same each time.
  EXPECT_EQ(GetRemoteTraceback(e), tb);
}

TEST(RemoteTraceback, ToStringWithoutStack) {
  RemoteTracebackInfo info;
  info.type_name = "int";
  EXPECT_EQ(RemoteTraceback(info).ToString(),
            "Traceback (worker pid unknown):\n  (no stack available)\nint");
}

}  // namespace
}  // namespace procpool
