#include "core/start_method.h"

#include <string>

#include "gtest/gtest.h"

namespace procpool {
namespace {

TEST(StartMethodTest, NamesAreTheFlagSpellings) {
  EXPECT_EQ(std::string(StartMethodName(StartMethod::kFork)), "fork");
  EXPECT_EQ(std::string(StartMethodName(StartMethod::kForkServer)),
            "forkserver");
  EXPECT_EQ(std::string(StartMethodName(StartMethod::kSpawn)), "spawn");
}

TEST(StartMethodTest, OutOfRangeIsUnknown) {
  EXPECT_EQ(std::string(StartMethodName(static_cast<StartMethod>(42))),
            "unknown");
}

}  // namespace
}  // namespace procpool
