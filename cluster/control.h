// The control connections of a cluster job: one TCP connection from every
// worker rank to the parent rank (rank 0), made during the bootstrap and held
// for the life of the job. They carry no work (that is the capnp channels'
// job); they tell a worker rank when to stop serving:
//
//   * rank 0 exits normally: at exit() it sends each rank a goodbye carrying
//     its exit status; the rank stops its workers and exits 0, so that srun's
//     status is rank 0's;
//   * rank 0 dies (a signal, _exit): its kernel closes the connections with
//     no goodbye; the rank exits 3 ("lost rank 0");
//   * rank 0's host goes away: nothing arrives; TCP keepalive (idle 2 s, then
//     3 probes 1 s apart) reports the connection dead in about 5 s; exit 3.
//
// Each rank proves it holds the job's key (HMAC-SHA256 over its rank number)
// before rank 0 counts its connection, so a stranger that connects to rank
// 0's port during the bootstrap is dropped and cannot take a rank's place.
//
// The address a rank reaches rank 0 at is also the address the rank's worker
// daemon listens on (getsockname of this connection): the interface that
// routes to rank 0, which is where rank 0's pools will connect from.
#ifndef PROCPOOL_CLUSTER_CONTROL_H_
#define PROCPOOL_CLUSTER_CONTROL_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace procpool {
namespace cluster {

// Rank 0's listener: on every IPv4 interface, a port the kernel picks.
struct ControlListener {
  UniqueFd fd;
  // "IP:PORT" per up IPv4 interface: non-loopback ones first, loopback last
  // (ranks try them in order).
  std::vector<std::string> addresses;
};
absl::StatusOr<ControlListener> ListenForRanks();

// What rank `rank` sends first: its number (4 bytes, big endian) and
// HMAC-SHA256(key, "procpool-cluster/1 control " + rank).
std::string RankProof(absl::string_view key, int rank);
inline constexpr size_t kRankProofSize = 4 + 32;

// A worker rank: connects to the first of `addresses` that answers (each
// tried for up to `timeout`), turns keepalive on, and sends its proof.
// `*local_ip` is the local address of the connection.
absl::StatusOr<UniqueFd> ConnectToParent(
    const std::vector<std::string>& addresses, absl::string_view key, int rank,
    absl::Duration timeout, std::string* local_ip);

// Rank 0: accepts until it holds one proven connection from each rank in
// [1, size) or `deadline` passes (kDeadlineExceeded naming the missing ranks).
// A connection with a wrong or late proof is closed and not counted. Element
// r of the result is rank r's connection (element 0 is empty).
absl::StatusOr<std::vector<UniqueFd>> AcceptRanks(int listen_fd,
                                                  absl::string_view key,
                                                  int size,
                                                  absl::Time deadline);

// Rank 0: keeps `connections` open until the process ends and, if it ends
// with exit() or a return from main(), sends each the goodbye with the exit
// status (only this process: not a child forked from it). Call once.
void HoldUntilExit(std::vector<UniqueFd> connections);

// Sends the goodbye (exit status `status`) on each of `fds` (what
// HoldUntilExit's exit handler does).
void SendGoodbye(const std::vector<int>& fds, int status);

// A worker rank, once the parent's connection is readable or hung up: what
// happened to the parent.
struct ParentEnd {
  bool said_goodbye = false;
  int status = 0;     // the parent's exit status, if it said goodbye
  std::string what;   // for the log: "rank 0 exited with status 0", ...
};
ParentEnd ReadParentEnd(int fd);

}  // namespace cluster
}  // namespace procpool

#endif  // PROCPOOL_CLUSTER_CONTROL_H_
