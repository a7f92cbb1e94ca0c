#include "serialization/task_value.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "serialization/codec.h"

namespace procpool {
namespace {

TEST(CodecOwned, BigStringTakesOverTheBuffer) {
  std::string value(1 << 20, '\0');
  for (size_t i = 0; i < value.size(); ++i)
    value[i] = static_cast<char>(i * 31);
  std::string bytes = EncodeValue(value);
  const char* buffer = bytes.data();
  absl::StatusOr<std::string> out =
      DecodeOwnedValue<std::string>(std::move(bytes));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(*out == value);
  EXPECT_EQ(out->data(), buffer);  // no new memory
}

TEST(CodecOwned, BigStringInATupleTakesOverTheBuffer) {
  using Args = std::tuple<std::string>;
  std::string bytes = EncodeValue(Args(std::string(1 << 17, 'k')));
  const char* buffer = bytes.data();
  absl::StatusOr<Args> out = DecodeOwnedValue<Args>(std::move(bytes));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(std::get<0>(*out), std::string(1 << 17, 'k'));
  EXPECT_EQ(std::get<0>(*out).data(), buffer);
  absl::StatusOr<Args> bad = DecodeOwnedValue<Args>(
      EncodeValue(Args(std::string(1 << 17, 'k'))) + "x");
  EXPECT_EQ(
      bad.status().message(),
      DecodeValue<Args>(EncodeValue(Args(std::string(1 << 17, 'k'))) + "x")
          .status()
          .message());
}

TEST(CodecOwned, OtherCasesAreDecodeValue) {
  EXPECT_EQ(*DecodeOwnedValue<std::string>(EncodeValue(std::string("ab"))),
            "ab");
  EXPECT_EQ(*DecodeOwnedValue<int32_t>(EncodeValue(int32_t{7})), 7);
  std::string big = EncodeValue(std::string(1 << 17, 'x'));
  absl::StatusOr<std::string> truncated =
      DecodeOwnedValue<std::string>(big.substr(0, big.size() - 1));
  EXPECT_TRUE(absl::IsDataLoss(truncated.status())) << truncated.status();
  absl::StatusOr<std::string> trailing =
      DecodeOwnedValue<std::string>(big + "z");
  EXPECT_TRUE(absl::IsDataLoss(trailing.status())) << trailing.status();
  EXPECT_EQ(trailing.status().message(),
            DecodeValue<std::string>(big + "z").status().message());
}

TEST(TaskValue, ALoneStringIsItsBytes) {
  const std::string odd("\0\x80\xff prefix-like", 16);
  EXPECT_EQ(EncodeTaskValue(odd), odd);
  EXPECT_EQ(EncodeTaskArgs(std::make_tuple(odd)), odd);
  EXPECT_EQ(*DecodeTaskValue<std::string>(odd), odd);
  EXPECT_EQ(std::get<0>(*DecodeTaskValue<std::tuple<std::string>>(odd)), odd);
  EXPECT_EQ(*DecodeTaskValue<std::string>(""), "");
  // A result returned by value keeps its buffer all the way.
  std::string big(1 << 20, 'b');
  const char* memory = big.data();
  std::string encoded = EncodeTaskValue(std::move(big));
  EXPECT_EQ(encoded.data(), memory);
  absl::StatusOr<std::string> decoded =
      DecodeTaskValue<std::string>(std::move(encoded));
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->data(), memory);
  EXPECT_EQ(decoded->size(), size_t{1} << 20);
}

// A result of type std::tuple<std::string> follows the same rule both ways
// (it used to be encoded with its length prefix and decoded as bare bytes).
TEST(TaskValue, ALoneStringInATupleIsItsBytes) {
  const std::string s("tuple\0result", 12);
  std::tuple<std::string> t{s};
  EXPECT_EQ(EncodeTaskValue(t), s);
  EXPECT_EQ(EncodeTaskValue(std::move(t)), s);
  absl::StatusOr<std::tuple<std::string>> back =
      DecodeTaskValue<std::tuple<std::string>>(
          EncodeTaskValue(std::tuple<std::string>{s}));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(std::get<0>(*back), s);
  EXPECT_EQ(std::get<0>(*DecodeTaskValueView<std::tuple<std::string>>(
                EncodeTaskValue(std::tuple<std::string>{s}))),
            s);
}

TEST(TaskValue, AnythingElseIsTheCodecsEncoding) {
  EXPECT_EQ(EncodeTaskValue(int32_t{7}), EncodeValue(int32_t{7}));
  const auto two = std::make_tuple(std::string("a"), std::string("b"));
  EXPECT_EQ(EncodeTaskArgs(two), EncodeValue(two));
  using Vec = std::vector<std::string>;
  EXPECT_EQ(EncodeTaskValue(Vec{"x"}), EncodeValue(Vec{"x"}));
  EXPECT_EQ(*DecodeTaskValue<Vec>(EncodeValue(Vec{"x", "y"})), (Vec{"x", "y"}));
  absl::StatusOr<int32_t> bad = DecodeTaskValue<int32_t>("xyz");
  EXPECT_TRUE(absl::IsDataLoss(bad.status())) << bad.status();
}

}  // namespace
}  // namespace procpool
