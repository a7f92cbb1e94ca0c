// Makes Debian's (uninstrumented) absl::Mutex and absl::CondVar visible to
// ThreadSanitizer. Linked into every target that uses Abseil under
// --config=tsan only (see //third_party:absl and tools/SANITIZERS.md).
//
// Debian builds libabsl without -fsanitize=thread, so TSan sees neither the
// locking inside absl::Mutex nor the annotations Abseil carries for it
// (ABSL_TSAN_MUTEX_*, compiled in only when Abseil itself is built with TSan):
// every field guarded by an absl::Mutex then looks raced. This file defines
// the public locking entry points of absl::Mutex and absl::CondVar again. The
// dynamic linker binds every call to them, also those from inside libabsl
// (which go through its PLT), to these definitions first (this library comes
// before libabsl_synchronization in the link); each forwards to the real
// function (dlsym(RTLD_NEXT)) between the __tsan_mutex_* annotations that
// Abseil's own TSan build would make. TSan then knows the lock for what it is:
// accesses under it are ordered, and accesses outside it are still races.
//
// A wait (Await, LockWhen, CondVar::Wait) is annotated as an unlock before the
// call and a lock after it; between the two TSan ignores memory accesses, as
// it does inside any annotated lock operation, and so does it while Unlock
// runs: the Conditions that absl evaluates there (in the waiter or in the
// thread that unlocks, always with the mutex held) are not checked.
//
// Await and the CondVar waits are annotated as exclusive: calling them while
// holding the mutex in shared (reader) mode would confuse TSan. Not done in
// this tree.
//
// If the interposition did not take effect (another link order, a static
// libabsl), the first annotated call aborts with a message rather than let
// TSan run with a lock it cannot see; so does a missing real function.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#if !defined(__SANITIZE_THREAD__)
#error "absl_tsan_annotations.cc is for -fsanitize=thread builds only"
#endif

namespace {

// The real definition of the function whose mangled name is `name`: the next
// one after this library. Aborts if there is none, or if calls do not bind to
// this library's definition (then TSan would not see the lock).
void* Real(const char* name) {
  Dl_info mine, bound_info, real_info;
  void* bound = dlsym(RTLD_DEFAULT, name);
  void* real = dlsym(RTLD_NEXT, name);
  if (dladdr(reinterpret_cast<void*>(&Real), &mine) == 0 || real == nullptr ||
      dladdr(real, &real_info) == 0 || real_info.dli_fbase == mine.dli_fbase) {
    std::fprintf(stderr, "absl_tsan_annotations: no real %s in libabsl\n",
                 name);
    std::abort();
  }
  if (bound == nullptr || dladdr(bound, &bound_info) == 0 ||
      bound_info.dli_fbase != mine.dli_fbase) {
    std::fprintf(stderr,
                 "absl_tsan_annotations: calls to %s bind to %s, not to the "
                 "annotated wrapper in %s (link order?); TSan would report "
                 "false races on every absl::Mutex\n",
                 name, bound == nullptr ? "nothing" : bound_info.dli_fname,
                 mine.dli_fname);
    std::abort();
  }
  return real;
}

constexpr bool Equal(const char* a, const char* b) {
  return *a == *b && (*a == '\0' || Equal(a + 1, b + 1));
}
#define PROCPOOL_ABSL_STR2(x) #x
#define PROCPOOL_ABSL_STR(x) PROCPOOL_ABSL_STR2(x)
// The mangled names below spell Debian's inline namespace.
static_assert(Equal(PROCPOOL_ABSL_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME),
                    "debian3"),
              "update the mangled names for this Abseil's inline namespace");

// The real function, as a plain function taking `this` first.
#define REAL(Type, mangled) \
  static const auto real = reinterpret_cast<Type>(Real(mangled))

// Whether this thread is inside a real function called by a wrapper. Some call
// others through the PLT (AwaitWithTimeout calls AwaitWithDeadline, a
// CondVar wait relocks the mutex): those inner calls are part of the outer
// operation, which alone is annotated.
thread_local bool in_real = false;

// Marks the call of a real function; `outer` says whether to annotate.
class RealCall {
 public:
  RealCall() : outer_(!in_real) { in_real = true; }
  ~RealCall() {
    if (outer_) in_real = false;
  }
  bool outer() const { return outer_; }

 private:
  const bool outer_;
};

constexpr unsigned kRead = __tsan_mutex_read_lock;
constexpr unsigned kTry = __tsan_mutex_try_lock;
constexpr unsigned kTryFailed = __tsan_mutex_try_lock_failed;

