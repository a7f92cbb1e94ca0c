#include "tools/chaos/wave.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "executor/process_pool_executor.h"
#include "executor/testdata/test_tasks.h"
#include "testing/process_helpers.h"
#include "tools/chaos/proc.h"
#include "tools/chaos/tracked.h"

namespace procpool {
namespace chaos {
namespace {

namespace tt = ::procpool::test_tasks;

constexpr int kWorkers = 2;
constexpr absl::Duration kPoll = absl::Milliseconds(1);

int64_t ToNs(absl::Duration d) { return absl::ToInt64Nanoseconds(d); }

class Wave {
 public:
  Wave(const WavePlan& plan, const WaveConfig& config)
      : plan_(plan), config_(config), events_(std::make_shared<Events>()) {}

  WaveResult Run() {
    Options options;
    options.max_workers = kWorkers;
    options.transport = config_.pool_transport.empty() ? config_.transport
                                                       : config_.pool_transport;
    options.start_method = plan_.start_method;
    options.heartbeat_timeout = config_.heartbeat_timeout;
    if (plan_.fault) {
      fault::Spec spec = *plan_.fault;
      spec.fired_file = config_.fired_file;
      if (!spec.fired_file.empty()) {
        const int fd = open(spec.fired_file.c_str(),
                            O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) close(fd);
      }
      options.initializer = fault::ArmFault(spec);
      result_.fault_armed = true;
    }
    if (plan_.parent_fault) {
      fault::ArmParentFault(*plan_.parent_fault);
      result_.fault_armed = true;
    }
    pool_ = std::make_unique<ProcessPoolExecutor>(options);
    SubmitAll();
    AwaitFutures();
    TearDown();
    CountFired();
    Tally();
    return std::move(result_);
  }

 private:
  // What fired, once the pool is gone (its workers wrote what they would).
  void CountFired() {
    if (plan_.fault && !config_.fired_file.empty()) {
      const std::vector<int64_t> times =
          fault::ReadFiredTimes(config_.fired_file);
      if (!times.empty()) {
        result_.fired[KindName(*plan_.fault)] += static_cast<int>(times.size());
        fired_ns_ = *std::min_element(times.begin(), times.end());
      }
    }
    if (plan_.parent_fault) {
      const int fired = fault::DisarmParentFault();
      if (fired > 0) result_.fired[KindName(*plan_.parent_fault)] += fired;
    }
    if (result_.kill_delivered) result_.fired[KindName(*plan_.kill)] += 1;
  }

  void SubmitAll() {
    const int n = static_cast<int>(plan_.ops.size());
    const bool big_transfer =
        plan_.kill && plan_.kill->when == OutsideKill::When::kBigTransfer;
    for (int i = 0; i < n; ++i) {
      if (big_transfer && i == 1 && !futures_.empty()) {
        // The workers are up (ops[0] is done) before the big arguments go.
        PollUntil([&] { return futures_[0]->Done(); },
                         absl::Seconds(5));
      }
      if (plan_.kill && plan_.kill->before_op == i) SendKill();
      const Op& op = plan_.ops[i];
      if (op.pause_us > 0) absl::SleepFor(absl::Microseconds(op.pause_us));
      try {
        if (op.is_map) {
          StartMap(op.map);
        } else {
          SubmitOne(op.submit);
        }
      } catch (const BrokenProcessPool&) {
        events_->NoteBroken();
        result_.rejected += op.is_map ? op.map.xs.size() : 1;
      } catch (const ShutdownError&) {
        result_.rejected += op.is_map ? op.map.xs.size() : 1;
      }
    }
    if (plan_.kill && plan_.kill->before_op >= n) {
      absl::SleepFor(absl::Milliseconds(plan_.kill->delay_ms));
      SendKill();
    }
  }

