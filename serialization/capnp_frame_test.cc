#include "serialization/capnp_frame.h"

#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "serialization/packed.h"
#include "serialization/wire.capnp.h"

namespace procpool {
namespace wire {
namespace {

namespace s = ::procpool::wire::schema;

// A Call message of `args`, each through FrameBuilder::Blob.
void BuildCall(FrameBuilder& f, const std::vector<std::string>& args) {
  auto call = f.Root<s::Message>().initCall();
  call.setWorkId(7);
  call.setTask(AsText(std::string("T\0ask", 5)));
  auto list = call.initArgs(static_cast<unsigned>(args.size()));
  for (unsigned i = 0; i < args.size(); ++i) list.adopt(i, f.Blob(args[i]));
}

kj::Array<capnp::word> WordsOf(const std::string& frame) {
  kj::Array<capnp::word> words =
      kj::heapArray<capnp::word>(frame.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), frame.data(), frame.size());
  return words;
}

// The segments of a frame, as its table and trailer give them.
std::vector<kj::ArrayPtr<const capnp::word>> SegmentsOf(
    const kj::Array<capnp::word>& words) {
  std::vector<kj::ArrayPtr<const capnp::word>> segments;
  const absl::Status split = SplitFrame(words, &segments);
  EXPECT_TRUE(split.ok()) << split;
  return segments;
}

size_t Segments(const std::string& frame) {
  return SegmentsOf(WordsOf(frame)).size();
}

// `frame`'s Call args, read by Cap'n Proto's own reader over its segments.
std::vector<std::string> ArgsOf(const std::string& frame) {
  const kj::Array<capnp::word> words = WordsOf(frame);
  const std::vector<kj::ArrayPtr<const capnp::word>> segments =
      SegmentsOf(words);
  capnp::SegmentArrayMessageReader reader(
      kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>(segments.data(),
                                                          segments.size()));
  auto call = reader.getRoot<s::Message>().getCall();
  EXPECT_EQ(call.getWorkId(), 7u);
  EXPECT_EQ(ToString(call.getTask()), std::string("T\0ask", 5));
  std::vector<std::string> out;
  for (auto a : call.getArgs()) {
    out.emplace_back(reinterpret_cast<const char*>(a.begin()), a.size());
  }
  return out;
}

std::string Pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7);
  return s;
}

TEST(FrameBuilder, SmallBlobsAreCopiedIntoOneSegment) {
  const std::vector<std::string> args = {"abc", "", std::string(1000, 'x')};
  FrameBuilder f(/*first_segment_words=*/256);  // room for all of it
  BuildCall(f, args);
  const std::string frame = f.Finish();
  EXPECT_EQ(frame.size() % 8, 0u);
  EXPECT_EQ(Segments(frame), 1u);
  EXPECT_EQ(ArgsOf(frame), args);
}

// A big blob is a segment of its own (referenced, not copied into the
// builder); the frame is still a standard message.
TEST(FrameBuilder, BigBlobsAreSegmentsOfTheirOwn) {
  const std::vector<std::string> args = {
      Pattern(kReferencedBlobBytes + 3, 'a'), "small",
      Pattern(kReferencedBlobBytes - 1, 'b'), Pattern(1 << 20, 'c')};
  // Room for everything but the two referenced blobs.
  FrameBuilder f(64 + BlobWords(args[2]) + 2 * BlobWords(args[0]));
  BuildCall(f, args);
  const std::string frame = f.Finish();
  EXPECT_EQ(Segments(frame), 3u);
  EXPECT_EQ(ArgsOf(frame), args);
  // The biggest (1 MiB) goes first: the frame starts with its bytes.
  EXPECT_EQ(frame.compare(0, args[3].size(), args[3]), 0);
}

