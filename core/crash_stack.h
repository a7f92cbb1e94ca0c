// Symbolizes a worker's crash report in the parent. The worker's fatal-signal
// handler writes each frame as the file of its executable mapping and the
// offset into that file (worker/child/crash_reporter.h has the format), not
// symbolized: symbolizing cost the dying worker ~1 ms with a cold symbolizer.
// The parent maps the same files (a worker runs the parent's executable and
// libraries, under every start method), finds each offset in its own mappings
// and symbolizes the address there with a symbolizer that stays warm.
//
// Example:
//   crash.stack = SymbolizeCrashReport(w.crash_report);
//   // "  #3 /work/app+0x1a2b\n" became "  #3 DieBySegv()\n"
//
// A frame in a file the parent has not mapped (a separate worker binary,
// a library the worker loaded later), or that its symbol tables do not name,
// stays as "FILE+0xOFFSET" (`addr2line -f -e FILE 0xOFFSET` names it).
// Lines that are not frames stay as they are.
//
// Thread safety: none needed; it reads /proc/self/maps on each call that has
// a frame.
#ifndef PROCPOOL_CORE_CRASH_STACK_H_
#define PROCPOOL_CORE_CRASH_STACK_H_

#include <string>

#include "absl/strings/string_view.h"

namespace procpool {

std::string SymbolizeCrashReport(absl::string_view report);

}  // namespace procpool

#endif  // PROCPOOL_CORE_CRASH_STACK_H_
