// The worker's failure handler: when a catchable fatal signal kills a worker,
// its stack (and the task it was running) is written to a pipe whose other end
// the parent reads once the worker is gone; the parent symbolizes it
// (executor/internal/crash_stack.h) and puts it into BrokenProcessPool
// (WorkerCrash::stack).
//
// The report, in one write where it fits:
//   "  signal SIGSEGV in worker pid 1234 while running task Square\n"
//   "  #0 /path/to/object+0x1a2b\n"    a frame: the executable mapping's
//   "  #1 0x7f0012345678\n"            file and the offset into it, or the
//                                      address if no mapping holds it
// The worker does not symbolize: a cold symbolizer took ~1 ms of the dying
// worker's time, between the fault and the parent hearing of it.
//
// SIGKILL cannot be caught: a worker killed by it reports nothing.
//
// Thread safety: InstallCrashReporter runs once, before the worker serves;
// SetCurrentTask is called by the worker's thread; the handler is
// async-signal-safe (open, read and write of /proc/self/maps and the pipe,
// backtrace after a warm-up, no allocation).
#ifndef PROCPOOL_WORKER_CHILD_CRASH_REPORTER_H_
#define PROCPOOL_WORKER_CHILD_CRASH_REPORTER_H_

namespace procpool {

// Installs handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT and SIGTERM
// (on an alternate stack) that write a report to `fd` and then die of the
// same signal. A negative fd installs nothing.
void InstallCrashReporter(int fd);

// The task the worker is running (a string that outlives the call), or null.
void SetCurrentTask(const char* name);

// Heartbeats: a thread writes a NUL byte into the same pipe every `interval`
// (the parent tells them from a report by the byte), as long as the worker's
// thread is waiting for work, running a task, or has been elsewhere for less
// than four intervals: a worker stopped with SIGSTOP, or stuck outside any
// task, goes quiet. Needs InstallCrashReporter first.
void StartHeartbeat(int interval_ms);

// Makes the worker's heap keep the memory it frees, so that the buffers of
// the next big message cost no page faults; a thread of its own gives it all
// back (malloc_trim) once the worker has waited for work for a second
// (Options::workers_keep_freed_memory). Needs the worker's thread to call
// SetWorkerPhase.
void KeepFreedMemory();

// What the worker's thread is doing, for the heartbeat.
enum class WorkerPhase { kWaiting, kRunningTask, kOther };
void SetWorkerPhase(WorkerPhase phase);

}  // namespace procpool

#endif  // PROCPOOL_WORKER_CHILD_CRASH_REPORTER_H_