TEST(FrameBuilder, AFrameWithoutABigBlobStartsWithItsTable) {
  const std::vector<std::string> args = {"a", Pattern(kStealBlobBytes - 1, 'x')};
  FrameBuilder f(64);
  BuildCall(f, args);  // referenced: args outlive Finish()
  const std::string frame = f.Finish();
  uint32_t count = 0;
  std::memcpy(&count, frame.data(), 4);
  EXPECT_EQ(count + 1, Segments(frame));
  uint32_t magic = 0;
  std::memcpy(&magic, frame.data() + frame.size() - 4, 4);
  EXPECT_EQ(magic, kFrameMagic);
}

TEST(FrameBuilder, ACorruptTrailerOrTableIsDataLoss) {
  const std::vector<std::string> args = {"a", Pattern(1 << 20, 'y')};
  FrameBuilder f(64);
  BuildCall(f, args);
  const std::string good = f.Finish();
  std::vector<kj::ArrayPtr<const capnp::word>> segments;
  auto split = [&](std::string frame) {
    return SplitFrame(WordsOf(frame), &segments);
  };
  ASSERT_TRUE(split(good).ok());
  const size_t n = good.size();
  std::string bad = good;
  bad[n - 1] ^= 1;  // the magic
  EXPECT_EQ(split(bad).code(), absl::StatusCode::kDataLoss);
  bad = good;
  bad[n - 16] ^= 1;  // the first segment's size
  EXPECT_EQ(split(bad).code(), absl::StatusCode::kDataLoss);
  bad = good;
  bad[n - 8] = 7;  // its index, past the table's count
  EXPECT_EQ(split(bad).code(), absl::StatusCode::kDataLoss);
  bad = good;
  bad[n - 12] = 0x7f;  // a first segment as long as the frame
  EXPECT_EQ(split(bad).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(split(good.substr(0, 8)).code(), absl::StatusCode::kDataLoss);
}

TEST(FrameBuilder, PartsConcatenateToTheFrameAndViewTheBigBlobs) {
  const std::vector<std::string> args = {Pattern(40000, 'p'),
                                         Pattern((1 << 20) + 3, 'q'), "tiny",
                                         Pattern(30000, 'r')};
  FrameBuilder one(64);
  BuildCall(one, args);
  const std::string frame = one.Finish();
  FrameBuilder f(64);
  BuildCall(f, args);
  std::string storage = "left over";
  std::vector<absl::string_view> parts = f.FinishParts(&storage);
  EXPECT_TRUE(absl::StrJoin(parts, "") == frame);
  // Each big blob is sent from where it is; only the rest is in storage.
  for (int i : {0, 1, 3}) {
    bool viewed = false;
    for (absl::string_view p : parts) {
      viewed =
          viewed || (p.data() == args[i].data() && p.size() == args[i].size());
    }
    EXPECT_TRUE(viewed) << i;
  }
  EXPECT_LT(storage.size(), size_t{4096});
}

TEST(FrameBuilder, PartsOfAFrameWithoutBigBlobsAreItsBytes) {
  FrameBuilder one(8);
  BuildCall(one, {"a", "b"});
  const std::string frame = one.Finish();
  FrameBuilder f(8);
  BuildCall(f, {"a", "b"});
  std::string storage;
  std::vector<absl::string_view> parts = f.FinishParts(&storage);
  EXPECT_EQ(storage, frame);
  EXPECT_TRUE(absl::StrJoin(parts, "") == frame);
}

TEST(FrameBuilder, BlobWordsCountsAPointerForABigBlob) {
  EXPECT_EQ(BlobWords(""), 0u);
  EXPECT_EQ(BlobWords("a"), 1u);
  EXPECT_EQ(BlobWords(std::string(8, 'a')), 1u);
  EXPECT_EQ(BlobWords(std::string(9, 'a')), 2u);
  EXPECT_EQ(BlobWords(std::string(kReferencedBlobBytes - 1, 'a')),
            kReferencedBlobBytes / 8);
  EXPECT_EQ(BlobWords(std::string(kReferencedBlobBytes, 'a')), 4u);
}

// Reads `frame`'s Call args through ReadFrame and BlobReader.
absl::Status ReadArgs(absl::string_view frame, std::string* owned,
                      std::vector<std::string>* args) {
  return ReadFrame<s::Message>(frame, owned,
                               [&](s::Message::Reader root, BlobReader& blobs) {
                                 auto list = root.getCall().getArgs();
                                 args->resize(list.size());
                                 for (unsigned i = 0; i < list.size(); ++i) {
                                   blobs.Read(list[i], &(*args)[i]);
                                 }
                               });
}

std::string CallFrame(const std::vector<std::string>& args) {
  FrameBuilder f(64);
  BuildCall(f, args);
  return f.Finish();
}

TEST(ReadFrame, CopiesEveryBlobOfAFrameItDoesNotOwn) {
  const std::vector<std::string> args = {"x", Pattern(100000, 'a'),
                                         Pattern(70000, 'b')};
  const std::string frame = CallFrame(args);
  std::vector<std::string> out;
  ASSERT_TRUE(ReadArgs(frame, nullptr, &out).ok());
  EXPECT_EQ(out, args);
}

// Of the blobs of kStealBlobBytes or more, the biggest takes over the owned
// frame's buffer; the others are copied.
TEST(ReadFrame, TheBiggestBlobTakesOverAnOwnedFrame) {
  const std::vector<std::string> args = {
      Pattern(kStealBlobBytes + 5, 'a'), Pattern(3 * kStealBlobBytes, 'b'),
      Pattern(kStealBlobBytes, 'c'), Pattern(kStealBlobBytes - 1, 'd'), "e"};
  std::string frame = CallFrame(args);
  const char* buffer = frame.data();
  std::vector<std::string> out;
  ASSERT_TRUE(ReadArgs(frame, &frame, &out).ok());
  EXPECT_EQ(out, args);
  EXPECT_EQ(out[1].data(), buffer);
  EXPECT_NE(out[0].data(), buffer);
}

TEST(ReadFrame, SmallBlobsLeaveAnOwnedFrameAlone) {
  const std::vector<std::string> args = {Pattern(kStealBlobBytes - 1, 'a'),
                                         "b"};
  std::string frame = CallFrame(args);
  const std::string copy = frame;
  std::vector<std::string> out;
  ASSERT_TRUE(ReadArgs(frame, &frame, &out).ok());
  EXPECT_EQ(out, args);
  EXPECT_TRUE(frame == copy);
}

TEST(ReadFrame, ReadsAMisalignedFrame) {
  const std::vector<std::string> args = {"a", Pattern(100000, 'z')};
  const std::string shifted = " " + CallFrame(args);
  std::vector<std::string> out;
  ASSERT_TRUE(
      ReadArgs(absl::string_view(shifted).substr(1), nullptr, &out).ok());
  EXPECT_EQ(out, args);
}

TEST(ReadFrame, PartialWordsAreDataLoss) {
  std::vector<std::string> out;
  for (absl::string_view frame :
       {absl::string_view(""), absl::string_view("abc"),
        absl::string_view("123456789")}) {
    absl::Status status = ReadArgs(frame, nullptr, &out);
    EXPECT_TRUE(absl::IsDataLoss(status)) << status;
    EXPECT_NE(status.message().find("whole number of 8-byte words"),
              absl::string_view::npos)
        << status;
  }
}

TEST(ReadFrame, MalformedMessagesAreDataLoss) {
  std::vector<std::string> out;
  absl::Status status = ReadArgs(std::string(8, '\xff'), nullptr, &out);
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_NE(status.message().find("corrupted frame"), absl::string_view::npos)
      << status;
  // Every truncation of a good frame.
  const std::string frame = CallFrame({"abc", "defgh"});
  for (size_t n = 0; n < frame.size(); n += 8) {
    EXPECT_FALSE(
        ReadArgs(absl::string_view(frame).substr(0, n), nullptr, &out).ok())
        << n;
  }
}

// An error thrown while reading is kDataLoss, and the owned frame stays as
// it was (no blob took it over).
TEST(ReadFrame, AnExceptionWhileReadingIsDataLossAndKeepsTheFrame) {
  std::string frame = CallFrame({Pattern(kStealBlobBytes * 2, 'a')});
  const std::string copy = frame;
  std::string arg;
  absl::Status status = ReadFrame<s::Message>(
      frame, &frame, [&](s::Message::Reader root, BlobReader& blobs) {
        blobs.Read(root.getCall().getArgs()[0], &arg);
        KJ_FAIL_REQUIRE("the reader gives up", 42);
      });
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_NE(status.message().find("the reader gives up"),
            absl::string_view::npos)
      << status;
  EXPECT_TRUE(frame == copy);
  EXPECT_TRUE(arg.empty());
}

PackedElements Pack(const std::vector<std::string>& elements) {
  PackedElements p;
  for (const std::string& e : elements) p.Append(e);
  return p;
}

// A frame whose Call is packed: `p`'s ends and bytes as they are.
std::string PackedFrame(const PackedElements& p) {
  FrameBuilder f(64);
  auto call = f.Root<s::Message>().initCall();
  SetPacked(p, call.initArgEnds(static_cast<unsigned>(p.size())),
            call.initPackedArgs(static_cast<unsigned>(p.bytes.size())));
  return f.Finish();
}

absl::Status ReadPacked(const std::string& frame, PackedElements* out) {
  return ReadFrame<s::Message>(
      frame, nullptr, [&](s::Message::Reader root, BlobReader&) {
        auto call = root.getCall();
        ReadPackedInto(call.getPackedArgs(), call.getArgEnds(), out);
      });
}

TEST(PackedLists, RoundTrip) {
  for (const std::vector<std::string>& elements :
       {std::vector<std::string>{}, std::vector<std::string>{""},
        std::vector<std::string>{"ab", "", "cde", std::string(5000, 'f')}}) {
    const PackedElements p = Pack(elements);
    PackedElements out;
    out.Append("stale");
    ASSERT_TRUE(ReadPacked(PackedFrame(p), &out).ok());
    EXPECT_EQ(out, p);
  }
}

TEST(PackedLists, RawUInt32sSeesTheEndsInPlace) {
  FrameBuilder f(16);
  auto ends = f.Root<s::Message>().initCall().initArgEnds(3);
  ends.set(0, 1);
  ends.set(1, 0x01020304);
  ends.set(2, 7);
  const kj::byte* raw = RawUInt32s(ends.asReader());
  if (!internal::kLittleEndian) {
    EXPECT_EQ(raw, nullptr);
    return;
  }
  ASSERT_NE(raw, nullptr);
  uint32_t values[3];
  std::memcpy(values, raw, sizeof(values));
  EXPECT_EQ(values[0], 1u);
  EXPECT_EQ(values[1], 0x01020304u);
  EXPECT_EQ(values[2], 7u);
}

TEST(PackedLists, MalformedEndsAreDataLoss) {
  struct Case {
    std::vector<uint32_t> ends;
    const char* what;
  };
  for (const Case& c :
       {Case{{3, 2, 5}, "out of order"}, Case{{3, 9}, "past its blob"},
        Case{{2}, "longer than its elements"},
        Case{{}, "longer than its elements"}}) {
    PackedElements p;
    p.bytes = "abcde";
    p.ends = c.ends;
    PackedElements out;
    absl::Status status = ReadPacked(PackedFrame(p), &out);
    EXPECT_TRUE(absl::IsDataLoss(status)) << status;
    EXPECT_NE(status.message().find(c.what), absl::string_view::npos) << status;
  }
}

}  // namespace
}  // namespace wire
}  // namespace procpool
