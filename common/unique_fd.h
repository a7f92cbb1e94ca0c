// UniqueFd: the one owner of a file descriptor (like kj::AutoCloseFd or
// std::unique_ptr for descriptors). Move-only; the descriptor it holds is
// closed exactly once, by the destructor or reset(), unless release() hands
// it on first.
//
// Example:
//   UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
//   if (!fd.valid()) return PosixError("open", errno);
//   ... read(fd.get(), ...) ...
//   return fd;  // or: child.fds.push_back(fd.release());
//
// Closing: CloseFd() calls close() once and ignores its result. On Linux a
// close() interrupted by a signal (EINTR) has already released the
// descriptor, so retrying would close a number that another thread may have
// reused meanwhile; nothing can be done about other errors in a destructor.
//
// Thread safety: a value type; one owner, used by one thread at a time. get()
// is a plain load and may be called while another thread only reads too.
#ifndef PROCPOOL_COMMON_UNIQUE_FD_H_
#define PROCPOOL_COMMON_UNIQUE_FD_H_

#include <utility>

namespace procpool {

// Closes `fd` once (EINTR is not retried: see above). A negative `fd` is a
// no-op.
void CloseFd(int fd);

class UniqueFd {
 public:
  // Holds nothing (get() == -1).
  UniqueFd() = default;
  // Takes ownership of `fd`; a negative `fd` holds nothing.
  explicit UniqueFd(int fd) : fd_(fd < 0 ? -1 : fd) {}

  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  ~UniqueFd() { CloseFd(fd_); }

  // The descriptor, still owned; -1 when none.
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

  // Gives up ownership without closing: returns the descriptor (-1 if none).
  int release() { return std::exchange(fd_, -1); }

  // Closes the held descriptor (if any) and takes `fd` (default: none).
  // Resetting to the descriptor already held keeps it open.
  void reset(int fd = -1) {
    const int old = std::exchange(fd_, fd < 0 ? -1 : fd);
    if (old != fd_) CloseFd(old);
  }

 private:
  int fd_ = -1;
};

}  // namespace procpool

#endif  // PROCPOOL_COMMON_UNIQUE_FD_H_
