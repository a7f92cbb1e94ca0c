// What each worker rank reports to rank 0 during the bootstrap (one line,
// gathered over MPI), and how rank 0 turns the reports into the pool's
// worker slots.
#ifndef PROCPOOL_CLUSTER_RANK_RECORD_H_
#define PROCPOOL_CLUSTER_RANK_RECORD_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/cluster.h"

namespace procpool {
namespace cluster {

struct RankRecord {
  int rank = 0;
  // Empty: the rank is serving; else why it cannot (its bootstrap failed).
  std::string error;
  std::string address;  // its worker daemon's "IP:PORT"
  int slots = 0;        // worker slots it serves
  std::string host;     // its host name, for crash reports
};

// One line: "ok ADDRESS SLOTS HOST" or "error MESSAGE".
std::string EncodeRankRecord(const RankRecord& record);
// kInvalidArgument if `line` is neither form.
absl::StatusOr<RankRecord> DecodeRankRecord(int rank, absl::string_view line);

// The slots of every record, interleaved (slot 0 of each rank in rank order,
// then slot 1, ...), so that a pool that takes the first N spreads over the
// ranks. Labels read "ADDRESS (rank R on HOST)".
internal::ClusterWorkers MakeClusterWorkers(
    const std::vector<RankRecord>& records, std::string key,
    std::string launcher);

// --procpool_cluster_slots_per_rank's value: `text` null -> 1; "0" -> srun's
// SLURM_CPUS_PER_TASK if set (--cpus-per-task), else the CPUs in this
// process's affinity mask (what mpirun's --map-by ...:PE=N binds it to);
// N >= 1 -> N. kInvalidArgument else.
absl::StatusOr<int> SlotsPerRank(const char* text);

}  // namespace cluster
}  // namespace procpool

#endif  // PROCPOOL_CLUSTER_RANK_RECORD_H_
