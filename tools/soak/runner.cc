#include "tools/soak/runner.h"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <typeinfo>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tools/soak/tasks.h"

namespace procpool {
namespace soak {
namespace {

constexpr size_t kMaxProblems = 20;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Whether `e` is an E rebuilt from a worker: exactly E (not a subclass, so a
// SoakError is no runtime_error here) with its remote traceback attached,
// naming `task`, and what() == what.
template <typename E>
bool IsRemote(const std::exception_ptr& e, const char* task,
              const std::string& what) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    const auto* traceback = dynamic_cast<const RemoteTraceback*>(&x);
    return typeid(x) == typeid(WithRemoteTraceback<E>) &&
           traceback != nullptr && traceback->task_name() == task &&
           what == x.what();
  } catch (...) {
    return false;
  }
}

template <typename E>
bool IsA(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

// A small Submit whose value is checked: SoakMix(x).
struct SmallCall {
  Future<int64_t> future;
  int64_t x = 0;
  bool cancel_won = false;
};

}  // namespace

std::string Describe(const std::exception_ptr& e) {
  if (!e) return "no exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return absl::StrCat(typeid(x).name(), ": ", x.what());
  } catch (...) {
    return "a non-std::exception";
  }
}

Runner::Runner(const RunnerConfig& config, Tally* tally)
    : config_(config), tally_(tally), rng_(config.seed) {
  Touch("creating the main pool");
  Options options = PoolOptions();
  options.on_worker_death = WorkerDeathPolicy::kReplaceWorker;
  if (config_.max_tasks_per_child > 0 &&
      config_.start_method != StartMethod::kFork) {
    options.max_tasks_per_child = config_.max_tasks_per_child;
  }
  pool_ = std::make_unique<ProcessPoolExecutor>(options);
  ++tally_->pools;
}

Runner::~Runner() { Touch("shutting the main pool down"); }

Options Runner::PoolOptions() const {
  Options options;
  options.max_workers = config_.workers;
  options.transport = config_.transport;
  options.start_method = config_.start_method;
  return options;
}

void Runner::Touch(const char* phase) {
  phase_.store(phase);
  heartbeat_.store(NowNs());
}

void Runner::Wrong(const std::string& what) {
  ++tally_->wrong;
  if (tally_->problems.size() < kMaxProblems) {
    tally_->problems.push_back(what);
  }
}

template <typename T>
Runner::Got Runner::Await(const Future<T>& f, const std::string& what,
                          std::exception_ptr* error) {
  *error = nullptr;
  try {
    *error = f.Exception(config_.hang_timeout);
  } catch (const CancelledError&) {
    heartbeat_.store(NowNs());
    return Got::kCancelled;
  } catch (const TimeoutError&) {
    ++tally_->unresolved;
    throw Hung(absl::StrCat(what, ": not done within ",
                            absl::FormatDuration(config_.hang_timeout)));
  }
  heartbeat_.store(NowNs());
  return *error ? Got::kError : Got::kValue;
}

int64_t Runner::Restarts() const {
  int64_t restarts = 0;
  for (const WorkerStats& s : pool_->Stats()) {
    restarts = std::max(restarts, s.restarts);
  }
  return restarts;
}

void Runner::Round(int64_t r) {
  const int burst = std::max(8, config_.round * 2 / 5);
  const int map = std::max(8, config_.round - burst - 4);
  Burst(r, burst);
  MapPhase(r, map);
  Alone(r);
  if (config_.short_pool_every > 0 && r % config_.short_pool_every == 0) {
    ShortPool(r);
  }
  ++tally_->rounds;
}

void Runner::Burst(int64_t r, int n) {
  Touch("burst: submitting");
  const int64_t base = r * 1000003;
  std::vector<SmallCall> small;
  std::vector<std::pair<Future<int>, int>> throwing;
  std::vector<std::pair<Future<std::pair<int64_t, int64_t>>, int64_t>> with_pid;
  small.reserve(static_cast<size_t>(n));
  TaskOptions loose;  // a per-task timeout that never fires
  loose.timeout = config_.hang_timeout;
  for (int i = 0; i < n; ++i) {
    const int64_t x = base + i;
    if (i % 50 == 25) {
      const int kind = static_cast<int>(x % 1000);
      throwing.emplace_back(pool_->Submit(SoakThrow, kind), kind);
    } else if (i % 20 == 3) {
      with_pid.emplace_back(pool_->SubmitWith(loose, SoakMixPid, x), x);
    } else {
      small.push_back({pool_->Submit(SoakMix, x), x});
    }
    if (i == n / 2) CheckBig(r);  // while the small ones run
  }
  // Cancel part of the last quarter: most are still pending.
  for (size_t i = small.size() * 3 / 4; i < small.size(); i += 8) {
    small[i].cancel_won = small[i].future.Cancel();
  }
  Touch("burst: waiting");
  std::exception_ptr e;
  for (SmallCall& c : small) {
    const std::string what = absl::StrCat("SoakMix(", c.x, ")");
    const Got got = Await(c.future, what, &e);
    if (c.cancel_won) {
      if (got == Got::kCancelled) {
        ++tally_->cancelled;
      } else {
        Wrong(absl::StrCat(what, ": Cancel() returned true, yet it ended ",
                           got == Got::kValue ? "with a value" : Describe(e)));
      }
    } else if (got != Got::kValue) {
      Wrong(absl::StrCat(what, ": ",
                         got == Got::kCancelled ? "cancelled" : Describe(e)));
    } else if (c.future.Get() != SoakMix(c.x)) {
      Wrong(absl::StrCat(what, ": got ", c.future.Get(), " want ",
                         SoakMix(c.x)));
    } else {
      ++tally_->values;
      if (c.x % 8 == 0 && c.future.Cancel()) {
        Wrong(absl::StrCat(what, ": Cancel() of a finished future said yes"));
      }
    }
    ++tally_->tasks;
    ++tally_->submits;
  }
  for (size_t i = small.size() * 3 / 4; i < small.size(); i += 8) {
    if (!small[i].cancel_won) ++tally_->cancel_late;
  }
  for (const auto& [future, x] : with_pid) {
    const std::string what = absl::StrCat("SoakMixPid(", x, ")");
    if (Await(future, what, &e) != Got::kValue) {
      Wrong(absl::StrCat(what, ": ", Describe(e)));
    } else if (future.Get().first != SoakMix(x) || future.Get().second <= 0) {
      Wrong(absl::StrCat(what, ": got ", future.Get().first, " from pid ",
                         future.Get().second));
    } else {
      ++tally_->values;
      const int64_t pid = future.Get().second;
      if (std::find(recent_pids_.begin(), recent_pids_.end(), pid) ==
          recent_pids_.end()) {
        ++tally_->workers_seen;
        recent_pids_.push_back(pid);
        if (recent_pids_.size() > 16) recent_pids_.erase(recent_pids_.begin());
      }
    }
    ++tally_->tasks;
    ++tally_->submits;
  }
  for (const auto& [future, kind] : throwing) {
    const std::string what = absl::StrCat("SoakThrow(", kind, ")");
    const Got got = Await(future, what, &e);
    const std::string message = ThrowMessage(kind);
    bool right = false;
    if (got == Got::kError) {
      switch (kind % 4) {
        case 0:
          right = IsRemote<std::invalid_argument>(e, "SoakThrow", message);
          break;
        case 1:
          right = IsRemote<std::out_of_range>(e, "SoakThrow", message);
          break;
        case 2:
          right = IsRemote<std::runtime_error>(e, "SoakThrow", message);
          break;
        default:
          right = IsRemote<SoakError>(e, "SoakThrow", message);
      }
    }
    if (right) {
      ++tally_->task_errors;
    } else {
      Wrong(absl::StrCat(what, ": ended with ",
                         got == Got::kValue ? "a value" : Describe(e)));
    }
    ++tally_->tasks;
    ++tally_->submits;
  }
}

// One big argument, one big result and one big echo, submitted together.
void Runner::CheckBig(int64_t r) {
  std::uniform_int_distribution<int> size(config_.big_min_bytes,
                                          config_.big_max_bytes);
  const int n_blob = size(rng_);
  const int n_arg = size(rng_);
  const int n_echo = size(rng_);
  const std::string arg = SoakBlob(r * 3 + 1, n_arg);
  const uint64_t arg_digest = SoakDigest(arg);
  Future<std::string> blob = pool_->Submit(SoakBlob, r * 3, n_blob);
  Future<uint64_t> digest = pool_->Submit(SoakDigest, arg);
  Future<std::string> echo =
      pool_->Submit(SoakEcho, SoakBlob(r * 3 + 2, n_echo));
  std::exception_ptr e;
  if (Await(blob, "SoakBlob", &e) != Got::kValue) {
    Wrong(absl::StrCat("SoakBlob(", n_blob, " bytes): ", Describe(e)));
  } else if (blob.Get() != SoakBlob(r * 3, n_blob)) {
    Wrong(absl::StrCat("SoakBlob(", n_blob, " bytes): wrong bytes"));
  } else {
    ++tally_->values;
  }
  if (Await(digest, "SoakDigest", &e) != Got::kValue) {
    Wrong(absl::StrCat("SoakDigest(", n_arg, " bytes): ", Describe(e)));
  } else if (digest.Get() != arg_digest) {
    Wrong(absl::StrCat("SoakDigest(", n_arg, " bytes): wrong digest"));
  } else {
    ++tally_->values;
  }
  if (Await(echo, "SoakEcho", &e) != Got::kValue) {
    Wrong(absl::StrCat("SoakEcho(", n_echo, " bytes): ", Describe(e)));
  } else if (echo.Get() != SoakBlob(r * 3 + 2, n_echo)) {
    Wrong(absl::StrCat("SoakEcho(", n_echo, " bytes): wrong bytes"));
  } else {
    ++tally_->values;
  }
  tally_->tasks += 3;
  tally_->submits += 3;
  tally_->big_values += 4;  // the echo's argument and result
  tally_->big_bytes += n_blob + n_arg + 2 * int64_t{n_echo};
}

void Runner::MapPhase(int64_t r, int n) {
  Touch("map");
  const int64_t base = r * 1000003 + 500000;
  std::vector<int64_t> xs(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) xs[i] = base + i;
  MapOptions options;
  options.timeout = config_.hang_timeout;
  const int variant = static_cast<int>(r % 4);
  options.chunksize = variant == 0 ? 1 : variant == 1 ? 16 : variant == 2 ? 64 : 7;
  options.buffersize = variant % 2 == 1 ? 1 + variant : 0;
  const bool throwing = variant >= 2;
  auto results = throwing ? pool_->Map(SoakMixOrThrow, xs, options)
                          : pool_->Map(SoakMix, xs, options);
  const std::string what =
      absl::StrCat("Map(", throwing ? "SoakMixOrThrow" : "SoakMix",
                   ", chunksize=", options.chunksize,
                   ", buffersize=", options.buffersize, ")");
  size_t i = 0;
  for (auto it = results.begin(); it != results.end(); ++it, ++i) {
    if (i >= xs.size()) {
      Wrong(absl::StrCat(what, ": more elements than inputs"));
      break;
    }
    const int64_t x = xs[i];
    const bool must_throw = throwing && SoakMixThrows(x);
    try {
      const int64_t v = *it;
      if (must_throw || v != SoakMix(x)) {
        Wrong(absl::StrCat(what, " element ", i, ": got ", v));
      } else {
        ++tally_->values;
      }
    } catch (const TimeoutError&) {
      ++tally_->unresolved;
      throw Hung(absl::StrCat(what, " element ", i, ": not done within ",
                              absl::FormatDuration(config_.hang_timeout)));
    } catch (...) {
      const std::exception_ptr e = std::current_exception();
      if (must_throw &&
          IsRemote<std::invalid_argument>(e, "SoakMixOrThrow",
                                          absl::StrCat("soak: ", x))) {
        ++tally_->task_errors;
      } else {
        Wrong(absl::StrCat(what, " element ", i, ": ", Describe(e)));
      }
    }
    ++tally_->tasks;
    ++tally_->map_elements;
    heartbeat_.store(NowNs());
  }
  if (i != xs.size()) {
    Wrong(absl::StrCat(what, ": ", i, " elements of ", xs.size()));
  }
}

void Runner::Alone(int64_t r) {
  std::exception_ptr e;
  switch (r % 3) {
    case 0: {
      Touch("alone: a per-task timeout");
      TaskOptions tight;
      tight.timeout = absl::Milliseconds(50);
      Future<int> f = pool_->SubmitWith(tight, SoakSleepMs, 600000);
      const Got got = Await(f, "SoakSleepMs with a 50 ms timeout", &e);
      if (got == Got::kError && IsA<TimeoutError>(e)) {
        ++tally_->timeouts;
      } else {
        Wrong(absl::StrCat("a 50 ms per-task timeout: ",
                           got == Got::kValue ? "a value" : Describe(e)));
      }
      break;
    }
    case 1: {
      Touch("alone: an interrupt");
      Future<int> f = pool_->Submit(SoakSleepMs, 600000);
      const absl::Time deadline = absl::Now() + config_.hang_timeout;
      while (!f.Running() && !f.Done() && absl::Now() < deadline) {
        absl::SleepFor(absl::Milliseconds(1));
      }
      if (!f.Running()) {
        ++tally_->unresolved;
        throw Hung("SoakSleepMs(600000): never running");
      }
      const bool interrupted = f.Interrupt();
      const Got got = Await(f, "an interrupted SoakSleepMs", &e);
      if (interrupted && got == Got::kCancelled) {
        ++tally_->interrupts;
      } else {
        Wrong(absl::StrCat("Interrupt() of a running task returned ",
                           interrupted, " and it ended ",
                           got == Got::kValue ? "with a value" : Describe(e)));
      }
      break;
    }
    default: {
      Touch("alone: a worker's death");
      Future<int> f = pool_->Submit(SoakDie, SIGKILL);
      const Got got = Await(f, "SoakDie(SIGKILL)", &e);
      bool right = false;
      try {
        if (e) std::rethrow_exception(e);
      } catch (const WorkerDiedError& died) {
        right = died.signal() == SIGKILL;
      } catch (...) {
      }
      if (got == Got::kError && right) {
        ++tally_->worker_deaths;
      } else {
        Wrong(absl::StrCat("SoakDie(SIGKILL): ",
                           got == Got::kValue ? "a value" : Describe(e)));
      }
    }
  }
  ++tally_->tasks;
  ++tally_->submits;
  // The pool goes on.
  Future<int64_t> next = pool_->Submit(SoakMix, r);
  const Got got = Await(next, "SoakMix after a killed worker", &e);
  if (got != Got::kValue || next.Get() != SoakMix(r)) {
    Wrong(absl::StrCat("SoakMix after a killed worker: ",
                       got == Got::kValue ? "a wrong value" : Describe(e)));
  } else {
    ++tally_->values;
  }
  ++tally_->tasks;
  ++tally_->submits;
}

void Runner::ShortPool(int64_t r) {
  Touch("short pool: starting");
  const bool breaks = (r / config_.short_pool_every) % 2 == 1;
  std::exception_ptr e;
  {
    ProcessPoolExecutor pool(PoolOptions());  // kBreakPool
    ++tally_->pools;
    std::vector<int64_t> xs(32);
    for (int i = 0; i < 32; ++i) xs[i] = r * 7 + i;
    MapOptions options;
    options.chunksize = 4;
    options.timeout = config_.hang_timeout;
    Touch("short pool: map");
    size_t i = 0;
    for (int64_t v : pool.Map(SoakMix, xs, options)) {
      if (v != SoakMix(xs[i])) {
        Wrong(absl::StrCat("short pool Map element ", i, ": got ", v));
      } else {
        ++tally_->values;
      }
      ++i;
      ++tally_->tasks;
      ++tally_->map_elements;
    }
    if (i != xs.size()) Wrong("short pool Map: elements missing");
    if (breaks) {
      Touch("short pool: breaking");
      Future<int> f = pool.Submit(SoakDie, SIGKILL);
      const Got got = Await(f, "SoakDie(SIGKILL) in a short pool", &e);
      if (got == Got::kError && IsA<BrokenProcessPool>(e)) {
        ++tally_->broken_pools;
      } else {
        Wrong(absl::StrCat("a short pool's SoakDie(SIGKILL): ",
                           got == Got::kValue ? "a value" : Describe(e)));
      }
      ++tally_->tasks;
      ++tally_->submits;
      try {
        pool.Submit(SoakMix, int64_t{1});
        Wrong("Submit to a broken pool did not throw");
      } catch (const BrokenProcessPool&) {
      }
    }
    Touch("short pool: shutting down");
  }
  heartbeat_.store(NowNs());
}

void Runner::Settle(absl::Duration quiet) {
  Touch("settling before a checkpoint");
  std::exception_ptr e;
  // A worker recycled by max_tasks_per_child after one of the sleepers
  // leaves during the quiet time: then the pool is not at full strength and
  // the round starts again (bounded; an odd count is then measured as is).
  for (int attempt = 0; attempt < 10; ++attempt) {
    std::vector<Future<int>> sleepers;
    for (int i = 0; i < config_.workers; ++i) {
      sleepers.push_back(pool_->Submit(SoakSleepMs, 20));
    }
    for (const Future<int>& f : sleepers) {
      if (Await(f, "SoakSleepMs(20) while settling", &e) != Got::kValue) {
        Wrong(absl::StrCat("SoakSleepMs(20) while settling: ", Describe(e)));
      }
    }
    absl::SleepFor(quiet);
    heartbeat_.store(NowNs());
    if (static_cast<int>(pool_->WorkerPids().size()) == config_.workers) {
      return;
    }
  }
}

}  // namespace soak
}  // namespace procpool
