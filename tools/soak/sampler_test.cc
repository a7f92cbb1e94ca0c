// The soak verdict's rule (tools/soak/sampler.h): what counts as flat.
#include "tools/soak/sampler.h"

#include "gtest/gtest.h"

namespace procpool {
namespace soak {
namespace {

Sample At(int64_t anon_kib, int64_t fds, int64_t threads, int64_t maps = 30) {
  Sample s;
  s.anon_kib = anon_kib;
  s.rss_kib = anon_kib + 5000;
  s.fds = fds;
  s.threads = threads;
  s.maps = maps;
  return s;
}

TEST(JudgeTest, EqualIsFlat) {
  const Verdict v = Judge(At(1000, 10, 4), At(1000, 10, 4), Bounds{});
  EXPECT_TRUE(v.flat) << v.why;
  EXPECT_EQ(v.why, "");
}

TEST(JudgeTest, ResidentMemoryWithinItsBoundIsFlat) {
  const Verdict v = Judge(At(1000, 10, 4), At(1050, 10, 4), Bounds{});
  EXPECT_TRUE(v.flat) << v.why;
  EXPECT_DOUBLE_EQ(v.anon_growth_pct, 5.0);
}

TEST(JudgeTest, ResidentMemoryPastItsBoundIsGrowth) {
  const Verdict v = Judge(At(1000, 10, 4), At(1051, 10, 4), Bounds{});
  EXPECT_FALSE(v.flat);
  EXPECT_NE(v.why.find("resident memory (anonymous) grew 5.1%"),
            std::string::npos)
      << v.why;
}

TEST(JudgeTest, ShrinkingIsFlat) {
  const Verdict v = Judge(At(1000, 10, 4), At(500, 8, 3), Bounds{});
  EXPECT_TRUE(v.flat) << v.why;
  EXPECT_EQ(v.fd_growth, -2);
  EXPECT_EQ(v.thread_growth, -1);
}

TEST(JudgeTest, OneMoreDescriptorThreadOrMappingIsGrowthWithoutSlack) {
  EXPECT_FALSE(Judge(At(1000, 10, 4), At(1000, 11, 4), Bounds{}).flat);
  EXPECT_FALSE(Judge(At(1000, 10, 4), At(1000, 10, 5), Bounds{}).flat);
  const Verdict v = Judge(At(1000, 10, 4, 30), At(1000, 10, 4, 31), Bounds{});
  EXPECT_FALSE(v.flat);
  EXPECT_NE(v.why.find("mappings grew by 1"), std::string::npos) << v.why;
}

TEST(JudgeTest, OnlyAnonymousMemoryIsJudged) {
  Sample end = At(1000, 10, 4);
  end.rss_kib += 3000;  // file pages and shm rings touched: not a leak
  const Verdict v = Judge(At(1000, 10, 4), end, Bounds{});
  EXPECT_TRUE(v.flat) << v.why;
  EXPECT_GT(v.rss_growth_pct, 5.0);
}

TEST(JudgeTest, SlackAllowsThatMuchAndNoMore) {
  Bounds b;
  b.fd_slack = 2;
  b.thread_slack = 1;
  EXPECT_TRUE(Judge(At(1000, 10, 4), At(1000, 12, 5), b).flat);
  const Verdict v = Judge(At(1000, 10, 4), At(1000, 13, 6), b);
  EXPECT_FALSE(v.flat);
  EXPECT_NE(v.why.find("descriptors grew by 3"), std::string::npos) << v.why;
  EXPECT_NE(v.why.find("threads grew by 2"), std::string::npos) << v.why;
}

TEST(JudgeTest, UnreadableFiguresAreNotFlat) {
  EXPECT_FALSE(Judge(At(-1, 10, 4), At(1000, 10, 4), Bounds{}).flat);
  EXPECT_FALSE(Judge(At(1000, 10, 4), At(1000, -1, 4), Bounds{}).flat);
}

TEST(TakeSampleTest, ReadsThisProcess) {
  const Sample s = TakeSample(7, 1.5, /*trim=*/true);
  EXPECT_EQ(s.tasks, 7);
  EXPECT_GT(s.rss_kib, 0);
  EXPECT_GE(s.hwm_kib, s.rss_kib);
  EXPECT_GT(s.raw_rss_kib, 0);  // malloc_trim may touch a page or two
  EXPECT_GT(s.anon_kib, 0);
  EXPECT_GT(s.file_kib, 0);
  EXPECT_GE(s.shmem_kib, 0);
  EXPECT_GT(s.maps, 5);
  EXPECT_GE(s.fds, 3);  // stdin, stdout, stderr
  EXPECT_GE(s.threads, 1);
}

}  // namespace
}  // namespace soak
}  // namespace procpool
