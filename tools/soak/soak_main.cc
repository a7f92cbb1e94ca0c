// tools/soak: a long run of mixed tasks through ProcessPoolExecutor pools
// that checks every result and that the parent's resident memory,
// descriptors and threads stay flat (issue 16, point 4). See kUsage below,
// or `bazel run //tools/soak -- --help`.
//
// (Named soak_main.cc so that absl's --help lists the flags defined here.)
// This binary is its own worker binary: main() calls procpool::Init first.
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "executor/process_pool_executor.h"
#include "glog/logging.h"
#include "tools/soak/report.h"
#include "tools/soak/runner.h"
#include "tools/soak/sampler.h"
#include "transport/transport.h"

ABSL_FLAG(int64_t, tasks, 20000,
          "Tasks to run (a Submit or a Map element each); the issue's long "
          "run is 1000000.");
ABSL_FLAG(std::string, transport, "",
          "shm | unix | capnp; empty: --procpool_transport's value.");
ABSL_FLAG(std::string, start_method, "forkserver", "fork | forkserver | spawn");
ABSL_FLAG(int, workers, 2, "Workers of each pool.");
ABSL_FLAG(int, round, 1000,
          "Tasks per round (a burst of Submits, a Map, a killed worker).");
ABSL_FLAG(int, checkpoints, 10,
          "Checkpoints (every tasks/N tasks). The verdict compares the last "
          "with the first, taken after the first 1/N of the tasks.");
ABSL_FLAG(int, max_tasks_per_child, 200,
          "Recycle the main pool's workers after this many tasks (0: never; "
          "ignored with fork, which refuses it).");
ABSL_FLAG(int, short_pool_every, 5,
          "Create, use and destroy a short-lived pool every N rounds (every "
          "other one broken on purpose); 0: never.");
ABSL_FLAG(double, rss_growth_pct, 5,
          "Bound on the growth of anonymous resident memory (RssAnon), in "
          "percent.");
ABSL_FLAG(int64_t, fd_slack, 0, "Descriptors the parent may gain.");
ABSL_FLAG(int64_t, thread_slack, 0, "Threads the parent may gain.");
ABSL_FLAG(int64_t, maps_slack, 0,
          "Mappings (lines of /proc/self/maps) the parent may gain.");
ABSL_FLAG(absl::Duration, hang_timeout, absl::Seconds(60),
          "A future not done this long counts as unresolved and stops the "
          "run; so does no progress at all for this long plus 30 s.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the big values' sizes.");
ABSL_FLAG(absl::Duration, settle, absl::Milliseconds(1200),
          "Quiet time before each checkpoint: past 1 s, the big-message "
          "buffers the pool keeps for reuse (common/big_buffers.h) are freed.");
ABSL_FLAG(int, mmap_threshold_kib, 128,
          "mallopt(M_MMAP_THRESHOLD) in the parent: blocks this big or bigger "
          "are mapped and unmapped on their own. 0: glibc's default, whose "
          "threshold rises to the biggest block freed so far, so that each "
          "thread's heap keeps up to twice the biggest message resident "
          "(tools/RELIABILITY.md, \"Soak\").");
ABSL_FLAG(int, arena_max, 1,
          "mallopt(M_ARENA_MAX) in the parent: how many malloc arenas its "
          "threads share. 0: glibc's default (up to 8 per core, each made "
          "when threads contend and never given back, so that resident "
          "memory steps up by an arena now and then).");
ABSL_FLAG(bool, trim, true,
          "Read resident memory after malloc_trim(0), i.e. without the free "
          "memory glibc keeps (the raw figure is printed too).");
ABSL_FLAG(bool, pool_logs, false, "Let the pool's own log lines through.");
ABSL_FLAG(std::string, leak_for_test, "",
          "Test only: fd:N keeps one descriptor, rss:N one MiB, per N tasks, "
          "so that a test can see the verdict report growth.");

namespace procpool {
namespace soak {
namespace {

constexpr char kUsage[] = R"(soak: many mixed tasks; checks that nothing grows.

