// The framed remote link's bytes: the preamble round-trips and refuses what
// is not one; trailers come off frames, keepalives are dropped, and a frame
// without a valid trailer is kDataLoss after the frames before it.
#include "transport/capnp/framed_link.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "transport/frame_header.h"

namespace procpool {
namespace capnp_internal {
namespace framed {
namespace {

TEST(FramedLinkTest, PreambleCarriesTheKeepaliveInterval) {
  for (absl::Duration d : {absl::ZeroDuration(), absl::Milliseconds(250),
                           absl::Seconds(3)}) {
    const std::string bytes = EncodePreamble(d);
    ASSERT_EQ(bytes.size(), kPreambleSize);
    absl::StatusOr<absl::Duration> back = DecodePreamble(bytes, "parent");
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, d);
  }
}

TEST(FramedLinkTest, PreambleRefusesOtherBytes) {
  std::string bytes = EncodePreamble(absl::Seconds(1));
  bytes[0] = 'X';
  absl::StatusOr<absl::Duration> bad = DecodePreamble(bytes, "parent at A");
  EXPECT_TRUE(absl::IsDataLoss(bad.status())) << bad.status();
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "parent at A"));
  bytes = EncodePreamble(absl::Seconds(1));
  bytes[5] = 1;  // reserved
  EXPECT_TRUE(absl::IsDataLoss(DecodePreamble(bytes, "p").status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodePreamble("PPL1", "p").status()));
}

TEST(FramedLinkTest, TrailersComeOffAndKeepalivesAreDropped) {
  std::vector<std::string> got = {std::string("abc\0", 4),
                                  std::string(1, kKeepaliveTrailer),
                                  std::string(1, kDataTrailer)};
  std::vector<std::string> frames;
  ASSERT_TRUE(StripTrailers(&got, &frames, "worker").ok());
  EXPECT_TRUE(got.empty());
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0], "abc");
  EXPECT_EQ(frames[1], "");  // an empty frame of the channel
}

TEST(FramedLinkTest, AFrameWithoutAValidTrailerIsDataLoss) {
  for (const std::string& bad :
       {std::string(), std::string("abc\2", 4), std::string("x\1", 2)}) {
    std::vector<std::string> got = {std::string("ok\0", 3), bad,
                                    std::string("after\0", 6)};
    std::vector<std::string> frames;
    const absl::Status s = StripTrailers(&got, &frames, "worker daemon at A");
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "worker daemon at A")) << s;
    ASSERT_EQ(frames.size(), 1u);  // the one before it, nothing after
    EXPECT_EQ(frames[0], "ok");
  }
}

TEST(FramedLinkTest, KeepaliveFrameIsAHeaderAndItsTrailer) {
  const absl::string_view k = KeepaliveFrame();
  ASSERT_EQ(k.size(), kFrameHeaderSize + 1);
  EXPECT_TRUE(CheckFrameHeader(kFormat, k.data(), "worker").ok());
  EXPECT_EQ(DecodeFrameLength(k.data()), 1u);
  EXPECT_EQ(k.back(), kKeepaliveTrailer);
  EXPECT_EQ(DataTrailer(), absl::string_view("\0", 1));
}

}  // namespace
}  // namespace framed
}  // namespace capnp_internal
}  // namespace procpool
