#include "tools/soak/sampler.h"

#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace procpool {
namespace soak {
namespace {

// /proc/self/status, read with read(2) into a fixed buffer: no allocation
// that would itself move the resident size being measured.
int64_t StatusField(const char* name) {
  char buffer[8192];
  const int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t used = 0;
  while (used < sizeof(buffer) - 1) {
    const ssize_t n = read(fd, buffer + used, sizeof(buffer) - 1 - used);
    if (n <= 0) break;
    used += static_cast<size_t>(n);
  }
  close(fd);
  buffer[used] = '\0';
  const size_t len = strlen(name);
  for (const char* line = buffer; *line != '\0';) {
    if (strncmp(line, name, len) == 0 && line[len] == ':') {
      return strtoll(line + len + 1, nullptr, 10);
    }
    const char* next = strchr(line, '\n');
    if (next == nullptr) break;
    line = next + 1;
  }
  return -1;
}

int64_t CountFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int64_t n = 0;
  while (const struct dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the directory's own descriptor
}

int64_t CountMaps() {
  const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buffer[8192];
  int64_t lines = 0;
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) {
    for (ssize_t i = 0; i < n; ++i) lines += buffer[i] == '\n';
  }
  close(fd);
  return n < 0 ? -1 : lines;
}

}  // namespace

Sample TakeSample(int64_t tasks, double seconds, bool trim) {
  Sample s;
  s.tasks = tasks;
  s.seconds = seconds;
  s.raw_rss_kib = StatusField("VmRSS");
  if (trim) malloc_trim(0);
  s.rss_kib = trim ? StatusField("VmRSS") : s.raw_rss_kib;
  s.anon_kib = StatusField("RssAnon");
  s.file_kib = StatusField("RssFile");
  s.shmem_kib = StatusField("RssShmem");
  s.maps = CountMaps();
  const struct mallinfo2 m = mallinfo2();
  s.heap_kib = static_cast<int64_t>((m.uordblks + m.hblkhd) / 1024);
  s.hwm_kib = StatusField("VmHWM");
  s.threads = StatusField("Threads");
  s.fds = CountFds();
  return s;
}

Verdict Judge(const Sample& base, const Sample& end, const Bounds& bounds) {
  Verdict v;
  if (base.anon_kib <= 0 || end.anon_kib < 0 || base.rss_kib <= 0 ||
      end.rss_kib < 0 || base.fds < 0 || end.fds < 0 || base.threads < 0 ||
      end.threads < 0 || base.maps < 0 || end.maps < 0) {
    v.flat = false;
    v.why = "a figure could not be read from /proc/self";
    return v;
  }
  auto pct = [](int64_t from, int64_t to) {
    return 100.0 * static_cast<double>(to - from) / static_cast<double>(from);
  };
  v.anon_growth_pct = pct(base.anon_kib, end.anon_kib);
  v.rss_growth_pct = pct(base.rss_kib, end.rss_kib);
  v.fd_growth = end.fds - base.fds;
  v.thread_growth = end.threads - base.threads;
  v.maps_growth = end.maps - base.maps;
  if (v.anon_growth_pct > bounds.rss_pct) {
    absl::StrAppend(&v.why,
                    absl::StrFormat("resident memory (anonymous) grew %.1f%% "
                                    "(%d -> %d KiB; bound %.1f%%); ",
                                    v.anon_growth_pct, base.anon_kib,
                                    end.anon_kib, bounds.rss_pct));
  }
  auto count = [&v](const char* what, int64_t from, int64_t to,
                    int64_t slack) {
    if (to - from <= slack) return;
    absl::StrAppend(&v.why, what, " grew by ", to - from, " (", from, " -> ",
                    to, "; slack ", slack, "); ");
  };
  count("descriptors", base.fds, end.fds, bounds.fd_slack);
  count("threads", base.threads, end.threads, bounds.thread_slack);
  count("mappings", base.maps, end.maps, bounds.maps_slack);
  v.flat = v.why.empty();
  if (!v.flat) v.why.resize(v.why.size() - 2);  // the last "; "
  return v;
}

}  // namespace soak
}  // namespace procpool
