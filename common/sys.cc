#include "common/sys.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <atomic>

namespace procpool {
namespace {

Sys& KernelSys() {
  static Sys* const kernel = new Sys();
  return *kernel;
}

std::atomic<Sys*> current{nullptr};

}  // namespace

int Sys::Socketpair(int domain, int type, int protocol, int sv[2]) {
  return ::socketpair(domain, type, protocol, sv);
}
int Sys::Pipe2(int fds[2], int flags) { return ::pipe2(fds, flags); }
int Sys::EventFd(unsigned int initial, int flags) {
  return ::eventfd(initial, flags);
}
int Sys::EpollCreate1(int flags) { return ::epoll_create1(flags); }
int Sys::TimerfdCreate(int clock_id, int flags) {
  return ::timerfd_create(clock_id, flags);
}
int Sys::MemfdCreate(const char* name, unsigned int flags) {
  return ::memfd_create(name, flags);
}
int Sys::PidfdOpen(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}
int Sys::DupCloexec(int fd, int min_fd) {
  return ::fcntl(fd, F_DUPFD_CLOEXEC, min_fd);
}
int Sys::Ftruncate(int fd, off_t length) { return ::ftruncate(fd, length); }
int Sys::Open(const char* path, int flags) { return ::open(path, flags); }
void* Sys::Mmap(void* address, size_t length, int protection, int flags,
                int fd, off_t offset) {
  return ::mmap(address, length, protection, flags, fd, offset);
}
pid_t Sys::Fork() { return ::fork(); }
int Sys::PosixSpawn(pid_t* pid, const char* path,
                    const posix_spawn_file_actions_t* actions,
                    const posix_spawnattr_t* attributes, char* const argv[],
                    char* const envp[]) {
  return ::posix_spawn(pid, path, actions, attributes, argv, envp);
}

Sys& GetSys() {
  Sys* sys = current.load(std::memory_order_acquire);
  return sys != nullptr ? *sys : KernelSys();
}

ScopedSys::ScopedSys(Sys* sys)
    : previous_(current.exchange(sys, std::memory_order_acq_rel)) {}

ScopedSys::~ScopedSys() { current.store(previous_, std::memory_order_release); }

}  // namespace procpool
