#include "core/crash_stack.h"

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/debugging/symbolize.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/types/optional.h"
#include "absl/strings/strip.h"

namespace procpool {
namespace {

struct Mapping {
  uintptr_t start = 0;
  uintptr_t end = 0;
  uintptr_t offset = 0;
  std::string path;
};

// This process's executable mappings that have a file (or a name such as
// [vdso]).
std::vector<Mapping> ReadExecutableMappings() {
  std::vector<Mapping> mappings;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    // "start-end perms offset dev inode   path"
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode;
    if (!(in >> range >> perms >> offset >> dev >> inode)) continue;
    if (perms.size() < 3 || perms[2] != 'x') continue;
    std::string path;
    std::getline(in >> std::ws, path);
    if (path.empty()) continue;
    const size_t dash = range.find('-');
    Mapping m;
    uint64_t start, end, off;
    if (dash == std::string::npos ||
        !absl::SimpleHexAtoi(range.substr(0, dash), &start) ||
        !absl::SimpleHexAtoi(range.substr(dash + 1), &end) ||
        !absl::SimpleHexAtoi(offset, &off)) {
      continue;
    }
    m.start = start;
    m.end = end;
    m.offset = off;
    m.path = std::move(path);
    mappings.push_back(std::move(m));
  }
  return mappings;
}

// The symbol of FILE+0xOFFSET in this process, or "" if none.
std::string SymbolAt(const std::vector<Mapping>& mappings,
                     absl::string_view file, uint64_t offset) {
  for (const Mapping& m : mappings) {
    if (m.path != file || offset < m.offset ||
        offset - m.offset >= m.end - m.start) {
      continue;
    }
    const uintptr_t pc = m.start + (offset - m.offset);
    char name[1024];
    if (absl::Symbolize(reinterpret_cast<void*>(pc), name, sizeof(name))) {
      return name;
    }
    return "";
  }
  return "";
}

// absl's ELF symbolizer keeps the object files it read open (and their
// mappings) in a cached symbolizer, for the next call. In the parent that is
// descriptors a pool's users count as leaked, and a forked worker inherits
// them, closes them with the rest, and then symbolizes with descriptors that
// are gone (EBADF: "(unknown)" frames in its exception tracebacks). Asking it
// for an address that no object holds makes it drop its table and close
// them (symbolize_elf.inc: FindObjFile clears the map when the address is
// not in it); its names stay cached (no descriptors).
void ForgetObjectFiles() {
  char name[16];
  (void)absl::Symbolize(reinterpret_cast<void*>(uintptr_t{8}), name,
                        sizeof(name));
}

// `line` with its frame symbolized, or as it is.
std::string SymbolizeLine(absl::string_view line,
                          absl::optional<std::vector<Mapping>>* mappings) {
  // "  #N FILE+0xOFFSET"
  absl::string_view rest = line;
  const size_t plus = line.rfind("+0x");
  uint64_t offset;
  if (!absl::ConsumePrefix(&rest, "  #") || plus == absl::string_view::npos ||
      !absl::SimpleHexAtoi(line.substr(plus + 3), &offset)) {
    return std::string(line);
  }
  const size_t space = rest.find(' ');
  const size_t file_at = line.size() - rest.size() + space + 1;
  if (space == absl::string_view::npos || file_at > plus) {
    return std::string(line);
  }
  if (!mappings->has_value()) *mappings = ReadExecutableMappings();
  const std::string symbol =
      SymbolAt(**mappings, line.substr(file_at, plus - file_at), offset);
  if (symbol.empty()) return std::string(line);
  return absl::StrCat("  #", rest.substr(0, space), " ", symbol);
}

}  // namespace

std::string SymbolizeCrashReport(absl::string_view report) {
  absl::optional<std::vector<Mapping>> mappings;  // read at the first frame
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(report, '\n')) {
    lines.push_back(SymbolizeLine(line, &mappings));
  }
  if (mappings.has_value()) ForgetObjectFiles();
  return absl::StrJoin(lines, "\n");
}

}  // namespace procpool