  void SubmitOne(const SubmitOp& op) {
    const int64_t t = NowNs();
    std::unique_ptr<Tracked> tracked;
    switch (op.kind) {
      case TaskKind::kPow:
        tracked = TrackValue(pool_->Submit(tt::Pow, op.a, op.b),
                             tt::Pow(op.a, op.b), events_);
        break;
      case TaskKind::kSleepMs:
        tracked = TrackValue(pool_->Submit(tt::SleepMs, op.a), op.a, events_);
        break;
      case TaskKind::kEcho:
        tracked =
            TrackValue(pool_->Submit(tt::Echo, op.text), op.text, events_);
        break;
      case TaskKind::kLength:
        tracked = TrackValue(pool_->Submit(tt::Length, op.text),
                             static_cast<int64_t>(op.text.size()), events_);
        break;
      case TaskKind::kFailIfThree:
        if (op.a == 3) {
          tracked = TrackNoValue(pool_->Submit(tt::FailIfThree, op.a),
                                 /*expect_error=*/true, events_);
        } else {
          tracked = TrackValue(pool_->Submit(tt::FailIfThree, op.a), op.a * 10,
                               events_);
        }
        break;
      case TaskKind::kNoop:
        tracked = TrackNoValue(pool_->Submit(tt::Noop), false, events_);
        break;
    }
    call_ns_.push_back(t);
    futures_.push_back(std::move(tracked));
  }

  void StartMap(const MapOp& op) {
    const int64_t t = NowNs();
    MapOptions options;
    options.chunksize = op.chunksize;
    options.buffersize = op.buffersize;
    // Past the tool's own bounds: a backstop, never the first to fire.
    options.timeout = 2 * config_.hang_timeout + absl::Seconds(10);
    auto run = std::make_unique<MapRun>();
    run->size = static_cast<int64_t>(op.xs.size());
    switch (op.kind) {
      case TaskKind::kPow: {
        std::vector<std::pair<int, int>> pairs;
        for (size_t i = 0; i < op.xs.size(); ++i) {
          pairs.emplace_back(op.xs[i], op.ys[i]);
        }
        ConsumeMap<int>(
            pool_->Map(tt::Pow, std::move(pairs), options), run.get(),
            [xs = op.xs, ys = op.ys](size_t i, int* v) {
              *v = tt::Pow(xs[i], ys[i]);
              return true;
            },
            events_);
        break;
      }
      case TaskKind::kFailIfThree:
        ConsumeMap<int>(
            pool_->Map(tt::FailIfThree, op.xs, options), run.get(),
            [xs = op.xs](size_t i, int* v) {
              *v = xs[i] * 10;
              return xs[i] != 3;
            },
            events_);
        break;
      default:
        ConsumeMap<int>(
            pool_->Map(tt::SleepMs, op.xs, options), run.get(),
            [xs = op.xs](size_t i, int* v) {
              *v = xs[i];
              return true;
            },
            events_);
        break;
    }
    // Map() submitted the first chunks itself (all of them without a
    // buffersize); the rest go as the consumer reads.
    const int64_t chunks = (run->size + op.chunksize - 1) / op.chunksize;
    const int64_t now_sent =
        op.buffersize == 0 ? chunks : std::min<int64_t>(chunks, op.buffersize);
    for (int64_t i = 0; i < now_sent; ++i) call_ns_.push_back(t);
    maps_.push_back(std::move(run));
  }

  void SendKill() {
    PollUntil([&] { return !pool_->WorkerPids().empty(); },
                     absl::Seconds(1));
    const std::vector<pid_t> pids = pool_->WorkerPids();
    // At shutdown: the target is taken first (a pool that is shutting down
    // may list no workers), then Shutdown(wait=false) with work pending.
    if (plan_.kill->when == OutsideKill::When::kShutdown) {
      pool_->Shutdown(/*wait=*/false);
    }
    if (pids.empty()) return;  // the pool is already broken or not started
    const pid_t pid = pids[plan_.kill->target % pids.size()];
    int64_t sent_ns = kNever;
    if (SignalWorker(pid, plan_.kill->signal, &sent_ns)) {
      result_.kill_delivered = true;
      kill_ns_ = sent_ns;
    }
  }

