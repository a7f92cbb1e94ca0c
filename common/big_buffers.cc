#include "common/big_buffers.h"

#include <pthread.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/spin.h"

namespace procpool {
namespace {

// Big buffers are made in whole 2 MiB steps: the messages of one call differ
// by a few bytes (a Result frame is a little longer than the Call frame
// before it), and a buffer a few bytes short is no use.
size_t RoundUpToSizeClass(size_t n) {
  constexpr size_t kStep = size_t{2} << 20;
  return (n + kStep - 1) / kStep * kStep;
}

struct Kept {
  std::string buffer;
  int64_t kept_at_ns;
};

// A std::mutex, not an absl::Mutex: a forked child unlocks it in its fork
// handler, and a pthread mutex has nothing else to tidy there (absl's may
// hold a queue of the parent's waiting threads). Wrapped so that clang's
// thread-safety analysis (--config=clang_tsa) knows it as a capability:
// libstdc++'s std::mutex carries no annotations.
class ABSL_LOCKABLE ForkSafeMutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

// Holds a ForkSafeMutex for its scope (std::lock_guard, annotated).
class ABSL_SCOPED_LOCKABLE ForkSafeLock {
 public:
  explicit ForkSafeLock(ForkSafeMutex& mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
    mu_.Lock();
  }
  ~ForkSafeLock() ABSL_UNLOCK_FUNCTION() { mu_.Unlock(); }
  ForkSafeLock(const ForkSafeLock&) = delete;
  ForkSafeLock& operator=(const ForkSafeLock&) = delete;

 private:
  ForkSafeMutex& mu_;
};

struct Cache {
  ForkSafeMutex mu;
  std::vector<Kept> kept ABSL_GUARDED_BY(mu);  // least recently kept first
  size_t bytes ABSL_GUARDED_BY(mu) = 0;
  bool releaser_running ABSL_GUARDED_BY(mu) = false;
  // A forked child's copies of the parent's buffers: freed by its first use
  // of the cache, not in the fork handler (an allocator without a fork
  // handler of its own, ASan's, may be locked there).
  std::vector<Kept> inherited ABSL_GUARDED_BY(mu);
};

void LockForFork();
void UnlockAfterFork();
void ForgetInChild();

// Never destroyed: the releaser may outlive static destruction.
Cache& TheCache() {
  static Cache* cache = [] {
    auto* c = new Cache;
    pthread_atfork(LockForFork, UnlockAfterFork, ForgetInChild);
    return c;
  }();
  return *cache;
}

void LockForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { TheCache().mu.Lock(); }
void UnlockAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  TheCache().mu.Unlock();
}
// Allocates nothing (a swap); the releaser does not exist here.
void ForgetInChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  Cache& c = TheCache();
  if (c.inherited.empty()) {
    c.inherited.swap(c.kept);
  } else {
    // Forked again before its first use: these copies are never freed here.
    new (&c.kept) std::vector<Kept>();
  }
  c.bytes = 0;
  c.releaser_running = false;
  c.mu.Unlock();
}

// Moves what must be freed out of the cache (to free after unlocking).
void TakeInherited(Cache& c, std::vector<Kept>* to_free)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(c.mu) {
  if (c.inherited.empty()) return;
  for (Kept& k : c.inherited) to_free->push_back(std::move(k));
  c.inherited.clear();
}

// The releaser: frees each buffer kBigBufferIdleMs after it was kept (it
// looks at least every kReleaserTickMs); exits when nothing is kept (the next
// RecycleBigBuffer starts another).
constexpr int64_t kReleaserTickMs = 100;