  bazel run -c opt //tools/soak -- --transport=unix --tasks=1000000
      [--start_method=forkserver|fork|spawn] [--workers=2] [--round=1000]

Runs --tasks tasks in rounds (tools/soak/runner.h): Submits of small values,
tasks that throw, per-task timeouts that fire and that do not, Cancel() and
Interrupt(), 1-4 MiB arguments and results, Maps of varied chunk and buffer
sizes, workers killed and replaced (on_worker_death = kReplaceWorker) and
recycled (max_tasks_per_child), and short-lived pools, some broken on purpose.
Every result is checked.

At each of --checkpoints checkpoints (the main pool at rest: every worker up,
nothing in flight, --settle of quiet) it reads the parent's resident memory
(after malloc_trim; RssAnon, RssFile, RssShmem, VmRSS), mappings,
descriptors and threads from /proc/self and prints a row. Flat: from the
first checkpoint (after the first tasks/N tasks) to the last, anonymous
resident memory grew by at most --rss_growth_pct percent, descriptors,
threads and mappings by at most their --*_slack (default 0: equal). Then it
prints a verdict and one line of JSON. tools/RELIABILITY.md ("Soak") says
why memory is read this way.

Every wait is bounded by --hang_timeout. Exit status: 0 if every result was
right, every future resolved and nothing grew beyond its bound; 1 otherwise;
2 for bad flags.)";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// --leak_for_test: keeps what it takes until the process exits.
class Leaker {
 public:
  bool Parse(const std::string& spec) {
    if (spec.empty()) return true;
    std::vector<std::string> parts = absl::StrSplit(spec, ':');
    if (parts.size() != 2 || (parts[0] != "fd" && parts[0] != "rss") ||
        !absl::SimpleAtoi(parts[1], &every_) || every_ <= 0) {
      return false;
    }
    fds_ = parts[0] == "fd";
    return true;
  }
  void CatchUp(int64_t tasks) {
    if (every_ <= 0) return;
    for (; taken_ < tasks / every_; ++taken_) {
      if (fds_) {
        open("/dev/null", O_RDONLY | O_CLOEXEC);
      } else {
        blocks_.push_back(std::make_unique<char[]>(1 << 20));
        for (int i = 0; i < (1 << 20); i += 4096) blocks_.back()[i] = 1;
      }
    }
  }

