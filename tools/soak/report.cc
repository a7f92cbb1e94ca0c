#include "tools/soak/report.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace procpool {
namespace soak {

void PrintHeader(std::ostream& out) {
  out << absl::StrFormat(
      "%-10s %9s %7s %8s %8s %8s %8s %8s %8s %8s %5s %4s %7s\n",
      "checkpoint", "tasks", "seconds", "heap_kib", "anon_kib", "file_kib",
      "shm_kib", "rss_kib", "raw_rss", "hwm_kib", "maps", "fds", "threads");
}

void PrintRow(std::ostream& out, int index, const Sample& s, bool base) {
  out << absl::StrFormat(
      "%-10s %9d %7.1f %8d %8d %8d %8d %8d %8d %8d %5d %4d %7d\n",
      absl::StrCat(index, base ? " (base)" : ""), s.tasks, s.seconds,
      s.heap_kib, s.anon_kib, s.file_kib, s.shmem_kib, s.rss_kib, s.raw_rss_kib,
      s.hwm_kib, s.maps, s.fds, s.threads);
}

void PrintVerdict(std::ostream& out, const Summary& s) {
  const Tally& t = s.tally;
  out << absl::StrFormat(
      "soak: %d tasks in %.1f s (%.0f/s): %d values, %d task errors, %d "
      "cancelled (%d cancels too late), %d timeouts, %d interrupts, %d "
      "worker deaths, %d restarts, %d workers seen, %d big values (%.0f MiB), %d pools "
      "(%d broken on purpose); %d wrong, %d unresolved\n",
      t.tasks, s.seconds, s.seconds > 0 ? t.tasks / s.seconds : 0.0,
      t.values, t.task_errors, t.cancelled, t.cancel_late, t.timeouts,
      t.interrupts, t.worker_deaths, s.restarts, t.workers_seen, t.big_values,
      t.big_bytes / 1048576.0, t.pools, t.broken_pools, t.wrong,
      t.unresolved);
  if (!s.measured) {
    out << "soak: no verdict on growth (the run did not reach its last "
           "checkpoint)\n";
    return;
  }
  const Verdict& v = s.verdict;
  out << absl::StrFormat(
      "soak: from %d to %d tasks: anonymous resident memory %+.1f%% (bound "
      "%.1f%%; all of VmRSS %+.1f%%, not judged), descriptors %+d (slack "
      "%d), threads %+d (slack %d), mappings %+d (slack %d): %s\n",
      s.base.tasks, s.end.tasks, v.anon_growth_pct, s.bounds.rss_pct,
      v.rss_growth_pct, v.fd_growth, s.bounds.fd_slack, v.thread_growth,
      s.bounds.thread_slack, v.maps_growth, s.bounds.maps_slack,
      v.flat ? "flat" : absl::StrCat("GROWTH: ", v.why));
}

void PrintJson(std::ostream& out, const Summary& s) {
  const Tally& t = s.tally;
  std::string json = absl::StrFormat(
      "{\"transport\": \"%s\", \"start_method\": \"%s\", \"workers\": %d, "
      "\"tasks\": %d, \"target_tasks\": %d, \"seconds\": %.2f, "
      "\"rounds\": %d, \"submits\": %d, \"map_elements\": %d, "
      "\"values\": %d, \"task_errors\": %d, \"cancelled\": %d, "
      "\"cancel_late\": %d, \"timeouts\": %d, \"interrupts\": %d, "
      "\"worker_deaths\": %d, \"restarts\": %d, \"workers_seen\": %d, "
      "\"big_values\": %d, "
      "\"big_mib\": %.1f, \"pools\": %d, \"broken_pools\": %d, "
      "\"wrong\": %d, \"unresolved\": %d, \"hung\": %s, ",
      s.transport, s.start_method, s.workers, t.tasks, s.target_tasks,
      s.seconds, t.rounds, t.submits, t.map_elements, t.values,
      t.task_errors, t.cancelled, t.cancel_late, t.timeouts, t.interrupts,
      t.worker_deaths, s.restarts, t.workers_seen, t.big_values,
      t.big_bytes / 1048576.0,
      t.pools, t.broken_pools, t.wrong, t.unresolved,
      s.hung ? "true" : "false");
  if (s.measured) {
    const Sample& b = s.base;
    const Sample& e = s.end;
    absl::StrAppendFormat(
        &json,
        "\"base_tasks\": %d, \"heap_kib_base\": %d, \"heap_kib_end\": %d, "
        "\"anon_kib_base\": %d, \"anon_kib_end\": %d, "
        "\"anon_growth_pct\": %.2f, \"rss_kib_base\": %d, \"rss_kib_end\": "
        "%d, \"rss_growth_pct\": %.2f, \"raw_rss_kib_base\": %d, "
        "\"raw_rss_kib_end\": %d, \"file_kib_end\": %d, \"shmem_kib_end\": "
        "%d, \"hwm_kib_end\": %d, \"maps_base\": %d, \"maps_end\": %d, "
        "\"fds_base\": %d, \"fds_end\": %d, \"threads_base\": %d, "
        "\"threads_end\": %d, ",
        b.tasks, b.heap_kib, e.heap_kib, b.anon_kib, e.anon_kib, s.verdict.anon_growth_pct,
        b.rss_kib, e.rss_kib, s.verdict.rss_growth_pct, b.raw_rss_kib,
        e.raw_rss_kib, e.file_kib, e.shmem_kib, e.hwm_kib, b.maps, e.maps,
        b.fds, e.fds, b.threads, e.threads);
  }
  absl::StrAppendFormat(
      &json,
      "\"trim\": %s, \"mmap_threshold_kib\": %d, \"arena_max\": %d, "
      "\"rss_bound_pct\": %.1f, "
      "\"fd_slack\": %d, \"thread_slack\": %d, \"maps_slack\": %d, "
      "\"leak_for_test\": \"%s\", \"flat\": %s, \"ok\": %s}\n",
      s.trim ? "true" : "false", s.mmap_threshold_kib, s.arena_max,
      s.bounds.rss_pct,
      s.bounds.fd_slack, s.bounds.thread_slack, s.bounds.maps_slack,
      s.leak_for_test, s.measured && s.verdict.flat ? "true" : "false",
      s.ok ? "true" : "false");
  out << json;
}

}  // namespace soak
}  // namespace procpool
