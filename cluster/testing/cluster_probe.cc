// The program the cluster tests run under mpirun and srun: rank 0 runs one
// scenario against the cluster's workers and prints what happened, one line
// each (stdout, flushed), for the tests to check:
//   WORKERS N            the slots the pool got (its Stats())
//   RESULT ok sum=S      a Map of Square over 0..99 (S = 328350)
//   BROKEN <what()>      a BrokenProcessPool
//   WORKER_DIED <what()> a WorkerDiedError (on_worker_death = replace)
//   RUNNING              long tasks are running on every worker (hold)
//   DONE                 the scenario finished
// Scenarios (--scenario): ok; exit_code (ok, then exit 7); task_kills_worker
// (a task SIGKILLs its worker); kill_rank (a task SIGKILLs its worker's
// daemon rank); hold (every worker sleeps for --hold_seconds while a test
// removes a host). --policy=break|replace picks Options::on_worker_death.
//
//   mpirun --enable-recovery -n 3 cluster_probe --procpool_cluster=mpi \
//       --scenario=kill_rank --policy=replace
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "executor/process_pool_executor.h"

ABSL_FLAG(std::string, scenario, "ok",
          "ok | exit_code | task_kills_worker | kill_rank | hold");
ABSL_FLAG(std::string, policy, "break", "break | replace");
ABSL_FLAG(int, hold_seconds, 60, "hold: how long each worker's task sleeps");

namespace probe {

int Square(int x) { return x * x; }
PROCPOOL_TASK(Square);

int KillWorker() {
  kill(getpid(), SIGKILL);
  pause();
  return 0;
}
PROCPOOL_TASK(KillWorker);

// The worker's parent is its daemon: the cluster rank itself.
int KillDaemonRank() {
  kill(getppid(), SIGKILL);
  pause();  // the worker dies with its daemon (PR_SET_PDEATHSIG)
  return 0;
}
PROCPOOL_TASK(KillDaemonRank);

int Hold(int seconds) {
  sleep(static_cast<unsigned>(seconds));
  return 1;
}
PROCPOOL_TASK(Hold);

void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// Map Square over 0..99 and print the sum.
void MapSquares(procpool::ProcessPoolExecutor& pool) {
  std::vector<int> xs;
  for (int i = 0; i < 100; ++i) xs.push_back(i);
  long sum = 0;
  try {
    for (int y : pool.Map(&Square, xs)) sum += y;
  } catch (const std::exception& e) {
    Say(std::string("MAP_FAILED ") + e.what());
    return;
  }
  Say("RESULT ok sum=" + std::to_string(sum));
}

// Runs `fault` as one task; prints how its future ended.
template <typename F>
void Expect(procpool::ProcessPoolExecutor& pool, F fault) {
  try {
    pool.Submit(fault).Get(absl::Seconds(60));
    Say("VALUE (the fault did not fire)");
  } catch (const procpool::BrokenProcessPool& e) {
    Say(std::string("BROKEN ") + e.what());
  } catch (const procpool::WorkerDiedError& e) {
    Say(std::string("WORKER_DIED ") + e.what());
  } catch (const std::exception& e) {
    Say(std::string("OTHER ") + e.what());
  }
}

int Run() {
  const std::string scenario = absl::GetFlag(FLAGS_scenario);
  procpool::Options options;
  if (absl::GetFlag(FLAGS_policy) == "replace") {
    options.on_worker_death = procpool::WorkerDeathPolicy::kReplaceWorker;
  }
  procpool::ProcessPoolExecutor pool(options);
  // Every worker connected: one trivial task per slot would not pin them, so
  // read the slot count from the pool's workers once they ran something.
  MapSquares(pool);
  Say("WORKERS " + std::to_string(pool.Stats().size()));
  if (scenario == "ok") {
  } else if (scenario == "exit_code") {
    Say("DONE");
    return 7;
  } else if (scenario == "task_kills_worker") {
    Expect(pool, &KillWorker);
    if (options.on_worker_death == procpool::WorkerDeathPolicy::kReplaceWorker) {
      MapSquares(pool);
    }
  } else if (scenario == "kill_rank") {
    Expect(pool, &KillDaemonRank);
    if (options.on_worker_death == procpool::WorkerDeathPolicy::kReplaceWorker) {
      MapSquares(pool);
    }
  } else if (scenario == "hold") {
    const int n = static_cast<int>(pool.Stats().size());
    std::vector<procpool::Future<int>> held;
    for (int i = 0; i < n; ++i) {
      held.push_back(pool.Submit(&Hold, absl::GetFlag(FLAGS_hold_seconds)));
    }
    absl::SleepFor(absl::Milliseconds(500));  // handed out, running
    Say("RUNNING");
    // The first failure is printed when it happens (not after the tasks
    // that run on to their end), then the rest are waited for.
    const absl::Duration bound =
        absl::Seconds(absl::GetFlag(FLAGS_hold_seconds) + 30);
    procpool::Wait(held, bound, procpool::ReturnWhen::kFirstException);
    bool said = false;
    for (procpool::Future<int>& f : held) {
      if (!f.Done()) continue;
      try {
        f.Get(absl::ZeroDuration());
      } catch (const procpool::BrokenProcessPool& e) {
        Say(std::string("BROKEN ") + e.what());
        said = true;
        break;
      } catch (const procpool::WorkerDiedError& e) {
        Say(std::string("WORKER_DIED ") + e.what());
        said = true;
        break;
      } catch (const std::exception& e) {
        Say(std::string("OTHER ") + e.what());
        said = true;
        break;
      }
    }
    if (!said) Say("HELD (no held task failed)");
    procpool::Wait(held, bound);
    if (options.on_worker_death == procpool::WorkerDeathPolicy::kReplaceWorker) {
      MapSquares(pool);
    }
  } else {
    Say("unknown --scenario=" + scenario);
    return 2;
  }
  Say("DONE");
  return 0;
}

}  // namespace probe

int main(int argc, char** argv) {
  procpool::Init(argc, argv);  // ranks other than 0 serve here
  absl::ParseCommandLine(argc, argv);
  return probe::Run();
}
