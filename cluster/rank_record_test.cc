#include "cluster/rank_record.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace procpool {
namespace cluster {
namespace {

TEST(RankRecordTest, RoundTrips) {
  RankRecord r;
  r.rank = 2;
  r.address = "10.0.0.2:4100";
  r.slots = 3;
  r.host = "node2";
  absl::StatusOr<RankRecord> back = DecodeRankRecord(2, EncodeRankRecord(r));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->address, r.address);
  EXPECT_EQ(back->slots, 3);
  EXPECT_EQ(back->host, "node2");
  EXPECT_EQ(back->error, "");

  RankRecord bad;
  bad.error = "cannot reach rank 0";
  back = DecodeRankRecord(4, EncodeRankRecord(bad));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->rank, 4);
  EXPECT_EQ(back->error, "cannot reach rank 0");
}

TEST(RankRecordTest, MalformedReportsAreRefused) {
  for (const char* line : {"", "ok", "ok 1.2.3.4:5 x host", "ok 1.2.3.4:5 0 h",
                           "ok 1.2.3.4:5 2", "hello there"}) {
    EXPECT_FALSE(DecodeRankRecord(1, line).ok()) << line;
  }
}

TEST(RankRecordTest, SlotsAreInterleavedAcrossRanksAndLabelled) {
  std::vector<RankRecord> records(2);
  records[0] = {1, "", "10.0.0.1:1", 2, "a"};
  records[1] = {2, "", "10.0.0.2:2", 1, "b"};
  internal::ClusterWorkers w = MakeClusterWorkers(records, "key", "srun");
  EXPECT_EQ(w.addresses,
            (std::vector<std::string>{"10.0.0.1:1", "10.0.0.2:2", "10.0.0.1:1"}));
  ASSERT_EQ(w.labels.size(), 3u);
  EXPECT_EQ(w.labels[1], "10.0.0.2:2 (rank 2 on b)");
  EXPECT_EQ(w.tls_server_names, (std::vector<std::string>{"a", "b", "a"}));
  EXPECT_EQ(w.key, "key");
  EXPECT_EQ(w.launcher, "srun");
}

TEST(RankRecordTest, SlotsPerRank) {
  EXPECT_EQ(*SlotsPerRank(nullptr), 1);
  EXPECT_EQ(*SlotsPerRank("4"), 4);
  EXPECT_GE(*SlotsPerRank("0"), 1);  // the CPUs of our affinity mask
  EXPECT_FALSE(SlotsPerRank("-1").ok());
  EXPECT_FALSE(SlotsPerRank("many").ok());
}

}  // namespace
}  // namespace cluster
}  // namespace procpool
