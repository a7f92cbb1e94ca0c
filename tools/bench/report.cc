#include "tools/bench/report.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "absl/strings/str_format.h"

namespace procpool {
namespace bench {
namespace {

// Plain decimals (no exponent), with fewer digits as numbers grow.
std::string FormatValue(double v) {
  if (v >= 1000) return absl::StrFormat("%.0f", v);
  if (v >= 10) return absl::StrFormat("%.1f", v);
  return absl::StrFormat("%.3f", v);
}

}  // namespace

void PrintJson(std::ostream& out, const std::string& system,
               const std::vector<Figure>& figures) {
  for (const Figure& f : figures) {
    out << absl::StrFormat("{\"system\": \"%s\", \"metric\": \"%s\", "
                           "\"value\": %.3f}\n",
                           system, f.metric, f.value);
  }
  out.flush();
}

void PrintTable(std::ostream& out, const std::string& title,
                const std::vector<Figure>& figures) {
  size_t metric_width = 6;
  for (const Figure& f : figures) {
    metric_width = std::max(metric_width, f.metric.size());
  }
  out << title << "\n";
  out << absl::StrFormat("%-*s  %12s  %-8s  %s\n", metric_width, "metric",
                         "value", "unit", "how");
  out << std::string(metric_width + 2 + 12 + 2 + 8 + 2 + 40, '-') << "\n";
  for (const Figure& f : figures) {
    out << absl::StrFormat("%-*s  %12s  %-8s  %s\n", metric_width, f.metric,
                           FormatValue(f.value), f.unit, f.note);
  }
  out.flush();
}

Progress::Progress(int total_steps)
    : total_steps_(total_steps), tty_(isatty(STDERR_FILENO) == 1) {}

void Progress::Begin(const std::string& step) {
  ++step_;
  name_ = step;
  step_start_ = std::chrono::steady_clock::now();
  last_draw_ = step_start_;
  const std::string text =
      absl::StrFormat("[%d/%d] %s ...", step_, total_steps_, name_);
  if (tty_) {
    Draw(text);
  } else {
    std::cerr << text << std::endl;
  }
}

void Progress::Update(long done, long total) {
  if (!tty_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100) && done < total) {
    return;
  }
  last_draw_ = now;
  Draw(absl::StrFormat("[%d/%d] %s %3d%%", step_, total_steps_, name_,
                       static_cast<int>(100.0 * done / std::max(total, 1L))));
}

void Progress::End() {
  const double secs = std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - step_start_)
                          .count();
  const std::string text = absl::StrFormat("[%d/%d] %s done (%.1f s)", step_,
                                           total_steps_, name_, secs);
  if (tty_) {
    Draw(text);
    std::cerr << "\n";
  } else {
    std::cerr << text << std::endl;
  }
}

void Progress::Draw(const std::string& text) {
  std::cerr << "\r\033[K" << text << std::flush;
}

}  // namespace bench
}  // namespace procpool
