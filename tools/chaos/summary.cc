#include "tools/chaos/summary.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace procpool {
namespace chaos {
namespace {

std::string Ms(const std::optional<double>& v) {
  return v ? absl::StrFormat("%.1f", *v) : "null";
}

// JSON string escaping for the few strings we print (names, no controls
// expected, but be safe).
std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

int64_t Summary::faults() const {
  int64_t n = 0;
  for (const auto& [kind, count] : fired_by_kind) n += count;
  return n;
}

int64_t Summary::kinds_hit() const {
  int64_t n = 0;
  for (const std::string& kind : kinds) {
    auto it = fired_by_kind.find(kind);
    n += it != fired_by_kind.end() && it->second > 0 ? 1 : 0;
  }
  return n;
}

void Summary::Add(const WaveResult& w) {
  ++waves;
  for (const auto& [kind, count] : w.fired) fired_by_kind[kind] += count;
  waves_faulted += w.fault_armed ? 1 : 0;
  waves_killed += w.kill_delivered ? 1 : 0;
  waves_broken += w.broken ? 1 : 0;
  stop_kills += w.stop_killed ? 1 : 0;
  tasks_submitted += w.submitted();
  tasks_rejected += w.rejected;
  tasks_completed += w.completed;
  tasks_failed_broken += w.failed_broken;
  tasks_failed_task_error += w.failed_task_error;
  tasks_failed_other += w.failed_other;
  tasks_cancelled += w.cancelled;
  wrong_results += w.wrong_results;
  hung += w.hung;
  unresolved += w.unresolved;
  spurious_broken += w.spurious_broken ? 1 : 0;
  aborted |= w.teardown_hung;
  if (w.detect_ms) {
    detect_ms.push_back(*w.detect_ms);
    (w.detect_from_kill    ? detect_kill_ms
     : w.detect_from_fired ? detect_fired_ms
                           : detect_fault_ms)
        .push_back(*w.detect_ms);
  }
}

void Summary::AddLeaks(const Leaks& leaks) {
  leaked_processes += leaks.processes;
  leaked_fds += leaks.fds;
  leaked_mappings += leaks.mappings;
}

bool Summary::Ok() const {
  return hung == 0 && unresolved == 0 && leaked_processes == 0 &&
         leaked_fds == 0 && leaked_mappings == 0 && wrong_results == 0 &&
         tasks_failed_other == 0 && spurious_broken == 0 && !aborted;
}

std::optional<double> Percentile(std::vector<double> samples, double p) {
  if (samples.empty()) return std::nullopt;
  std::sort(samples.begin(), samples.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * samples.size()));
  rank = std::clamp<size_t>(rank, 1, samples.size());
  return samples[rank - 1];
}

namespace {

// The exactly timed detection samples: from kill(2) and from a fault firing.
std::vector<double> Exact(const Summary& s) {
  std::vector<double> all = s.detect_kill_ms;
  all.insert(all.end(), s.detect_fired_ms.begin(), s.detect_fired_ms.end());
  return all;
}

}  // namespace

void PrintJson(std::ostream& out, const Summary& s) {
  out << "{\"transport\": " << Quoted(s.transport)
      << ", \"start_method\": " << Quoted(s.start_method)
      << ", \"seed\": " << s.seed
      << ", \"seconds\": " << absl::StrFormat("%.1f", s.seconds)
      << ", \"waves\": " << s.waves
      << ", \"faults\": " << s.faults()
      << ", \"waves_faulted\": " << s.waves_faulted
      << ", \"waves_killed\": " << s.waves_killed
      << ", \"waves_broken\": " << s.waves_broken
      << ", \"stop_kills\": " << s.stop_kills
      << ", \"tasks_submitted\": " << s.tasks_submitted
      << ", \"tasks_rejected\": " << s.tasks_rejected
      << ", \"tasks_completed\": " << s.tasks_completed
      << ", \"tasks_failed_broken\": " << s.tasks_failed_broken
      << ", \"tasks_failed_task_error\": " << s.tasks_failed_task_error
      << ", \"tasks_failed_other\": " << s.tasks_failed_other
      << ", \"tasks_cancelled\": " << s.tasks_cancelled
      << ", \"wrong_results\": " << s.wrong_results << ", \"hung\": " << s.hung
      << ", \"unresolved\": " << s.unresolved
      << ", \"spurious_broken\": " << s.spurious_broken
      << ", \"leaked_processes\": " << s.leaked_processes
      << ", \"leaked_fds\": " << s.leaked_fds
      << ", \"leaked_mappings\": " << s.leaked_mappings
      << ", \"detect_samples\": " << s.detect_ms.size()
      << ", \"detect_ms_p50\": " << Ms(Percentile(s.detect_ms, 50))
      << ", \"detect_ms_p99\": " << Ms(Percentile(s.detect_ms, 99))
      << ", \"detect_kill_ms_p50\": " << Ms(Percentile(s.detect_kill_ms, 50))
      << ", \"detect_kill_ms_p99\": " << Ms(Percentile(s.detect_kill_ms, 99))
      << ", \"detect_fired_ms_p50\": " << Ms(Percentile(s.detect_fired_ms, 50))
      << ", \"detect_fired_ms_p99\": " << Ms(Percentile(s.detect_fired_ms, 99))
      << ", \"detect_exact_ms_p99\": " << Ms(Percentile(Exact(s), 99))
      << ", \"detect_fault_ms_p50\": " << Ms(Percentile(s.detect_fault_ms, 50))
      << ", \"detect_fault_ms_p99\": " << Ms(Percentile(s.detect_fault_ms, 99))
      << ", \"fault_kinds\": " << s.kinds.size()
      << ", \"fault_kinds_hit\": " << s.kinds_hit()
      << ", \"faults_by_kind\": {";
  // Every kind of the catalogue (0 if never hit), then any other that fired.
  std::map<std::string, int64_t> by_kind = s.fired_by_kind;
  for (const std::string& kind : s.kinds) by_kind.emplace(kind, 0);
  const char* sep = "";
  for (const auto& [kind, count] : by_kind) {
    out << sep << Quoted(kind) << ": " << count;
    sep = ", ";
  }
  out << "}"
      << ", \"aborted\": " << (s.aborted ? "true" : "false")
      << ", \"ok\": " << (s.Ok() ? "true" : "false") << "}\n";
}

void PrintTable(std::ostream& out, const Summary& s) {
  auto row = [&out](const std::string& name, const std::string& value) {
    out << "  " << std::left << std::setw(28) << name << value << "\n";
  };
  auto n = [](int64_t v) { return absl::StrCat(v); };
  auto lat = [](const std::vector<double>& v) {
    return absl::StrCat(Ms(Percentile(v, 50)), " / ", Ms(Percentile(v, 99)),
                        " ms (", v.size(), " samples)");
  };
  out << "chaos: transport " << s.transport << ", start method "
      << s.start_method << ", seed " << s.seed << ", "
      << absl::StrFormat("%.1f", s.seconds) << " s\n";
  row("waves",
      absl::StrCat(s.waves, " (", s.waves_faulted, " with a fault, ",
                   s.waves_killed, " with a worker signalled, ", s.waves_broken,
                   " broken, ", s.stop_kills, " stopped workers killed)"));
  row("tasks submitted", n(s.tasks_submitted));
  row("  completed", n(s.tasks_completed));
  row("  failed: BrokenProcessPool", n(s.tasks_failed_broken));
  row("  failed: the task's own", n(s.tasks_failed_task_error));
  row("  failed: other exceptions", n(s.tasks_failed_other));
  row("  cancelled", n(s.tasks_cancelled));
  row("  wrong results", n(s.wrong_results));
  row("  unresolved", n(s.unresolved));
  row("rejected by Submit/Map", n(s.tasks_rejected));
  row("hung", n(s.hung));
  row("broke by itself", n(s.spurious_broken));
  row("leaked processes", n(s.leaked_processes));
  row("leaked descriptors", n(s.leaked_fds));
  row("leaked shared mappings", n(s.leaked_mappings));
  row("faults fired", absl::StrCat(s.faults()));
  if (!s.kinds.empty()) {
    row("  kinds hit", absl::StrCat(s.kinds_hit(), " of ", s.kinds.size()));
  }
  std::map<std::string, int64_t> by_kind = s.fired_by_kind;
  for (const std::string& kind : s.kinds) by_kind.emplace(kind, 0);
  for (const auto& [kind, count] : by_kind) row("  " + kind, n(count));
  row("detection p50 / p99", lat(s.detect_ms));
  row("  from kill(2)", lat(s.detect_kill_ms));
  row("  from the fault firing", lat(s.detect_fired_ms));
  row("  exact (both above)", lat(Exact(s)));
  row("  from Submit (upper bound)", lat(s.detect_fault_ms));
  out << (s.aborted ? "ABORTED: a pool could not be destroyed\n" : "")
      << (s.Ok() ? "OK\n" : "FAILED: see the problems above\n");
}

Progress::Progress(double total_seconds)
    : total_seconds_(total_seconds), tty_(isatty(STDERR_FILENO) == 1) {}

void Progress::Update(const Summary& s, double elapsed, bool force) {
  if (!force && elapsed - last_shown_ < (tty_ ? 0.2 : 5.0)) return;
  last_shown_ = elapsed;
  std::string line = absl::StrFormat(
      "chaos %s/%s %4.0fs/%.0fs  waves %d (broken %d) faults %d  tasks %d: ok %d "
      "broken %d cancelled %d  hung %d unresolved %d leaked %d proc %d fd",
      s.transport, s.start_method, elapsed, total_seconds_, s.waves,
      s.waves_broken, s.faults(), s.tasks_submitted, s.tasks_completed,
      s.tasks_failed_broken, s.tasks_cancelled, s.hung, s.unresolved,
      s.leaked_processes, s.leaked_fds);
  if (tty_) {
    std::cerr << "\r\033[K" << line << std::flush;
  } else {
    std::cerr << line << "\n" << std::flush;
  }
}

void Progress::Done() {
  if (tty_) std::cerr << "\r\033[K" << std::flush;
}

}  // namespace chaos
}  // namespace procpool