 private:
  int64_t every_ = 0;
  bool fds_ = false;
  int64_t taken_ = 0;
  std::vector<std::unique_ptr<char[]>> blocks_;
};

// Ends the process if the runner makes no progress for `bound`: a pool that
// cannot be shut down, a Map that never returns. Every other wait is bounded
// on its own.
class Watchdog {
 public:
  Watchdog(const Runner& runner, absl::Duration bound, std::string json)
      : thread_([this, &runner, bound, json] {
          while (!stop_.load()) {
            absl::SleepFor(absl::Milliseconds(200));
            const int64_t idle = NowNs() - runner.heartbeat().load();
            if (idle > absl::ToInt64Nanoseconds(bound)) {
              std::cerr << "soak: PROBLEM: no progress for "
                        << absl::FormatDuration(absl::Nanoseconds(idle))
                        << " while " << runner.phase().load() << "\n";
              std::cout << json;
              std::cout.flush();
              _exit(1);
            }
          }
        }) {}
  ~Watchdog() {
    stop_.store(true);
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::optional<StartMethod> ParseStartMethod(const std::string& name) {
  if (name == "fork") return StartMethod::kFork;
  if (name == "forkserver") return StartMethod::kForkServer;
  if (name == "spawn") return StartMethod::kSpawn;
  return std::nullopt;
}

int Main() {
  Summary summary;
  summary.transport = absl::GetFlag(FLAGS_transport);
  if (summary.transport.empty()) {
    summary.transport = absl::GetFlag(FLAGS_procpool_transport);
  }
  if (!GetTransport(summary.transport).ok()) {
    std::cerr << "soak: transport \"" << summary.transport
              << "\" is not registered in this build (known: "
              << absl::StrJoin(KnownTransports(), ", ") << ")\n";
    return 2;
  }
  summary.start_method = absl::GetFlag(FLAGS_start_method);
  const std::optional<StartMethod> method =
      ParseStartMethod(summary.start_method);
  const int64_t target = absl::GetFlag(FLAGS_tasks);
  const int checkpoints = absl::GetFlag(FLAGS_checkpoints);
  RunnerConfig config;
  config.transport = summary.transport;
  config.workers = absl::GetFlag(FLAGS_workers);
  config.round = absl::GetFlag(FLAGS_round);
  config.max_tasks_per_child = absl::GetFlag(FLAGS_max_tasks_per_child);
  config.short_pool_every = absl::GetFlag(FLAGS_short_pool_every);
  config.hang_timeout = absl::GetFlag(FLAGS_hang_timeout);
  config.seed = absl::GetFlag(FLAGS_seed);
  summary.workers = config.workers;
  summary.target_tasks = target;
  summary.leak_for_test = absl::GetFlag(FLAGS_leak_for_test);
  summary.trim = absl::GetFlag(FLAGS_trim);
  summary.mmap_threshold_kib = absl::GetFlag(FLAGS_mmap_threshold_kib);
  summary.arena_max = absl::GetFlag(FLAGS_arena_max);
  summary.bounds.rss_pct = absl::GetFlag(FLAGS_rss_growth_pct);
  summary.bounds.fd_slack = absl::GetFlag(FLAGS_fd_slack);
  summary.bounds.thread_slack = absl::GetFlag(FLAGS_thread_slack);
  summary.bounds.maps_slack = absl::GetFlag(FLAGS_maps_slack);
  Leaker leaker;
  if (!method) {
    std::cerr << "soak: unknown --start_method=" << summary.start_method
              << " (known: fork, forkserver, spawn)\n";
    return 2;
  }
  config.start_method = *method;
  if (checkpoints < 2 || config.round < 20 || config.workers < 1 ||
      config.max_tasks_per_child < 0 || config.short_pool_every < 0 ||
      target / checkpoints < config.round) {
    std::cerr << "soak: want --checkpoints >= 2, --round >= 20, --workers "
                 ">= 1, and --tasks at least --checkpoints x --round\n";
    return 2;
  }
  if (!leaker.Parse(summary.leak_for_test)) {
    std::cerr << "soak: --leak_for_test takes fd:N or rss:N (N > 0)\n";
    return 2;
  }
  if (summary.mmap_threshold_kib < 0 ||
      (summary.mmap_threshold_kib > 0 &&
       mallopt(M_MMAP_THRESHOLD, summary.mmap_threshold_kib * 1024) != 1)) {
    std::cerr << "soak: mallopt(M_MMAP_THRESHOLD, "
              << summary.mmap_threshold_kib << " KiB) refused\n";
    return 2;
  }
  if (summary.arena_max < 0 ||
      (summary.arena_max > 0 &&
       mallopt(M_ARENA_MAX, summary.arena_max) != 1)) {
    std::cerr << "soak: mallopt(M_ARENA_MAX, " << summary.arena_max
              << ") refused\n";
    return 2;
  }

  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  };
  auto report = [&summary] {
    if (summary.measured) PrintVerdict(std::cout, summary);
    PrintJson(std::cout, summary);
    std::cout.flush();
    for (const std::string& p : summary.tally.problems) {
      std::cerr << "soak: PROBLEM: " << p << "\n";
    }
    std::cerr.flush();
  };
  Summary hung_summary = summary;
  hung_summary.hung = true;
  std::ostringstream hung_json;
  PrintJson(hung_json, hung_summary);

  Tally& tally = summary.tally;
  {
    Runner runner(config, &tally);
    Watchdog watchdog(runner, config.hang_timeout + absl::Seconds(30),
                      hung_json.str());
    PrintHeader(std::cout);
    PrintRow(std::cout, 0, TakeSample(0, elapsed(), summary.trim), false);
    std::cout.flush();
    int next = 1;  // the next checkpoint
    try {
      for (int64_t r = 0; tally.tasks < target; ++r) {
        runner.Round(r);
        leaker.CatchUp(tally.tasks);
        const int64_t due = target * next / checkpoints;
        if (tally.tasks < due && tally.tasks < target) continue;
        runner.Settle(absl::GetFlag(FLAGS_settle));
        const Sample sample =
            TakeSample(tally.tasks, elapsed(), summary.trim);
        if (next == 1) summary.base = sample;
        summary.end = sample;
        PrintRow(std::cout, next, sample, next == 1);
        std::cout.flush();
        while (next <= checkpoints &&
               tally.tasks >= target * next / checkpoints) {
          ++next;
        }
      }
      summary.restarts = runner.Restarts();
    } catch (const Hung& e) {
      tally.problems.push_back(e.what());
      summary.hung = true;
    } catch (const std::exception& e) {
      ++tally.wrong;
      tally.problems.push_back(
          absl::StrCat("the pool threw where it must not: ", e.what()));
    }
    summary.seconds = elapsed();
    summary.measured = next > 2 && !summary.hung;
    if (summary.measured) {
      summary.verdict = Judge(summary.base, summary.end, summary.bounds);
    }
    summary.ok = summary.measured && summary.verdict.flat &&
                 tally.wrong == 0 && tally.unresolved == 0;
    if (summary.hung) {
      report();
      _exit(1);  // the stuck pool's threads would keep exit() waiting
    }
  }
  report();
  return summary.ok ? 0 : 1;
}

}  // namespace
}  // namespace soak
}  // namespace procpool

int main(int argc, char** argv) {
  procpool::Init(argc, argv);  // in a worker: serves here, never returns
  absl::SetProgramUsageMessage(procpool::soak::kUsage);
  absl::ParseCommandLine(argc, argv);
  // Log to stderr only (log files would count as descriptors), and by
  // default not the pool's lines about the workers it kills on purpose.
  FLAGS_logtostderr = true;
  if (!absl::GetFlag(FLAGS_pool_logs)) FLAGS_minloglevel = google::GLOG_FATAL;
  google::InitGoogleLogging(argv[0]);
  return procpool::soak::Main();
}