  bool AllResolved() const {
    for (const auto& f : futures_) {
      if (!f->Done()) return false;
    }
    for (const auto& m : maps_) {
      if (!m->finished.load()) return false;
    }
    return true;
  }

  int64_t CountResolved() const {
    int64_t n = 0;
    for (const auto& f : futures_) n += f->Done() ? 1 : 0;
    for (const auto& m : maps_) n += m->observed.load();
    return n;
  }

  int64_t CountUnresolved() const {
    int64_t n = 0;
    for (const auto& f : futures_) n += f->Done() ? 0 : 1;
    for (const auto& m : maps_) {
      if (!m->finished.load()) n += m->size - m->observed.load();
    }
    return n;
  }

  void KillWorkers(int64_t now) {
    pool_->KillWorkers();
    tool_kill_ns_ = std::min(tool_kill_ns_, now);
  }

  // A worker stopped for stop_timeout is hung: the tool kills the workers,
  // as the pool's heartbeats would. With heartbeats on, the pool should have
  // done so first: then it is a hang.
  void WatchStopped(int64_t now) {
    if (tool_kill_ns_ != kNever) return;
    bool stopped = false;
    for (pid_t pid : pool_->WorkerPids()) {
      const char state = ProcState(pid, nullptr);
      stopped |= state == 'T' || state == 't';
    }
    if (!stopped) {
      stopped_since_ns_ = kNever;
      return;
    }
    if (stopped_since_ns_ == kNever) stopped_since_ns_ = now;
    if (now - stopped_since_ns_ < ToNs(config_.stop_timeout)) return;
    result_.stop_killed = true;
    const bool injected =
        (plan_.fault && plan_.fault->mode == fault::Mode::kStop) ||
        (result_.kill_delivered && plan_.kill->signal == SIGSTOP);
    if (!injected) result_.problems.push_back("a worker stopped by itself");
    if (config_.heartbeat_timeout != absl::InfiniteDuration()) {
      ++result_.hung;
      result_.problems.push_back(absl::StrCat(
          "a worker stopped for ", absl::FormatDuration(config_.stop_timeout),
          " went unnoticed with heartbeat_timeout ",
          absl::FormatDuration(config_.heartbeat_timeout)));
    }
    KillWorkers(now);
  }

  void AwaitFutures() {
    const int64_t start = NowNs();
    const int64_t hang = ToNs(config_.hang_timeout);
    bool hang_seen = false;
    while (!AllResolved()) {
      const int64_t now = NowNs();
      WatchStopped(now);
      if (!hang_seen && now - start >= hang) {
        hang_seen = true;
        const int64_t n = CountUnresolved();
        result_.hung += n;
        result_.problems.push_back(
            absl::StrCat(n, " futures not resolved within ",
                         absl::FormatDuration(config_.hang_timeout), " (",
                         CountResolved(), " were); killing the workers"));
        KillWorkers(now);
      }
      if (hang_seen && now - start >= 2 * hang) break;
      absl::SleepFor(kPoll);
    }
    // Each ends by the Map's own timeout at the latest.
    for (auto& m : maps_) m->thread.join();
  }

  void TearDown() {
    pool_->Shutdown(/*wait=*/false);
    const int64_t start = NowNs();
    const int64_t hang = ToNs(config_.hang_timeout);
    bool hang_seen = false;
    while (!pool_->WorkerPids().empty()) {
      const int64_t now = NowNs();
      WatchStopped(now);
      if (!hang_seen && now - start >= hang) {
        hang_seen = true;
        ++result_.hung;
        result_.problems.push_back(absl::StrCat(
            "workers still alive ", absl::FormatDuration(config_.hang_timeout),
            " after Shutdown; killing them"));
        KillWorkers(now);
      }
      if (now - start >= 2 * hang) break;
      absl::SleepFor(kPoll);
    }
    // The destructor waits for the manager thread: bound it too.
    auto destroyed = std::make_shared<std::atomic<bool>>(false);
    std::thread destroyer([pool = pool_.release(), destroyed] {
      delete pool;
      destroyed->store(true);
    });
    if (!PollUntil([&] { return destroyed->load(); },
                          config_.hang_timeout)) {
      destroyer.detach();  // abandoned with the pool
      ++result_.hung;
      result_.teardown_hung = true;
      result_.problems.push_back(
          absl::StrCat("the pool's destructor did not return within ",
                       absl::FormatDuration(config_.hang_timeout)));
      return;
    }
    destroyer.join();
  }

