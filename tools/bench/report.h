// What the benchmark prints: figures, as a table or as JSON lines, and a
// progress display on stderr.
//
// Example:
//   Progress progress(/*total_steps=*/6);
//   progress.Begin("roundtrip");
//   for (int i = 0; i < n; ++i) { ...; progress.Update(i + 1, n); }
//   progress.End();
//   std::vector<Figure> figures = ...;
//   PrintJson(std::cout, "procpool-unix", figures);
//
// Not thread-safe: one thread drives a Progress.
#ifndef PROCPOOL_TOOLS_BENCH_REPORT_H_
#define PROCPOOL_TOOLS_BENCH_REPORT_H_

#include <chrono>
#include <ostream>
#include <string>
#include <vector>

namespace procpool {
namespace bench {

// One measured number.
struct Figure {
  std::string metric;  // e.g. "roundtrip_us_p50" (the JSON "metric")
  double value = 0;
  std::string unit;    // for the table only, e.g. "us"
  std::string note;    // for the table only: how it was measured
  // Extra figures (e.g. the cold fork-server start) go into the JSON output
  // too, and into the table as a note of the figure before them.
  bool extra = false;
};

// One line per figure: {"system": SYSTEM, "metric": NAME, "value": NUMBER}.
void PrintJson(std::ostream& out, const std::string& system,
               const std::vector<Figure>& figures);

// A readable table: a header line (`title`), then metric, value, unit, note.
void PrintTable(std::ostream& out, const std::string& title,
                const std::vector<Figure>& figures);

// Progress on stderr: on a terminal, one line rewritten in place; otherwise
// a line as each step begins and ends (so logs stay readable).
class Progress {
 public:
  explicit Progress(int total_steps);

  void Begin(const std::string& step);
  // `done` of `total` units of the current step are finished. Cheap: redraws
  // at most every 100 ms.
  void Update(long done, long total);
  void End();

 private:
  void Draw(const std::string& text);

  const int total_steps_;
  const bool tty_;
  int step_ = 0;
  std::string name_;
  std::chrono::steady_clock::time_point step_start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace bench
}  // namespace procpool

#endif  // PROCPOOL_TOOLS_BENCH_REPORT_H_
