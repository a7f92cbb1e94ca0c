// The fork server's control protocol, shared by the server (fork_server.h,
// in the fork server process) and its client in the parent
// (worker/parent/fork_server_launcher.h).
//
// The parent spawns the server as
//   BINARY --procpool-internal-forkserver PARENT_PID
// with its end of a SOCK_SEQPACKET socketpair as descriptor 3. Over that
// socket, one message a packet, each an encoded tuple (serialization/codec.h):
//   parent -> server: Request {transport, spec, crash fd last} + the
//                     endpoint fds (and the crash pipe) as SCM_RIGHTS
//   server -> parent: Reply {kStarted, pid} or {kError, message} per request,
//                     and {kExited, pid, wait status} whenever a worker dies
//
// Thread safety: the functions are stateless; a socket must be written by
// one thread at a time and read by one thread at a time.
#ifndef PROCPOOL_WORKER_FORK_SERVER_PROTOCOL_H_
#define PROCPOOL_WORKER_FORK_SERVER_PROTOCOL_H_

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace procpool {

// argv[1] of the fork server (the command line above).
inline constexpr char kForkServerRoleFlag[] = "--procpool-internal-forkserver";

namespace fork_server {

// Request: transport, spec, whether the last fd is the crash pipe. Reply:
// kind, pid, wait status (kExited) or the failed fork's errno (kError),
// message.
using Request = std::tuple<std::string, std::string, bool>;
enum ReplyKind : int32_t { kStarted = 0, kExited = 1, kError = 2 };
using Reply = std::tuple<int32_t, int32_t, int32_t, std::string>;

// Sends `data` as one packet on `fd`, with `fds` (at most 16) attached.
absl::Status SendPacket(int fd, const std::string& data,
                        const std::vector<int>& fds);

// Receives one packet (at most 64 KiB); the descriptors that came with it are
// appended to `fds` (close-on-exec, owned by the caller), or closed when `fds`
// is null. kUnavailable when the peer closed.
absl::StatusOr<std::string> ReceivePacket(int fd, std::vector<UniqueFd>* fds);

}  // namespace fork_server
}  // namespace procpool

#endif  // PROCPOOL_WORKER_FORK_SERVER_PROTOCOL_H_
