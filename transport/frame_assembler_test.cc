#include "transport/frame_assembler.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "transport/frame_header.h"

namespace procpool {
namespace {

constexpr char kMagic[4] = {'T', 'S', 'T', '1'};
constexpr FrameFormat kFormat = {kMagic, uint64_t{1} << 40, "test transport",
                                 "stream"};

std::string Header(uint64_t length) {
  char h[kFrameHeaderSize];
  EncodeFrameHeader(kFormat, length, h);
  return std::string(h, sizeof(h));
}

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>((i * 31 + seed) & 0xff);
  return s;
}

std::string Stream(const std::vector<std::string>& payloads) {
  std::string out;
  for (const std::string& p : payloads) out += Header(p.size()) + p;
  return out;
}

class FrameAssemblerTest
    : public testing::TestWithParam<FrameAssembler::Growth> {};

TEST(FrameHeaderTest, LayoutIsMagicZeroFlagsLittleEndianLength) {
  const std::string h = Header(0x0102030405060708);
  EXPECT_EQ(h, std::string("TST1\0\0\0\0\x08\x07\x06\x05\x04\x03\x02\x01", 16));
  EXPECT_EQ(DecodeFrameLength(h.data()), 0x0102030405060708u);
  EXPECT_EQ(DecodeFrameFlags(h.data()), 0u);
  EXPECT_TRUE(CheckFrameHeader(kFormat, Header(1 << 20).data(), "worker").ok());
}

TEST(FrameHeaderTest, RejectsMagicFlagsAndLength) {
  std::string bad_magic = Header(1);
  bad_magic[0] = 'X';
  absl::Status s = CheckFrameHeader(kFormat, bad_magic.data(), "worker");
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(s.message(), "test transport: bad frame magic"))
      << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "the stream is corrupt")) << s;
  std::string flags = Header(1);
  flags[5] = 1;
  s = CheckFrameHeader(kFormat, flags.data(), "worker");
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(s.message(), "unknown flags 0x100")) << s;
  s = CheckFrameHeader(kFormat, Header(kFormat.max_length + 1).data(),
                       "parent");
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(s.message(), "impossible frame length")) << s;
  EXPECT_TRUE(CheckOutgoingFrameSize(kFormat, kFormat.max_length).ok());
  EXPECT_EQ(CheckOutgoingFrameSize(kFormat, kFormat.max_length + 1).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(FrameAssemblerTest, WholeStreamAtOnce) {
  FrameAssembler in(kFormat, GetParam(), "worker");
  const std::vector<std::string> payloads = {"", "a", Pattern(1000, 1), "",
                                             Pattern(70'000, 2)};
  const std::string stream = Stream(payloads);
  std::vector<std::string> frames;
  EXPECT_EQ(in.Feed(stream.data(), stream.size(), &frames), stream.size());
  EXPECT_EQ(frames, payloads);
  EXPECT_TRUE(in.error().ok());
  EXPECT_FALSE(in.in_payload());
  EXPECT_EQ(in.EndOfStreamError().message(),
            "test transport: the worker closed the channel");
}

TEST_P(FrameAssemblerTest, OddSplits) {
  const std::vector<std::string> payloads = {Pattern(5, 1), "", Pattern(17, 2),
                                             Pattern(200'000, 3), "x"};
  const std::string stream = Stream(payloads);
  for (size_t step : {size_t{1}, size_t{3}, size_t{7}, size_t{15}, size_t{16},
                      size_t{17}, size_t{4099}, size_t{65537}}) {
    FrameAssembler in(kFormat, GetParam(), "worker");
    std::vector<std::string> frames;
    for (size_t at = 0; at < stream.size(); at += step) {
      const size_t n = std::min(step, stream.size() - at);
      ASSERT_EQ(in.Feed(stream.data() + at, n, &frames), n) << step;
    }
    EXPECT_EQ(frames, payloads) << "step " << step;
  }
}

TEST_P(FrameAssemblerTest, TruncatedInTheHeader) {
  FrameAssembler in(kFormat, GetParam(), "worker");
  const std::string stream = Stream({"abc"}) + Header(10).substr(0, 5);
  std::vector<std::string> frames;
  in.Feed(stream.data(), stream.size(), &frames);
  EXPECT_EQ(frames, std::vector<std::string>{"abc"});
  const absl::Status s = in.EndOfStreamError();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(),
            "test transport: the worker closed the channel in the middle of a "
            "frame header (5 of 16 bytes arrived)");
}

TEST_P(FrameAssemblerTest, TruncatedInThePayload) {
  FrameAssembler in(kFormat, GetParam(), "parent");
  const std::string stream = Header(100) + Pattern(40, 1);
  std::vector<std::string> frames;
  in.Feed(stream.data(), stream.size(), &frames);
  EXPECT_TRUE(frames.empty());
  EXPECT_TRUE(in.in_payload());
  EXPECT_EQ(in.payload_left(), 60u);
  const absl::Status s = in.EndOfStreamError();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(),
            "test transport: the parent closed the channel in the middle of a "
            "frame (40 of 100 payload bytes arrived)");
  in.Reset();
  EXPECT_FALSE(in.in_payload());
  EXPECT_EQ(in.EndOfStreamError().message(),
            "test transport: the parent closed the channel");
}

TEST_P(FrameAssemblerTest, BadHeaderStopsAtItsEnd) {
  FrameAssembler in(kFormat, GetParam(), "worker");
  std::string bad = Header(3);
  bad[6] = 1;  // flags
  const std::string stream = Stream({"ok"}) + bad + "abc" + Stream({"no"});
  std::vector<std::string> frames;
  // Split inside the bad header, too.
  size_t taken = in.Feed(stream.data(), 20, &frames);
  EXPECT_EQ(taken, 20u);
  taken += in.Feed(stream.data() + 20, stream.size() - 20, &frames);
  EXPECT_EQ(taken, 18u + 16u);
  EXPECT_EQ(frames, std::vector<std::string>{"ok"});
  EXPECT_EQ(in.error().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(in.Feed(stream.data(), stream.size(), &frames), 0u);
  EXPECT_EQ(frames.size(), 1u);
}

TEST_P(FrameAssemblerTest, OversizeLengthIsCorruptAndAllocatesNothingBig) {
  FrameAssembler in(kFormat, GetParam(), "worker");
  const std::string h = Header(kFormat.max_length + 1);
  std::vector<std::string> frames;
  EXPECT_EQ(in.Feed(h.data(), h.size(), &frames), h.size());
  EXPECT_EQ(in.error().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(in.in_payload());
}

TEST_P(FrameAssemblerTest, LargeLengthWithFewBytesIsHeldAsInPayload) {
  // A length at the limit is legal; only the bytes that arrive are kept
  // (kReserveFrame reserves at most kEagerReserveLimit of address space).
  FrameAssembler in(kFormat, GetParam(), "worker");
  const std::string stream = Header(kFormat.max_length) + Pattern(1000, 3);
  std::vector<std::string> frames;
  EXPECT_EQ(in.Feed(stream.data(), stream.size(), &frames), stream.size());
  EXPECT_TRUE(frames.empty());
  EXPECT_EQ(in.payload_left(), kFormat.max_length - 1000);
  in.Reset();
}

TEST(FrameAssemblerRoomTest, ReceiveStraightIntoThePayload) {
  FrameAssembler in(kFormat, FrameAssembler::kGrowWithArrival, "worker");
  const std::string payload = Pattern(300'000, 7);
  const std::string header = Header(payload.size());
  std::vector<std::string> frames;
  ASSERT_EQ(in.Feed(header.data(), header.size(), &frames), header.size());
  ASSERT_EQ(in.Feed(payload.data(), 10, &frames), 10u);
  size_t at = 10;
  while (in.in_payload()) {
    absl::Span<char> room = in.PayloadRoom(50'000);
    ASSERT_GE(room.size(), 1u);
    // Never past the frame's end.
    ASSERT_LE(room.size(), in.payload_left());
    const size_t n = std::min<size_t>(room.size(), 33'333);
    memcpy(room.data(), payload.data() + at, n);
    at += n;
    in.CommitPayload(n, &frames);
  }
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].size(), payload.size());
  EXPECT_TRUE(frames[0] == payload);
}

INSTANTIATE_TEST_SUITE_P(Growth, FrameAssemblerTest,
                         testing::Values(FrameAssembler::kReserveFrame,
                                         FrameAssembler::kGrowWithArrival));

}  // namespace
}  // namespace procpool
