// StartMethod: how a pool starts its worker processes.
//
//   kSpawn      posix_spawn of the worker binary (a fresh exec; slowest start,
//               nothing inherited but the channel).
//   kForkServer (default) one single-threaded server process per worker binary,
//               spawned once per parent process and kept for its lifetime,
//               forks workers on request. Fast starts and no threads inherited.
//   kFork       fork() of the calling process itself (fastest; the child
//               inherits a copy of a multi-threaded process, so locks held by
//               other threads at that instant stay held in the child: see the
//               README before choosing it).
//
// Chosen per pool with Options::start_method or --procpool_start_method; the
// launchers that carry each method out are in worker/parent/.
//
// This header depends on nothing, so that the options (executor/options.h)
// can name a start method without pulling in the launchers.
//
// Example:
//   procpool::Options options;
//   options.start_method = procpool::StartMethod::kSpawn;
//   LOG(INFO) << StartMethodName(*options.start_method);  // "spawn"
//
// Thread safety: everything here is a constant.
#ifndef PROCPOOL_CORE_START_METHOD_H_
#define PROCPOOL_CORE_START_METHOD_H_

namespace procpool {

enum class StartMethod { kFork, kForkServer, kSpawn };

// "fork", "forkserver", "spawn" (the --procpool_start_method spellings);
// "unknown" for a value outside the enum.
const char* StartMethodName(StartMethod method);

}  // namespace procpool

#endif  // PROCPOOL_CORE_START_METHOD_H_
