// The totals of a chaos run, its one-line progress display, and its final
// report: a table, or (--json) one line of JSON.
//
// Example:
//   Summary s;
//   s.transport = "unix";
//   s.Add(RunWave(plan, config));
//   s.AddLeaks(checker.Check(absl::Seconds(2)));
//   PrintJson(std::cout, s);
//
// Thread safety: none; used by the thread that runs the waves.
#ifndef PROCPOOL_TOOLS_CHAOS_SUMMARY_H_
#define PROCPOOL_TOOLS_CHAOS_SUMMARY_H_

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "tools/chaos/leaks.h"
#include "tools/chaos/wave.h"

namespace procpool {
namespace chaos {

struct Summary {
  // The run.
  std::string transport;
  std::string start_method;
  uint64_t seed = 0;
  double seconds = 0;  // wall time the waves took

  int64_t waves = 0;
  int64_t waves_faulted = 0;  // armed a fault
  int64_t waves_killed = 0;   // signalled a worker from outside
  int64_t waves_broken = 0;   // saw BrokenProcessPool
  int64_t stop_kills = 0;  // the tool called KillWorkers for a stopped worker

  int64_t tasks_submitted = 0;
  int64_t tasks_rejected = 0;
  int64_t tasks_completed = 0;
  int64_t tasks_failed_broken = 0;
  int64_t tasks_failed_task_error = 0;
  int64_t tasks_failed_other = 0;
  int64_t tasks_cancelled = 0;
  int64_t wrong_results = 0;
  int64_t hung = 0;
  int64_t unresolved = 0;
  int64_t spurious_broken = 0;
  int64_t leaked_processes = 0;
  int64_t leaked_fds = 0;
  int64_t leaked_mappings = 0;
  bool aborted = false;  // a pool could not be destroyed: the run stopped

  std::vector<double> detect_ms;        // every sample
  std::vector<double> detect_kill_ms;   // timed from kill(2)
  std::vector<double> detect_fired_ms;  // timed from the moment it fired
  std::vector<double> detect_fault_ms;  // timed from a Submit (upper bound)

  // Faults that fired, by kind (WaveResult::fired), and the kinds a dense
  // run cycles through (empty otherwise): the report lists every one of
  // them, with 0 for those never hit.
  std::map<std::string, int64_t> fired_by_kind;
  std::vector<std::string> kinds;

  // Faults that fired, all kinds together (what --faults counts).
  int64_t faults() const;
  // How many of `kinds` fired at least once.
  int64_t kinds_hit() const;

  void Add(const WaveResult& wave);
  void AddLeaks(const Leaks& leaks);
  // Nothing hung, leaked, was left unresolved, came back wrong or failed
  // with an unexpected exception, and the pool never broke by itself.
  bool Ok() const;
};

// The p-th percentile (0 < p <= 100, nearest rank), or nullopt if empty.
std::optional<double> Percentile(std::vector<double> samples, double p);

void PrintJson(std::ostream& out, const Summary& s);
void PrintTable(std::ostream& out, const Summary& s);

// The one-line display on stderr: rewritten in place on a terminal, else a
// line every few seconds.
class Progress {
 public:
  explicit Progress(double total_seconds);
  // Shows `s` after `elapsed` seconds (rate-limited unless `force`).
  void Update(const Summary& s, double elapsed, bool force = false);
  // Ends the display (clears the line on a terminal).
  void Done();

 private:
  const double total_seconds_;
  const bool tty_;
  double last_shown_ = -1e9;
};

}  // namespace chaos
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_CHAOS_SUMMARY_H_
