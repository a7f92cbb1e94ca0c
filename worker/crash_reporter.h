// The worker's failure handler: when a catchable fatal signal kills a worker,
// its symbolized stack (and the task it was running) is written to a pipe
// whose other end the parent reads once the worker is gone; the parent puts it
// into BrokenProcessPool (WorkerCrash::stack).
//
// SIGKILL cannot be caught: a worker killed by it reports nothing.
//
// Thread safety: InstallCrashReporter runs once, before the worker serves;
// SetCurrentTask is called by the worker's thread; the handler is
// async-signal-safe (write(2), backtrace after a warm-up, absl::Symbolize).
#ifndef PROCPOOL_WORKER_CRASH_REPORTER_H_
#define PROCPOOL_WORKER_CRASH_REPORTER_H_

namespace procpool {

// Installs handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT and SIGTERM
// (on an alternate stack) that write a report to `fd` and then die of the
// same signal. A negative fd installs nothing.
void InstallCrashReporter(int fd);

// The task the worker is running (a string that outlives the call), or null.
void SetCurrentTask(const char* name);

}  // namespace procpool

#endif  // PROCPOOL_WORKER_CRASH_REPORTER_H_