  // The earliest moment the armed fault can have fired: a worker fails on
  // its on_call-th call, which cannot reach it before on_call calls were
  // submitted; kMidTask fires delay_ms into that call; kInitializer as the
  // first worker starts (on the first Submit); kExit only at teardown.
  int64_t FaultEarliestNs() const {
    if (!plan_.fault || call_ns_.empty()) return kNever;
    const fault::Spec& f = *plan_.fault;
    if (f.point == fault::Point::kExit) return kNever;
    if (f.point == fault::Point::kInitializer) return call_ns_.front();
    const size_t i = std::min<size_t>(f.on_call, call_ns_.size()) - 1;
    int64_t t = call_ns_[i];
    if (f.point == fault::Point::kMidTask) {
      t += ToNs(absl::Milliseconds(f.delay_ms));
    }
    return t;
  }

  void Tally() {
    for (const auto& f : futures_) {
      std::string detail;
      Outcome o = f->Classify(&detail);
      result_.Add(o);
      if (o == Outcome::kUnresolved) detail = "a future was never resolved";
      if (!detail.empty()) result_.problems.push_back(detail);
    }
    for (const auto& m : maps_) {
      const WaveResult& c = m->counts;
      result_.completed += c.completed;
      result_.failed_broken += c.failed_broken;
      result_.failed_task_error += c.failed_task_error;
      result_.failed_other += c.failed_other;
      result_.cancelled += c.cancelled;
      result_.wrong_results += c.wrong_results;
      result_.unresolved += m->timed_out;
      result_.rejected += m->never_sent;
      for (const std::string& d : m->details) result_.problems.push_back(d);
      if (m->timed_out > 0) {
        result_.problems.push_back(absl::StrCat(
            m->timed_out, " Map elements never resolved (Map timed out)"));
      }
    }
    const int64_t broken = events_->first_broken_ns.load();
    if (broken == kNever) return;
    result_.broken = true;
    if (tool_kill_ns_ <= broken) return;  // the tool broke it: no sample
    // A worker's fault is timed from when it fired (the worker wrote the
    // time), else from the Submit that would make it fire (an upper bound).
    const int64_t fault_ns =
        fired_ns_ != kNever ? fired_ns_ : FaultEarliestNs();
    const int64_t disruption = std::min(kill_ns_, fault_ns);
    if (disruption == kNever) {
      if (!result_.fault_armed && !result_.kill_delivered) {
        result_.spurious_broken = true;
        result_.problems.push_back(
            "the pool broke with no fault armed and no worker signalled");
      }
      return;
    }
    result_.detect_ms = std::max<int64_t>(0, broken - disruption) / 1e6;
    result_.detect_from_kill = kill_ns_ <= fault_ns;
    result_.detect_from_fired = !result_.detect_from_kill && fired_ns_ != kNever;
  }

  const WavePlan& plan_;
  const WaveConfig& config_;
  const std::shared_ptr<Events> events_;
  std::unique_ptr<ProcessPoolExecutor> pool_;
  std::vector<std::unique_ptr<Tracked>> futures_;
  std::vector<std::unique_ptr<MapRun>> maps_;
  std::vector<int64_t> call_ns_;   // when each call was submitted, in order
  int64_t kill_ns_ = kNever;       // the outside signal
  int64_t fired_ns_ = kNever;      // the first worker fault that fired
  int64_t tool_kill_ns_ = kNever;  // the tool's own KillWorkers
  int64_t stopped_since_ns_ = kNever;
  WaveResult result_;
};

}  // namespace

WaveResult RunWave(const WavePlan& plan, const WaveConfig& config) {
  return Wave(plan, config).Run();
}

}  // namespace chaos
}  // namespace procpool
