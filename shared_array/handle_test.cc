#include "shared_array/handle.h"

#include <unistd.h>

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace procpool {
namespace {

using ::testing::HasSubstr;

SharedArrayHandle Sample() {
  SharedArrayHandle h;
  h.id = BufferId::Next();
  h.byte_size = 8 * 1000;
  h.element_size = 8;
  h.type_name = "f64";
  h.access = SharedAccess::kReadOnly;
  return h;
}

absl::Status DecodeError(const std::string& bytes) {
  return DecodeHandle(bytes).status();
}

TEST(BufferIdTest, UniqueInAProcessAndNamedByPid) {
  absl::flat_hash_set<BufferId> seen;
  for (int i = 0; i < 1000; ++i)
    ASSERT_TRUE(seen.insert(BufferId::Next()).second);
  const BufferId id = BufferId::Next();
  EXPECT_EQ(id.pid, static_cast<uint32_t>(getpid()));
  EXPECT_THAT(MemfdName(id), HasSubstr("procpool-array:"));
  EXPECT_THAT(id.ToString(),
              HasSubstr(absl::StrCat(id.pid, ".", id.serial, ".")));
}

TEST(HandleTest, RoundTrips) {
  for (SharedAccess access :
       {SharedAccess::kReadOnly, SharedAccess::kReadWrite}) {
    SharedArrayHandle h = Sample();
    h.access = access;
    const std::string bytes = EncodeHandle(h);
    EXPECT_EQ(bytes.size(), kHandleHeaderBytes + 3);
    EXPECT_EQ(bytes.substr(0, 4), "PPSA");
    absl::StatusOr<SharedArrayHandle> back = DecodeHandle(bytes);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->id, h.id);
    EXPECT_EQ(back->byte_size, h.byte_size);
    EXPECT_EQ(back->element_size, h.element_size);
    EXPECT_EQ(back->type_name, h.type_name);
    EXPECT_EQ(back->access, h.access);
  }
}

TEST(HandleTest, LittleEndianLayout) {
  SharedArrayHandle h = Sample();
  h.id.pid = 0x01020304;
  h.byte_size = 0x10;
  const std::string b = EncodeHandle(h);
  EXPECT_EQ(b[4], 1);  // version
  EXPECT_EQ(b[5], 1);  // read-only
  EXPECT_EQ(b.substr(8, 4), "\x04\x03\x02\x01");
  EXPECT_EQ(b[32], 0x10);
  EXPECT_EQ(b[40], 8);
  EXPECT_EQ(b[44], 3);
  EXPECT_EQ(b.substr(48), "f64");
}

TEST(HandleTest, RejectsTruncatedAtEveryLength) {
  const std::string bytes = EncodeHandle(Sample());
  for (size_t n = 0; n < bytes.size(); ++n) {
    absl::Status s = DecodeError(bytes.substr(0, n));
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << n;
    EXPECT_THAT(s.message(), HasSubstr("truncated")) << n << ": " << s;
  }
  absl::Status s = DecodeError(bytes + "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), HasSubstr("trailing"));
}

TEST(HandleTest, RejectsForgedFields) {
  const std::string good = EncodeHandle(Sample());
  struct Case {
    size_t offset;
    char value;
    const char* message;
  };
  const Case cases[] = {
      {0, 'X', "magic"},       {4, 2, "version"},
      {5, 0, "access"},        {5, 3, "access"},
      {6, 1, "reserved"},      {12, 1, "reserved"},
      {32, 1, "whole number"}, {47, 1, "type name of"},
      {48, ' ', "printable"},  {49, '\x80', "printable"},
  };
  for (const Case& c : cases) {
    std::string bad = good;
    bad[c.offset] = c.value;
    absl::Status s = DecodeError(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << c.offset;
    EXPECT_THAT(s.message(), HasSubstr(c.message)) << c.offset << ": " << s;
  }
  SharedArrayHandle h = Sample();
  h.id.pid = 0;
  EXPECT_THAT(DecodeError(EncodeHandle(h)).message(), HasSubstr("zero pid"));
  h = Sample();
  h.element_size = 0;
  EXPECT_THAT(DecodeError(EncodeHandle(h)).message(),
              HasSubstr("element size"));
  h = Sample();
  h.byte_size = kMaxHandleBytes + 8;
  EXPECT_THAT(DecodeError(EncodeHandle(h)).message(), HasSubstr("at most"));
  h = Sample();
  h.type_name = std::string(kMaxTypeNameBytes + 1, 'x');
  EXPECT_THAT(DecodeError(EncodeHandle(h)).message(), HasSubstr("type name"));
}

TEST(HandleTest, ByteFlipsNeverCrashAndMostAreRefused) {
  const std::string good = EncodeHandle(Sample());
  for (size_t i = 0; i < good.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = good;
      bad[i] ^= static_cast<char>(1 << bit);
      (void)DecodeHandle(bad);  // any result but a crash
    }
  }
}

TEST(HandleTest, CheckHandleTypeNamesBothTypes) {
  const SharedArrayHandle h = Sample();
  EXPECT_TRUE(CheckHandleType(h, "f64", 8).ok());
  absl::Status s = CheckHandleType(h, "f32", 4);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("holds f64"));
  EXPECT_THAT(s.message(), HasSubstr("expected f32"));
  EXPECT_EQ(CheckHandleType(h, "f64", 4).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace procpool
