// A few big buffers kept for reuse within a process, so that the next large
// message is written into memory that is already there.
//
// Why: a buffer of 32 MiB or more is a fresh mmap in glibc, and the kernel
// zeroes every page of it on first touch. On the 2-core VM a 64 MiB echo made
// three such buffers in the parent (the encoded arguments, the Call frame,
// the received frame), and zeroing them was ~45% of the parent's samples,
// more than all its copies (perf, tools/BENCHMARKS.md). Workers keep their
// freed memory in glibc's heap instead (Options::workers_keep_freed_memory);
// the parent is the user's process, whose allocator we leave alone, so
// procpool recycles its own buffers here.
//
// What is kept: buffers of kMinBigBuffer bytes or more that procpool itself
// is done with (a Call frame once sent, a task's encoded arguments once its
// result came), at most kMaxBigBuffers of them and kMaxBigBufferBytes in all.
// A buffer unused for kBigBufferIdle is freed by a thread of the cache's own
// (started by the first buffer kept), so an idle program gives it all back.
// A buffer is handed out only for a need of at least half its capacity, so a
// small value never pins a huge buffer.
//
// Thread-safe. After fork() the child starts with an empty cache (its copies
// of the parent's buffers would cost a copy-on-write fault per page).
//
// Example:
//   std::string frame = TakeBigBuffer(n);   // capacity >= n, size 0
//   ... fill and send frame ...
//   RecycleBigBuffer(std::move(frame));     // for the next one
#ifndef PROCPOOL_COMMON_BIG_BUFFERS_H_
#define PROCPOOL_COMMON_BIG_BUFFERS_H_

#include <cstddef>
#include <string>

namespace procpool {

inline constexpr size_t kMinBigBuffer = size_t{2} << 20;
inline constexpr size_t kMaxBigBuffers = 4;
inline constexpr size_t kMaxBigBufferBytes = size_t{512} << 20;
inline constexpr int kBigBufferIdleMs = 1000;

// An empty string whose capacity is at least `capacity`: a kept buffer if one
// fits, else a new one (advised for transparent huge pages when big; a big
// one's capacity is rounded up to a whole 2 MiB, so that it also fits a
// slightly longer message later).
std::string TakeBigBuffer(size_t capacity);

// Keeps `buffer`'s memory for a later TakeBigBuffer, or frees it (too small,
// or the cache is full: the least recently kept goes first).
void RecycleBigBuffer(std::string buffer);

// Asks for transparent huge pages under the whole 2 MiB extents of `buffer`'s
// capacity (4 MiB or more), before any byte of it is touched: a page fault
// per 4 KiB costs more than the copy into it.
void AdviseHugePages(std::string& buffer);

// For tests: how many buffers and bytes are kept now.
size_t KeptBigBuffers();
size_t KeptBigBufferBytes();

}  // namespace procpool

#endif  // PROCPOOL_COMMON_BIG_BUFFERS_H_
