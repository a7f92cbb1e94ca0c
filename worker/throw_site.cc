#include "worker/throw_site.h"

#include <dlfcn.h>
#include <execinfo.h>

#include <cxxabi.h>

#include <typeinfo>

#include "absl/debugging/symbolize.h"
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
  // Frame 0 is __cxa_throw (this file); start at the thrower.
  for (int i = 1; i < throw_site.depth; ++i) {
    char name[512];
    const char* symbol = absl::Symbolize(throw_site.frames[i], name,
                                         sizeof(name))
                             ? name
                             : "(unknown)";
    absl::StrAppend(&out, "  #", i - 1, " ", symbol, "\n");
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
