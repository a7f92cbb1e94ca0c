#include "executor/internal/worker_table.h"

#include "glog/logging.h"

namespace procpool {
namespace internal {

void TakeBackArgs(Assigned& a) {
  if (a.sent == nullptr) return;
  if (std::vector<std::string>* args = ReleasedArgs(a)) {
    a.item.args = std::move(*args);
  } else {
    a.item.args = a.sent->call.args;  // the transport still sends them
  }
  a.sent.reset();
}

WorkerCrash CrashOf(const Worker& w, bool with_task) {
  WorkerCrash crash;
  crash.pid = w.process.pid > 0 ? w.process.pid : -1;
  crash.host = w.remote;
  if (with_task && !w.assigned.empty()) {
    crash.task_name = w.assigned.front().item.task;
    crash.work_id = static_cast<int64_t>(w.assigned.front().work_id);
  }
  return crash;
}

Worker& WorkerTable::Add() {
  const int id = next_id_++;
  Worker& w = workers_[id];
  w.id = id;
  ++starting_;
  changed_ = true;
  return w;
}

void WorkerTable::Greet(Worker& w) {
  switch (w.state) {
    case WorkerState::kStarting:
      --starting_;
      w.state = WorkerState::kReady;
      return;
    case WorkerState::kShuttingDownBeforeHello:
      --starting_;
      w.state = WorkerState::kShuttingDown;
      return;
    case WorkerState::kReady:
    case WorkerState::kShuttingDown:
      return;
  }
}

void WorkerTable::SendingShutdown(Worker& w) {
  switch (w.state) {
    case WorkerState::kStarting:
      w.state = WorkerState::kShuttingDownBeforeHello;
      return;
    case WorkerState::kReady:
      w.state = WorkerState::kShuttingDown;
      return;
    case WorkerState::kShuttingDownBeforeHello:
    case WorkerState::kShuttingDown:
      return;
  }
}

}  // namespace internal
}  // namespace procpool
