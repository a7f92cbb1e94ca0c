// The system calls through which procpool acquires what can run out:
// descriptors (sockets, pipes, eventfds, epoll and timer fds, memfds, pidfds,
// duplicates, reopened files), memory (mmap, ftruncate of a memfd) and
// processes (fork, posix_spawn). The pool, the transports, the launchers and
// shared arrays make them through GetSys(), so that a test can make any of
// them fail as the kernel would (EMFILE, ENOMEM, EAGAIN, ...) without
// exhausting the machine: leveldb's Env/EnvWrapper, for the calls that matter
// here.
//
//   class FailSpawn : public SysWrapper {
//    public:
//     using SysWrapper::SysWrapper;
//     int PosixSpawn(...) override { return EAGAIN; }
//   };
//   FailSpawn failing(&GetSys());
//   ScopedSys installed(&failing);   // GetSys() is `failing` until it goes
//
// Each method has the signature and the error convention of the call it
// wraps (-1 and errno; posix_spawn returns the error; mmap MAP_FAILED), so
// that a call site reads as before.
//
// Thread safety: GetSys() may be called from any thread. ScopedSys is for
// tests: install it before the pools it should affect start, and let it go
// after they are gone (a Sys in use must outlive its users).
#ifndef PROCPOOL_COMMON_SYS_H_
#define PROCPOOL_COMMON_SYS_H_

#include <spawn.h>
#include <sys/types.h>

#include <cstddef>

namespace procpool {

class Sys {
 public:
  virtual ~Sys() = default;

  virtual int Socketpair(int domain, int type, int protocol, int sv[2]);
  virtual int Pipe2(int fds[2], int flags);
  virtual int EventFd(unsigned int initial, int flags);
  virtual int EpollCreate1(int flags);
  virtual int TimerfdCreate(int clock_id, int flags);
  virtual int MemfdCreate(const char* name, unsigned int flags);
  virtual int PidfdOpen(pid_t pid);
  // fcntl(fd, F_DUPFD_CLOEXEC, min_fd).
  virtual int DupCloexec(int fd, int min_fd);
  virtual int Ftruncate(int fd, off_t length);
  // open(path, flags), without O_CREAT (no mode): e.g. reopening a memfd
  // read-only through /proc/self/fd/N.
  virtual int Open(const char* path, int flags);
  virtual void* Mmap(void* address, size_t length, int protection, int flags,
                     int fd, off_t offset);
  virtual pid_t Fork();
  virtual int PosixSpawn(pid_t* pid, const char* path,
                         const posix_spawn_file_actions_t* actions,
                         const posix_spawnattr_t* attributes,
                         char* const argv[], char* const envp[]);
};

// Forwards every call to `target` (not owned): override what a test changes.
class SysWrapper : public Sys {
 public:
  explicit SysWrapper(Sys* target) : target_(target) {}

  int Socketpair(int domain, int type, int protocol, int sv[2]) override {
    return target_->Socketpair(domain, type, protocol, sv);
  }
  int Pipe2(int fds[2], int flags) override {
    return target_->Pipe2(fds, flags);
  }
  int EventFd(unsigned int initial, int flags) override {
    return target_->EventFd(initial, flags);
  }
  int EpollCreate1(int flags) override { return target_->EpollCreate1(flags); }
  int TimerfdCreate(int clock_id, int flags) override {
    return target_->TimerfdCreate(clock_id, flags);
  }
  int MemfdCreate(const char* name, unsigned int flags) override {
    return target_->MemfdCreate(name, flags);
  }
  int PidfdOpen(pid_t pid) override { return target_->PidfdOpen(pid); }
  int DupCloexec(int fd, int min_fd) override {
    return target_->DupCloexec(fd, min_fd);
  }
  int Ftruncate(int fd, off_t length) override {
    return target_->Ftruncate(fd, length);
  }
  int Open(const char* path, int flags) override {
    return target_->Open(path, flags);
  }
  void* Mmap(void* address, size_t length, int protection, int flags, int fd,
             off_t offset) override {
    return target_->Mmap(address, length, protection, flags, fd, offset);
  }
  pid_t Fork() override { return target_->Fork(); }
  int PosixSpawn(pid_t* pid, const char* path,
                 const posix_spawn_file_actions_t* actions,
                 const posix_spawnattr_t* attributes, char* const argv[],
                 char* const envp[]) override {
    return target_->PosixSpawn(pid, path, actions, attributes, argv, envp);
  }

 private:
  Sys* const target_;
};

// The Sys in effect: the kernel's, or what a ScopedSys installed.
Sys& GetSys();

// Installs `sys` (not owned) as GetSys() until destroyed; then the previous
// one is back. For tests.
class ScopedSys {
 public:
  explicit ScopedSys(Sys* sys);
  ~ScopedSys();
  ScopedSys(const ScopedSys&) = delete;
  ScopedSys& operator=(const ScopedSys&) = delete;

 private:
  Sys* const previous_;
};

}  // namespace procpool

#endif  // PROCPOOL_COMMON_SYS_H_