void ReleaseIdle() {
  Cache& c = TheCache();
  for (;;) {
    std::vector<std::string> to_free;
    int64_t wait_ns = 0;
    {
      ForkSafeLock lock(c.mu);
      const int64_t now = MonotonicNanos();
      while (!c.kept.empty() &&
             c.kept.front().kept_at_ns + int64_t{kBigBufferIdleMs} * 1000000 <=
                 now) {
        c.bytes -= c.kept.front().buffer.capacity();
        to_free.push_back(std::move(c.kept.front().buffer));
        c.kept.erase(c.kept.begin());
      }
      if (c.kept.empty()) {
        c.releaser_running = false;
        return;  // to_free is freed on the way out, after unlocking
      }
      wait_ns = std::min(
          c.kept.front().kept_at_ns + int64_t{kBigBufferIdleMs} * 1000000 -
              now,
          kReleaserTickMs * 1000000);
    }
    to_free.clear();  // munmap outside the lock
    absl::SleepFor(absl::Nanoseconds(wait_ns));
  }
}

}  // namespace

void AdviseHugePages(std::string& buffer) {
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  if (buffer.capacity() < 2 * kHuge) return;
  // Only the whole 2 MiB extents inside the buffer can be huge pages.
  const uintptr_t begin = reinterpret_cast<uintptr_t>(buffer.data());
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t last = (begin + buffer.capacity()) & ~(kHuge - 1);
  if (last > first) {
    madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
}

std::string TakeBigBuffer(size_t capacity) {
  std::vector<Kept> to_free;
  if (capacity >= kMinBigBuffer) {
    Cache& c = TheCache();
    ForkSafeLock lock(c.mu);
    TakeInherited(c, &to_free);
    size_t best = c.kept.size();
    for (size_t i = 0; i < c.kept.size(); ++i) {
      const size_t have = c.kept[i].buffer.capacity();
      if (have >= capacity && have / 2 <= capacity &&
          (best == c.kept.size() || have < c.kept[best].buffer.capacity())) {
        best = i;
      }
    }
    if (best < c.kept.size()) {
      std::string buffer = std::move(c.kept[best].buffer);
      c.bytes -= buffer.capacity();
      c.kept.erase(c.kept.begin() + static_cast<ptrdiff_t>(best));
      return buffer;
    }
  }
  std::string buffer;
  buffer.reserve(capacity < kMinBigBuffer ? capacity
                                          : RoundUpToSizeClass(capacity));
  AdviseHugePages(buffer);
  return buffer;
}

void RecycleBigBuffer(std::string buffer) {
  const size_t capacity = buffer.capacity();
  if (capacity < kMinBigBuffer || capacity > kMaxBigBufferBytes) return;
  buffer.clear();
  std::vector<std::string> to_free;
  std::vector<Kept> inherited;
  bool start_releaser = false;
  {
    Cache& c = TheCache();
    ForkSafeLock lock(c.mu);
    TakeInherited(c, &inherited);
    c.kept.push_back({std::move(buffer), MonotonicNanos()});
    c.bytes += capacity;
    while (c.kept.size() > kMaxBigBuffers || c.bytes > kMaxBigBufferBytes) {
      c.bytes -= c.kept.front().buffer.capacity();
      to_free.push_back(std::move(c.kept.front().buffer));
      c.kept.erase(c.kept.begin());
    }
    if (!c.releaser_running) {
      c.releaser_running = true;
      start_releaser = true;
    }
  }
  if (!start_releaser) return;
  try {
    std::thread(ReleaseIdle).detach();
  } catch (const std::system_error&) {  // no thread: keep nothing
    Cache& c = TheCache();
    ForkSafeLock lock(c.mu);
    c.bytes = 0;
    to_free.clear();
    for (Kept& k : c.kept) to_free.push_back(std::move(k.buffer));
    c.kept.clear();
    c.releaser_running = false;
  }
}

size_t KeptBigBuffers() {
  Cache& c = TheCache();
  ForkSafeLock lock(c.mu);
  return c.kept.size();
}

size_t KeptBigBufferBytes() {
  Cache& c = TheCache();
  ForkSafeLock lock(c.mu);
  return c.bytes;
}

}  // namespace procpool
