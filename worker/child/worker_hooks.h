// Observation points in a worker process's life: the seam through which the
// fault-injection harness (testing/fault_injection) and tracing act on a real
// worker without a fake of it.
//
// A WorkerHooks object is installed once per process, at static-initialization
// time, by a library linked into the worker binary; RunWorker() calls it at
// each point. With none installed (the normal case) each point costs one
// pointer test.
//
// Example:
//   class Tracer : public procpool::WorkerHooks {
//     void OnTaskStart(absl::string_view task) override { ... }
//   };
//   static const bool installed = [] {
//     procpool::SetWorkerHooks(new Tracer);
//     return true;
//   }();
//
// Thread safety: hooks run on the worker's only thread (a hook may start
// threads of its own).
#ifndef PROCPOOL_WORKER_CHILD_WORKER_HOOKS_H_
#define PROCPOOL_WORKER_CHILD_WORKER_HOOKS_H_

#include <memory>

#include "absl/strings/string_view.h"
#include "transport/transport.h"

namespace procpool {

class WorkerHooks {
 public:
  virtual ~WorkerHooks() = default;

  // The worker's channel before its first use: returns it, or a wrapper
  // that forwards to it (as LevelDB's EnvWrapper forwards to an Env).
  virtual std::unique_ptr<Channel> WrapChannel(
      std::unique_ptr<Channel> channel) {
    return channel;
  }
  // A call frame arrived and was decoded; its tasks are about to run.
  virtual void OnCallReceived(absl::string_view task) {}
  // One element of a call is about to run (`task` as registered).
  virtual void OnTaskStart(absl::string_view task) {}
  // The call's results are encoded and about to be sent.
  virtual void OnResultEncoded(absl::string_view task) {}
  // The worker is about to exit with `code`.
  virtual void OnExit(int code) {}
};

// Installs `hooks` for this process (owned by the caller, never destroyed
// before exit). Call at static-initialization time.
void SetWorkerHooks(WorkerHooks* hooks);

// The installed hooks, or null.
WorkerHooks* GetWorkerHooks();

}  // namespace procpool

#endif  // PROCPOOL_WORKER_CHILD_WORKER_HOOKS_H_
