#include "core/crash_stack.h"

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"

namespace procpool {
namespace {

extern "C" __attribute__((noinline)) int CrashStackTestTarget(int x) {
  return x * 3 + 1;
}

// Where `pc` is, as the worker's handler writes it: "FILE+0xOFFSET".
std::string FrameOf(const void* pc) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const uintptr_t addr = reinterpret_cast<uintptr_t>(pc);
  while (std::getline(maps, line)) {
    unsigned long start, end, offset;
    char perms[5];
    int path_at = 0;
    if (sscanf(line.c_str(), "%lx-%lx %4s %lx %*s %*s %n", &start, &end, perms,
               &offset, &path_at) < 4) {
      continue;
    }
    if (addr >= start && addr < end && perms[2] == 'x') {
      return absl::StrFormat("%s+0x%x", line.substr(path_at),
                             addr - start + offset);
    }
  }
  return "";
}

TEST(SymbolizeCrashReportTest, NamesAFrameOfThisProgram) {
  const std::string frame =
      FrameOf(reinterpret_cast<const void*>(&CrashStackTestTarget));
  ASSERT_NE(frame, "");
  const std::string report = absl::StrCat(
      "  signal SIGSEGV in worker pid 12 while running task Square\n",
      "  #0 ", frame, "\n");
  EXPECT_EQ(SymbolizeCrashReport(report),
            "  signal SIGSEGV in worker pid 12 while running task Square\n"
            "  #0 CrashStackTestTarget\n");
}

TEST(SymbolizeCrashReportTest, FramesInAFileNotMappedHereStay) {
  const std::string report =
      "  #0 /no/such/worker+0x1a2b\n"
      "  #1 0x7f0012345678\n"
      "  #2 [nothing]+0x10\n";
  EXPECT_EQ(SymbolizeCrashReport(report), report);
}

TEST(SymbolizeCrashReportTest, AnOffsetPastTheMappingStays) {
  std::string frame =
      FrameOf(reinterpret_cast<const void*>(&CrashStackTestTarget));
  ASSERT_NE(frame, "");
  frame = frame.substr(0, frame.rfind("+0x")) + "+0xffffffffffff";
  const std::string report = absl::StrCat("  #0 ", frame, "\n");
  EXPECT_EQ(SymbolizeCrashReport(report), report);
}

TEST(SymbolizeCrashReportTest, TextThatIsNotAFrameStays) {
  for (const std::string& report :
       {std::string(""), std::string("\n"), std::string("no newline"),
        std::string("  #\n"), std::string("  #3\n"), std::string("  #3 +0x\n"),
        std::string("  #3 +0x12"), std::string("  # x+0xzz\n"),
        std::string("+0x1  #1 a\n")}) {
    EXPECT_EQ(SymbolizeCrashReport(report), report) << report;
  }
}

}  // namespace
}  // namespace procpool
