// The worker side of a pool: the loop a worker process runs.
//
// A worker reads Config, answers Hello (its pid and the signatures of every
// task it has), runs the initializer, then serves Calls one at a time until
// Shutdown, the parent's end closing, or max_tasks calls. It catches every
// exception a task throws (of any type) and sends it back; a result whose
// encoding throws goes back as that exception. It ignores SIGINT (the parent
// decides) and dies with its parent (PR_SET_PDEATHSIG).
#ifndef PROCPOOL_WORKER_CHILD_WORKER_LOOP_H_
#define PROCPOOL_WORKER_CHILD_WORKER_LOOP_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>

#include "transport/transport.h"

namespace procpool {

class MappingCache;  // shared_array/mapping_cache.h

// Makes this process die with its parent and ignore SIGINT. `parent` is the
// pid that started it: if that parent is already gone, exits at once.
void BecomeWorkerProcess(pid_t parent);

// Serves `channel` until told to stop; returns the process exit code: 0 after
// Shutdown, max_tasks or the parent closing its end; 1 after a failed
// initializer; 2 after a protocol error.
int RunWorker(std::unique_ptr<Channel> channel);

// The shared arrays this worker holds, mapped once each: what the parent
// sent with their memfds and has not told it to forget (shared_array/
// peer_arrays.h). For tests and tools that look inside a worker.
MappingCache& WorkerArrayCache();
// How many shared arrays' memfds came to this worker beside its Calls.
uint64_t WorkerDescriptorsReceived();

}  // namespace procpool

#endif  // PROCPOOL_WORKER_CHILD_WORKER_LOOP_H_
