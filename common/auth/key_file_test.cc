#include "common/auth/key_file.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace procpool {
namespace auth {
namespace {

std::string TempPath(const std::string& name) {
  const char* dir = getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

std::string WriteKey(const std::string& name, const std::string& contents,
                     mode_t mode) {
  const std::string path = TempPath(name);
  unlink(path.c_str());
  std::ofstream(path, std::ios::binary) << contents;
  chmod(path.c_str(), mode);
  return path;
}

TEST(KeyFileTest, ReadsTheKeyAndStripsOneTrailingNewline) {
  EXPECT_EQ(*ReadKeyFile(WriteKey("k1", "secret\n", 0600)), "secret");
  EXPECT_EQ(*ReadKeyFile(WriteKey("k2", "secret", 0400)), "secret");
  EXPECT_EQ(*ReadKeyFile(WriteKey("k3", "secret\r\n", 0600)), "secret");
  EXPECT_EQ(*ReadKeyFile(WriteKey("k4", "secret\n\n", 0600)), "secret\n");
  EXPECT_EQ(*ReadKeyFile(WriteKey("k5", std::string("a\0b", 3), 0600)),
            std::string("a\0b", 3));
}

TEST(KeyFileTest, RefusesAnEmptyFile) {
  for (const char* contents : {"", "\n"}) {
    absl::StatusOr<std::string> key = ReadKeyFile(WriteKey("e", contents, 0600));
    ASSERT_FALSE(key.ok());
    EXPECT_TRUE(absl::IsFailedPrecondition(key.status())) << key.status();
    EXPECT_TRUE(absl::StrContains(key.status().message(), "is empty"))
        << key.status();
  }
}

TEST(KeyFileTest, RefusesAFileOthersCanRead) {
  for (mode_t mode : {0644, 0640, 0604, 0660, 0602}) {
    const std::string path = WriteKey("shared", "secret", mode);
    absl::StatusOr<std::string> key = ReadKeyFile(path);
    ASSERT_FALSE(key.ok()) << std::oct << mode;
    EXPECT_TRUE(absl::IsFailedPrecondition(key.status())) << key.status();
    EXPECT_TRUE(absl::StrContains(key.status().message(), "chmod 600 " + path))
        << key.status();
  }
}

TEST(KeyFileTest, MissingFileNamesIt) {
  absl::StatusOr<std::string> key = ReadKeyFile(TempPath("no-such-key"));
  ASSERT_FALSE(key.ok());
  EXPECT_TRUE(absl::IsNotFound(key.status())) << key.status();
  EXPECT_TRUE(absl::StrContains(key.status().message(), "no-such-key"))
      << key.status();
}

TEST(KeyFileTest, RefusesADirectory) {
  const std::string dir = TempPath("keydir");
  mkdir(dir.c_str(), 0700);
  absl::StatusOr<std::string> key = ReadKeyFile(dir);
  ASSERT_FALSE(key.ok());
  EXPECT_TRUE(absl::StrContains(key.status().message(), "not a regular file"))
      << key.status();
}

}  // namespace
}  // namespace auth
}  // namespace procpool
