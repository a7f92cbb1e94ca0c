#include "worker/child/throw_site.h"

#include <dlfcn.h>
#include <execinfo.h>

#include <cxxabi.h>

#include <typeinfo>
#include <vector>

#include "absl/debugging/symbolize.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace procpool {
namespace {

constexpr int kMaxFrames = 64;

struct ThrowSite {
  bool recording = false;
  int depth = 0;
  void* frames[kMaxFrames];
};

thread_local ThrowSite throw_site;

using CxaThrow = void (*)(void*, std::type_info*, void (*)(void*));

CxaThrow RealCxaThrow() {
  static CxaThrow real =
      reinterpret_cast<CxaThrow>(dlsym(RTLD_NEXT, "__cxa_throw"));
  return real;
}

}  // namespace

void RecordThrowSites(bool on) {
  throw_site.recording = on;
  if (on) throw_site.depth = 0;  // forget throws from before this task
}

std::string TakeThrowSiteStack() {
  std::string out;
  // The first frames are the throw machinery: this file's __cxa_throw, and a
  // sanitizer's interceptors (of __cxa_throw, of backtrace) where one is
  // linked. Start after the last __cxa_throw frame among them.
  std::vector<std::string> symbols;
  size_t start = 0;
  for (int i = 0; i < throw_site.depth; ++i) {
    char name[512];
    symbols.push_back(absl::Symbolize(throw_site.frames[i], name, sizeof(name))
                          ? name
                          : "(unknown)");
    if (i < 8 && absl::StrContains(symbols.back(), "__cxa_throw")) {
      start = symbols.size();
    }
  }
  for (size_t i = start; i < symbols.size(); ++i) {
    absl::StrAppend(&out, "  #", i - start, " ", symbols[i], "\n");
  }
  throw_site.depth = 0;
  return out;
}

}  // namespace procpool

// The interposed throw: record, then hand over to the C++ runtime's own. It
// keeps the exact declaration <cxxabi.h> gives it.
namespace __cxxabiv1 {
extern "C" void __cxa_throw(void* object, std::type_info* type,
                            void(_GLIBCXX_CDTOR_CALLABI* destructor)(void*)) {
  procpool::ThrowSite& site = procpool::throw_site;
  if (site.recording) {
    site.depth = backtrace(site.frames, procpool::kMaxFrames);
  }
  procpool::RealCxaThrow()(object, type, destructor);
  __builtin_unreachable();
}
}  // namespace __cxxabiv1
