#include "cluster/rank_record.h"

#include <sched.h>
#include <stdlib.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace procpool {
namespace cluster {

std::string EncodeRankRecord(const RankRecord& record) {
  if (!record.error.empty()) return absl::StrCat("error ", record.error);
  return absl::StrCat("ok ", record.address, " ", record.slots, " ",
                      record.host);
}

absl::StatusOr<RankRecord> DecodeRankRecord(int rank, absl::string_view line) {
  RankRecord record;
  record.rank = rank;
  if (absl::ConsumePrefix(&line, "error ")) {
    record.error = std::string(line);
    if (record.error.empty()) record.error = "an unknown error";
    return record;
  }
  std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
  if (parts.size() != 4 || parts[0] != "ok" || parts[1].empty() ||
      !absl::SimpleAtoi(parts[2], &record.slots) || record.slots < 1 ||
      parts[3].empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rank ", rank, " sent a malformed report \"", line, "\""));
  }
  record.address = std::string(parts[1]);
  record.host = std::string(parts[3]);
  return record;
}

internal::ClusterWorkers MakeClusterWorkers(
    const std::vector<RankRecord>& records, std::string key,
    std::string launcher) {
  internal::ClusterWorkers workers;
  int most = 0;
  for (const RankRecord& r : records) most = std::max(most, r.slots);
  for (int slot = 0; slot < most; ++slot) {
    for (const RankRecord& r : records) {
      if (!r.error.empty() || slot >= r.slots) continue;
      workers.addresses.push_back(r.address);
      workers.labels.push_back(
          absl::StrCat(r.address, " (rank ", r.rank, " on ", r.host, ")"));
      workers.tls_server_names.push_back(r.host);
    }
  }
  workers.key = std::move(key);
  workers.launcher = std::move(launcher);
  return workers;
}

absl::StatusOr<int> SlotsPerRank(const char* text) {
  if (text == nullptr) return 1;
  int n = -1;
  if (!absl::SimpleAtoi(text, &n) || n < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--procpool_cluster_slots_per_rank=", text,
        ": expected a count >= 1, or 0 for the CPUs this rank is bound to"));
  }
  if (n > 0) return n;
  // srun without a binding task plugin binds nothing: its --cpus-per-task
  // is the figure then.
  int per_task = 0;
  const char* slurm = getenv("SLURM_CPUS_PER_TASK");
  if (slurm != nullptr && absl::SimpleAtoi(slurm, &per_task) && per_task > 0) {
    return per_task;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
    return CPU_COUNT(&set);
  }
  return 1;
}

}  // namespace cluster
}  // namespace procpool
