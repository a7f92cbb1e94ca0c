#include "common/big_buffers.h"

#include <pthread.h>
#include <sys/mman.h>

#include <cstdint>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
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

struct Cache {
  absl::Mutex mu;
  absl::CondVar timer;  // never signalled: the releaser waits for time only
  std::vector<Kept> kept ABSL_GUARDED_BY(mu);  // least recently kept first
  size_t bytes ABSL_GUARDED_BY(mu) = 0;
  bool releaser_running ABSL_GUARDED_BY(mu) = false;
};

void LockForFork();
void UnlockAfterFork();
void EmptyInChild();

// Never destroyed: the releaser may outlive static destruction.
Cache& TheCache() {
  static Cache* cache = [] {
    auto* c = new Cache;
    pthread_atfork(LockForFork, UnlockAfterFork, EmptyInChild);
    return c;
  }();
  return *cache;
}

void LockForFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { TheCache().mu.Lock(); }
void UnlockAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS { TheCache().mu.Unlock(); }
// glibc's malloc is usable in a child's fork handlers; the releaser thread
// does not exist there.
void EmptyInChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  Cache& c = TheCache();
  c.kept.clear();
  c.bytes = 0;
  c.releaser_running = false;
  c.mu.Unlock();
}

// The releaser: frees each buffer kBigBufferIdleMs after it was kept; exits
// when nothing is kept (the next RecycleBigBuffer starts another).
void ReleaseIdle() {
  Cache& c = TheCache();
  std::vector<std::string> to_free;
  c.mu.Lock();
  for (;;) {
    if (c.kept.empty()) break;
    const int64_t due =
        c.kept.front().kept_at_ns + int64_t{kBigBufferIdleMs} * 1000000;
    const int64_t now = MonotonicNanos();
    if (now < due) {
      if (!to_free.empty()) {
        c.mu.Unlock();
        to_free.clear();  // munmap outside the lock
        c.mu.Lock();
        continue;
      }
      c.timer.WaitWithTimeout(&c.mu, absl::Nanoseconds(due - now));
      continue;
    }
    c.bytes -= c.kept.front().buffer.capacity();
    to_free.push_back(std::move(c.kept.front().buffer));
    c.kept.erase(c.kept.begin());
  }
  c.releaser_running = false;
  c.mu.Unlock();
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
  if (capacity >= kMinBigBuffer) {
    Cache& c = TheCache();
    absl::MutexLock lock(&c.mu);
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
  bool start_releaser = false;
  {
    Cache& c = TheCache();
    absl::MutexLock lock(&c.mu);
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
    absl::MutexLock lock(&c.mu);
    c.bytes = 0;
    to_free.clear();
    for (Kept& k : c.kept) to_free.push_back(std::move(k.buffer));
    c.kept.clear();
    c.releaser_running = false;
  }
}

size_t KeptBigBuffers() {
  Cache& c = TheCache();
  absl::MutexLock lock(&c.mu);
  return c.kept.size();
}

size_t KeptBigBufferBytes() {
  Cache& c = TheCache();
  absl::MutexLock lock(&c.mu);
  return c.bytes;
}

}  // namespace procpool