// A wait releases `mu` and holds it again when it returns.
void BeforeWait(const RealCall& call, absl::Mutex* mu) {
  if (!call.outer()) return;
  if (call.outer()) __tsan_mutex_pre_unlock(mu, 0);
  if (call.outer()) __tsan_mutex_post_unlock(mu, 0);
  if (call.outer()) __tsan_mutex_pre_lock(mu, 0);
}
void AfterWait(const RealCall& call, absl::Mutex* mu) {
  if (call.outer()) __tsan_mutex_post_lock(mu, 0, 0);
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

using MutexFn = void (*)(Mutex*);
using MutexBoolFn = bool (*)(Mutex*);
using MutexCondFn = void (*)(Mutex*, const Condition&);
using MutexCondDurationFn = bool (*)(Mutex*, const Condition&, Duration);
using MutexCondTimeFn = bool (*)(Mutex*, const Condition&, Time);

Mutex::~Mutex() {
  REAL(MutexFn, "_ZN4absl7debian35MutexD1Ev");
  const RealCall call;
  if (call.outer()) __tsan_mutex_destroy(this, 0);
  real(this);
}

void Mutex::Lock() {
  REAL(MutexFn, "_ZN4absl7debian35Mutex4LockEv");
  const RealCall call;
  if (call.outer()) __tsan_mutex_pre_lock(this, 0);
  real(this);
  if (call.outer()) __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::Unlock() {
  REAL(MutexFn, "_ZN4absl7debian35Mutex6UnlockEv");
  const RealCall call;
  if (call.outer()) __tsan_mutex_pre_unlock(this, 0);
  real(this);
  if (call.outer()) __tsan_mutex_post_unlock(this, 0);
}

bool Mutex::TryLock() {
  REAL(MutexBoolFn, "_ZN4absl7debian35Mutex7TryLockEv");
  const RealCall call;
  if (call.outer()) __tsan_mutex_pre_lock(this, kTry);
  const bool locked = real(this);
  if (call.outer())
    __tsan_mutex_post_lock(this, kTry | (locked ? 0 : kTryFailed), 0);
  return locked;
}

void Mutex::ReaderLock() {
  REAL(MutexFn, "_ZN4absl7debian35Mutex10ReaderLockEv");
  const RealCall call;
  if (call.outer()) __tsan_mutex_pre_lock(this, kRead);
  real(this);
  if (call.outer()) __tsan_mutex_post_lock(this, kRead, 0);
}

void Mutex::ReaderUnlock() {
  REAL(MutexFn, "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  const RealCall call;
  if (call.outer()) __tsan_mutex_pre_unlock(this, kRead);
  real(this);
  if (call.outer()) __tsan_mutex_post_unlock(this, kRead);
}

bool Mutex::ReaderTryLock() {
  REAL(MutexBoolFn, "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  const RealCall call;
  if (call.outer()) __tsan_mutex_pre_lock(this, kRead | kTry);
  const bool locked = real(this);
  if (call.outer())
    __tsan_mutex_post_lock(this, kRead | kTry | (locked ? 0 : kTryFailed), 0);
  return locked;
}

void Mutex::LockWhen(const Condition& cond) {
  REAL(MutexCondFn, "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  const RealCall call;
  if (call.outer()) __tsan_mutex_pre_lock(this, 0);
  real(this, cond);
  if (call.outer()) __tsan_mutex_post_lock(this, 0, 0);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  REAL(MutexCondDurationFn,
       "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_"
       "8DurationE");
  const RealCall call;
  if (call.outer()) __tsan_mutex_pre_lock(this, 0);
  const bool met = real(this, cond, timeout);
  if (call.outer()) __tsan_mutex_post_lock(this, 0, 0);
  return met;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  REAL(MutexCondTimeFn,
       "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_"
       "4TimeE");
  const RealCall call;
  if (call.outer()) __tsan_mutex_pre_lock(this, 0);
  const bool met = real(this, cond, deadline);
  if (call.outer()) __tsan_mutex_post_lock(this, 0, 0);
  return met;
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  REAL(MutexCondFn, "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  const RealCall call;
  if (call.outer()) __tsan_mutex_pre_lock(this, kRead);
  real(this, cond);
  if (call.outer()) __tsan_mutex_post_lock(this, kRead, 0);
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  REAL(MutexCondDurationFn,
       "_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_"
       "8DurationE");
  const RealCall call;
  if (call.outer()) __tsan_mutex_pre_lock(this, kRead);
  const bool met = real(this, cond, timeout);
  if (call.outer()) __tsan_mutex_post_lock(this, kRead, 0);
  return met;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  REAL(
      MutexCondTimeFn,
      "_ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_"
      "4TimeE");
  const RealCall call;
  if (call.outer()) __tsan_mutex_pre_lock(this, kRead);
  const bool met = real(this, cond, deadline);
  if (call.outer()) __tsan_mutex_post_lock(this, kRead, 0);
  return met;
}

void Mutex::Await(const Condition& cond) {
  REAL(MutexCondFn, "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  const RealCall call;
  BeforeWait(call, this);
  real(this, cond);
  AfterWait(call, this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  REAL(MutexCondDurationFn,
       "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_"
       "8DurationE");
  const RealCall call;
  BeforeWait(call, this);
  const bool met = real(this, cond, timeout);
  AfterWait(call, this);
  return met;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  REAL(MutexCondTimeFn,
       "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const RealCall call;
  BeforeWait(call, this);
  const bool met = real(this, cond, deadline);
  AfterWait(call, this);
  return met;
}

using CondVarWaitFn = void (*)(CondVar*, Mutex*);
using CondVarDurationFn = bool (*)(CondVar*, Mutex*, Duration);
using CondVarTimeFn = bool (*)(CondVar*, Mutex*, Time);

void CondVar::Wait(Mutex* mu) {
  REAL(CondVarWaitFn, "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  const RealCall call;
  BeforeWait(call, mu);
  real(this, mu);
  AfterWait(call, mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  REAL(CondVarDurationFn,
       "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  const RealCall call;
  BeforeWait(call, mu);
  const bool timed_out = real(this, mu, timeout);
  AfterWait(call, mu);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  REAL(CondVarTimeFn,
       "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  const RealCall call;
  BeforeWait(call, mu);
  const bool timed_out = real(this, mu, deadline);
  AfterWait(call, mu);
  return timed_out;
}

ABSL_NAMESPACE_END
}  // namespace absl
