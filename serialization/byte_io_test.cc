#include "serialization/byte_io.h"

#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace procpool {
namespace {

using ::testing::HasSubstr;

// The bytes of a literal, embedded NULs included.
template <size_t N>
std::string Bytes(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

std::string Varint(uint64_t v) {
  Writer w;
  w.WriteVarint(v);
  return w.Release();
}

TEST(Varint, RoundTripsBoundaries) {
  for (uint64_t v :
       {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{300},
        uint64_t{16383}, uint64_t{16384}, uint64_t{1} << 32, uint64_t{1} << 63,
        std::numeric_limits<uint64_t>::max()}) {
    const std::string bytes = Varint(v);
    Reader r(bytes);
    uint64_t back = 0;
    ASSERT_TRUE(r.ReadVarint(&back).ok()) << v;
    EXPECT_EQ(back, v);
    EXPECT_EQ(r.remaining(), 0u);
  }
  EXPECT_EQ(Varint(300), "\xac\x02");
  EXPECT_EQ(Varint(std::numeric_limits<uint64_t>::max()).size(), 10u);
}

TEST(Varint, RejectsBadEncodings) {
  uint64_t v;
  {
    const std::string overlong = Bytes("\x80\x00");
    Reader r(overlong);
    absl::Status s = r.ReadVarint(&v);
    EXPECT_TRUE(absl::IsDataLoss(s));
    EXPECT_THAT(s.message(), HasSubstr("overlong"));
    EXPECT_EQ(r.remaining(), 2u);  // the cursor did not move
  }
  {
    // 2^64: ten bytes whose last carries more than one bit.
    Reader r("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02");
    EXPECT_THAT(r.ReadVarint(&v).message(), HasSubstr("overflows"));
  }
  {
    Reader r("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");  // eleven bytes
    EXPECT_TRUE(absl::IsDataLoss(r.ReadVarint(&v)));
  }
  {
    Reader r("\xff\xff");
    EXPECT_THAT(r.ReadVarint(&v).message(), HasSubstr("truncated"));
  }
  {
    Reader r("");
    EXPECT_TRUE(absl::IsDataLoss(r.ReadVarint(&v)));
  }
}

TEST(Reader, BoundsChecked) {
  Reader r("abc");
  char buf[4];
  absl::Status s = r.ReadBytes(buf, 4);
  EXPECT_TRUE(absl::IsDataLoss(s));
  EXPECT_EQ(std::string(s.message()),
            "truncated: need 4 bytes for bytes, 3 left");
  ASSERT_TRUE(r.ReadBytes(buf, 1).ok());
  EXPECT_EQ(r.position(), 1u);
  EXPECT_FALSE(r.ReadView(3).ok());
  absl::StatusOr<absl::string_view> view = r.ReadView(2);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(*view, "bc");
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_TRUE(r.ReadBytes(nullptr, 0).ok());
  double d;
  EXPECT_EQ(std::string(Reader("abc").ReadFixed(&d).message()),
            "truncated: need 8 bytes for f64, 3 left");
}

TEST(Writer, AppendsToExistingBuffer) {
  Writer w(std::string("HDR"));
  w.WriteFixed(int32_t{1});
  EXPECT_EQ(w.size(), 7u);
  EXPECT_EQ(w.Release(), Bytes("HDR\x01\x00\x00\x00"));
  EXPECT_EQ(w.size(), 0u);
}

TEST(Writer, FixedIsLittleEndian) {
  Writer w;
  w.WriteFixed(uint16_t{0x0102});
  w.WriteFixed(int32_t{-2});
  w.WriteFixed(true);
  w.WriteFixed(1.0);
  EXPECT_EQ(w.Release(), Bytes("\x02\x01\xfe\xff\xff\xff\x01"
                               "\x00\x00\x00\x00\x00\x00\xf0\x3f"));
}

TEST(Writer, BigWritesReserveOnceAndKeepTheBytes) {
  const std::string big(internal::kBigBufferBytes + 5, 'b');
  Writer w(std::string("h"));
  w.WriteBytes(big.data(), big.size());
  EXPECT_GE(w.buffer().capacity(), big.size() + 1);
  w.WriteBytes("t", 1);
  const std::string out = w.Release();
  EXPECT_EQ(out.size(), big.size() + 2);
  EXPECT_EQ(out.front(), 'h');
  EXPECT_EQ(out.back(), 't');
  EXPECT_EQ(out.substr(1, big.size()), big);
  Writer r;
  r.Reserve(1000);
  EXPECT_GE(r.buffer().capacity(), 1000u);
  EXPECT_EQ(r.size(), 0u);
}

TEST(ReserveBig, NeverShrinksAndKeepsTheBytes) {
  std::string s = "abc";
  s.reserve(100);
  const size_t capacity = s.capacity();
  internal::ReserveBig(&s, 10);
  EXPECT_EQ(s.capacity(), capacity);
  internal::ReserveBig(&s, internal::kBigBufferBytes);
  EXPECT_GE(s.capacity(), internal::kBigBufferBytes);
  EXPECT_EQ(s, "abc");
}

TEST(Reader, FixedRoundTripsAndChecksBools) {
  Writer w;
  w.WriteFixed(int64_t{-5});
  w.WriteFixed(3.5f);
  w.WriteFixed(false);
  const std::string bytes = w.Release();
  Reader r(bytes);
  int64_t i = 0;
  float f = 0;
  bool b = true;
  ASSERT_TRUE(r.ReadFixed(&i).ok());
  ASSERT_TRUE(r.ReadFixed(&f).ok());
  ASSERT_TRUE(r.ReadFixed(&b).ok());
  EXPECT_EQ(i, -5);
  EXPECT_EQ(f, 3.5f);
  EXPECT_FALSE(b);
  EXPECT_EQ(r.remaining(), 0u);
  Reader bad("\x07");
  absl::Status s = bad.ReadFixed(&b);
  EXPECT_TRUE(absl::IsDataLoss(s));
  EXPECT_EQ(std::string(s.message()), "invalid bool byte 0x07 (want 0 or 1)");
}

TEST(Reader, EmptyElementsAreBudgeted) {
  Reader r("");
  size_t charged = 0;
  while (r.ChargeEmptyElement(1).ok()) {
    charged += Reader::kEmptyElementMinCharge;
    ASSERT_LE(charged, Reader::kEmptyElementBudgetBytes);
  }
  EXPECT_EQ(charged, Reader::kEmptyElementBudgetBytes);
  EXPECT_THAT(r.ChargeEmptyElement(1).message(), HasSubstr("budget"));
  // A big element is charged its size.
  Reader big("");
  EXPECT_TRUE(big.ChargeEmptyElement(Reader::kEmptyElementBudgetBytes).ok());
  EXPECT_FALSE(big.ChargeEmptyElement(1).ok());
}

TEST(Reader, NestingIsLimited) {
  Reader r("");
  for (int i = 0; i < Reader::kMaxNestingDepth; ++i) {
    ASSERT_TRUE(r.EnterNested().ok()) << i;
  }
  absl::Status s = r.EnterNested();
  EXPECT_TRUE(absl::IsDataLoss(s));
  EXPECT_THAT(s.message(), HasSubstr("nested deeper than 256"));
  r.ExitNested();
  EXPECT_TRUE(r.EnterNested().ok());
}

}  // namespace
}  // namespace procpool
