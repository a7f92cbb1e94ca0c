#include "serialization/wire.h"

#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/str_join.h"
#include "gtest/gtest.h"

namespace procpool {
namespace wire {
namespace {

// A Call or Result with a string (an Outcome) per element; other messages as
// they are.
template <typename T>
T Unpacked(T m) {
  if constexpr (std::is_same_v<T, Call> || std::is_same_v<T, Result>) {
    Unpack(&m);
  }
  return m;
}

// Encodes and decodes `in`; the result unpacked (Unpacked) unless `packed`.
template <typename T>
T RoundTrip(const T& in, bool packed = false) {
  std::string frame = EncodeMessage(in);
  absl::StatusOr<Message> out = DecodeMessage(frame);
  EXPECT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(std::holds_alternative<T>(*out)) << MessageKind(*out);
  return packed ? std::get<T>(*out) : Unpacked(std::get<T>(*out));
}

TEST(Wire, ConfigRoundTrip) {
  Config c;
  c.max_tasks = 3;
  c.initializer = CallSpec{"Init", std::string("\0\1\2", 3)};
  c.keep_freed_memory = true;
  Config out = RoundTrip(c);
  EXPECT_EQ(out.protocol_version, kProtocolVersion);
  EXPECT_EQ(out.max_tasks, 3);
  EXPECT_TRUE(out.keep_freed_memory);
  EXPECT_FALSE(RoundTrip(Config{}).keep_freed_memory);
  ASSERT_TRUE(out.initializer.has_value());
  EXPECT_EQ(out.initializer->task, "Init");
  EXPECT_EQ(out.initializer->args, std::string("\0\1\2", 3));
  EXPECT_FALSE(RoundTrip(Config{}).initializer.has_value());
}

TEST(Wire, HelloRoundTrip) {
  Hello h{kProtocolVersion, 1234, 0xdeadbeefcafeULL,
          {{"Square", "i32(i32)"}, {"Noop", "void()"}}};
  Hello out = RoundTrip(h);
  EXPECT_EQ(out.pid, 1234);
  EXPECT_EQ(out.fingerprint, 0xdeadbeefcafeULL);
  ASSERT_EQ(out.tasks.size(), 2u);
  EXPECT_EQ(out.tasks[1].name, "Noop");
  EXPECT_EQ(out.tasks[1].signature, "void()");
}

TEST(Wire, CallAndResultRoundTrip) {
  Call c{42, "Pow", {"a", "", std::string(1 << 20, 'x')}};
  Call out = RoundTrip(c);
  EXPECT_EQ(out.work_id, 42u);
  EXPECT_EQ(out.task, "Pow");
  EXPECT_EQ(out.args, c.args);

  Result r;
  r.work_id = 9;
  r.outcomes.push_back(Outcome{true, "value", {}});
  Outcome bad;
  bad.ok = false;
  bad.exception = {"std::invalid_argument", std::string("m\0sg", 4), "tb"};
  r.outcomes.push_back(bad);
  Result rout = RoundTrip(r);
  ASSERT_EQ(rout.outcomes.size(), 2u);
  EXPECT_TRUE(rout.outcomes[0].ok);
  EXPECT_EQ(rout.outcomes[0].value, "value");
  EXPECT_FALSE(rout.outcomes[1].ok);
  EXPECT_EQ(rout.outcomes[1].exception.type_name, "std::invalid_argument");
  EXPECT_EQ(rout.outcomes[1].exception.message, std::string("m\0sg", 4));
  EXPECT_EQ(rout.outcomes[1].exception.traceback, "tb");
}

TEST(Wire, DescriptorCountsRoundTrip) {
  Call c{3, "Sum", {"handle"}};
  EXPECT_EQ(RoundTrip(c).descriptors, 0u);
  c.descriptors = 2;
  EXPECT_EQ(RoundTrip(c).descriptors, 2u);
  std::string storage;
  Call big{4, "Sum", {std::string(1 << 20, 'z')}};
  big.descriptors = 5;
  std::string joined;
  for (absl::string_view part : EncodeMessageParts(big, &storage)) {
    joined.append(part.data(), part.size());
  }
  absl::StatusOr<Message> m = DecodeMessage(joined);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(std::get<Call>(*m).descriptors, 5u);
  Result r;
  r.work_id = 3;
  r.outcomes.push_back(Outcome{true, "v", {}});
  r.descriptors = 1;
  EXPECT_EQ(RoundTrip(r).descriptors, 1u);
}

TEST(Wire, HeldAndForgottenArraysRoundTrip) {
  Call c{3, "Sum", {"handle"}};
  c.descriptors = 1;
  c.held_arrays = {0, 2, 7};
  c.forget_arrays = {ArrayId{12, 3, 0xfeedface}, ArrayId{1, 2, 3}};
  const Call back = RoundTrip(c);
  EXPECT_EQ(back.descriptors, 1u);
  EXPECT_EQ(back.held_arrays, (std::vector<uint32_t>{0, 2, 7}));
  EXPECT_EQ(back.forget_arrays, c.forget_arrays);
  Result r;
  r.work_id = 3;
  r.outcomes.push_back(Outcome{true, "v", {}});
  r.held_arrays = {1};
  EXPECT_EQ(RoundTrip(r).held_arrays, (std::vector<uint32_t>{1}));
  r.output_writes = std::string("\x00\x10\x00\x01\x07\x00\x00", 7);
  EXPECT_EQ(RoundTrip(r).output_writes, r.output_writes);
  // Big enough to be referenced where it is, and packed values beside it.
  r.output_writes.assign(size_t{1} << 20, 'w');
  r.outcomes.clear();
  r.packed_values.bytes = "ab";
  r.packed_values.ends = {1, 2};
  const Result big = RoundTrip(r);
  EXPECT_EQ(big.output_writes, r.output_writes);
  EXPECT_EQ(big.size(), 2u);
  // Indices that do not increase are a corrupt frame.
  c.held_arrays = {2, 2};
  EXPECT_FALSE(DecodeMessage(EncodeMessage(c)).ok());
}

TEST(Wire, InitFailedAndShutdown) {
  InitFailed f{{"std::runtime_error", "boom", ""}};
  EXPECT_EQ(RoundTrip(f).exception.message, "boom");
  RoundTrip(Shutdown{});
  EXPECT_EQ(RoundTrip(Fatal{{"procpool::ProtocolError", "bad", ""}}).exception.message,
            "bad");
}

TEST(Wire, TextWithNulRoundTrips) {
  Call c{1, std::string("a\0b", 3), {"x"}};
  EXPECT_EQ(RoundTrip(c).task, std::string("a\0b", 3));
}

TEST(Wire, LargePayload) {
  Call c{1, "Echo", {std::string(300u << 20, 'y')}};
  Call out = RoundTrip(c);
  ASSERT_EQ(out.args.size(), 1u);
  EXPECT_EQ(out.args[0].size(), 300u << 20);
  absl::StatusOr<Message> owned = DecodeOwnedMessage(EncodeMessage(c));
  ASSERT_TRUE(owned.ok()) << owned.status();
  EXPECT_TRUE(std::get<Call>(*owned).args == c.args);
}

// Big blobs are referenced by the encoder (a segment each) and one of them
// takes over the frame in DecodeOwnedMessage; the rest are copied.
TEST(Wire, BigBlobsRoundTripBothWays) {
  auto blob = [](size_t n, char seed) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7);
    return s;
  };
  Result r;
  r.work_id = 3;
  r.outcomes.push_back(Outcome{true, blob((1 << 20) + 3, 'a'), {}});
  r.outcomes.push_back(Outcome{true, blob(20000, 'b'), {}});
  r.outcomes.push_back(Outcome{true, "small", {}});
  Outcome bad;
  bad.ok = false;
  bad.exception = {"E", blob((2 << 20) + 5, 'c'), blob(70000, 'd')};
  r.outcomes.push_back(bad);
  const std::string frame = EncodeMessage(r);
  EXPECT_EQ(EncodeMessage(Message(r)), frame);
  for (bool owned : {false, true}) {
    absl::StatusOr<Message> m =
        owned ? DecodeOwnedMessage(frame) : DecodeMessage(frame);
    ASSERT_TRUE(m.ok()) << m.status();
    const Result& out = std::get<Result>(*m);
    ASSERT_EQ(out.outcomes.size(), 4u);
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(out.outcomes[i].ok);
      EXPECT_TRUE(out.outcomes[i].value == r.outcomes[i].value) << i;
    }
    EXPECT_FALSE(out.outcomes[3].ok);
    EXPECT_TRUE(out.outcomes[3].exception.message == bad.exception.message);
    EXPECT_TRUE(out.outcomes[3].exception.traceback ==
                bad.exception.traceback);
  }
}

TEST(Wire, ResultPartsViewTheBigValues) {
  auto make = [](size_t spare) {
    Result r;
    r.work_id = 11;
    r.outcomes.push_back(Outcome{true, std::string(40000, 'p'), {}});
    std::string big;
    big.reserve((1 << 20) + 3 + spare);
    big.assign((1 << 20) + 3, 'q');
    r.outcomes.push_back(Outcome{true, std::move(big), {}});
    r.outcomes.push_back(Outcome{true, "tiny", {}});
    r.outcomes.push_back(Outcome{true, std::string(30000, 'r'), {}});
    Outcome bad;
    bad.ok = false;
    bad.exception = {"E", std::string(50000, 'm'), "tb"};
    r.outcomes.push_back(bad);
    return r;
  };
  const std::string expected = EncodeMessage(make(0));
  // The frame holds the other values too: ~121 KB besides the biggest.
  for (size_t spare : {size_t{0}, size_t{4096}, size_t{200000}}) {
    Result r = make(spare);
    const char* buffer = r.outcomes[1].value.data();
    std::string storage;
    std::vector<absl::string_view> parts = EncodeMessageParts(r, &storage);
    EXPECT_TRUE(absl::StrJoin(parts, "") == expected) << spare;
    // The biggest value is sent from where it is, not copied.
    bool viewed = false;
    for (absl::string_view p : parts) viewed = viewed || p.data() == buffer;
    EXPECT_TRUE(viewed);
    EXPECT_LT(storage.size(), size_t{200000});
  }
  absl::StatusOr<Message> m = DecodeOwnedMessage(expected);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(std::get<Result>(*m).outcomes[1].value,
            std::string((1 << 20) + 3, 'q'));
  std::string storage;
  EXPECT_EQ(absl::StrJoin(EncodeMessageParts(Result{3, {}}, &storage), ""),
            EncodeMessage(Result{3, {}}));
}

// Protocol 7: strings longer than one Data holds go as pieces (here 64 KiB
// pieces instead of ~512 MiB: SetPieceBytesForTesting), by every encoder and
// both decoders, with the small strings beside them untouched.
TEST(Wire, LongStringsGoAsPieces) {
  struct Restore {
    ~Restore() { SetPieceBytesForTesting(0); }
  } restore;
  SetPieceBytesForTesting(size_t{64} << 10);
  std::mt19937 rng(5);
  auto bytes = [&](size_t n) {
    std::string out(n, '\0');
    for (char& c : out) c = static_cast<char>(rng());
    return out;
  };
  Call c{21, "Long", {bytes(200000), "small", bytes(65536), bytes(65537)}};
  Result r;
  r.work_id = 21;
  r.outcomes.push_back(Outcome{true, bytes(300001), {}});
  r.outcomes.push_back(Outcome{false, "", {"E", "message", "tb"}});
  r.outcomes.push_back(Outcome{true, "v", {}});
  r.outcomes.push_back(Outcome{true, bytes(131072 + 8), {}});
  r.output_writes = bytes(150000);
  for (bool owned : {false, true}) {
    for (bool parts : {false, true}) {
      std::string call_frame, result_frame;
      if (parts) {
        std::string storage;
        call_frame = absl::StrJoin(EncodeMessageParts(c, &storage), "");
        std::string storage2;
        result_frame = absl::StrJoin(EncodeMessageParts(r, &storage2), "");
      } else {
        call_frame = EncodeMessage(c);
        result_frame = EncodeMessage(r);
      }
      absl::StatusOr<Message> call = owned ? DecodeOwnedMessage(call_frame)
                                           : DecodeMessage(call_frame);
      ASSERT_TRUE(call.ok()) << call.status();
      EXPECT_TRUE(std::get<Call>(*call).args == c.args) << owned << parts;
      absl::StatusOr<Message> result = owned
                                           ? DecodeOwnedMessage(result_frame)
                                           : DecodeMessage(result_frame);
      ASSERT_TRUE(result.ok()) << result.status();
      const Result& back = std::get<Result>(*result);
      ASSERT_EQ(back.outcomes.size(), 4u);
      EXPECT_TRUE(back.outcomes[0].value == r.outcomes[0].value);
      EXPECT_FALSE(back.outcomes[1].ok);
      EXPECT_EQ(back.outcomes[1].exception.message, "message");
      EXPECT_EQ(back.outcomes[2].value, "v");
      EXPECT_TRUE(back.outcomes[3].value == r.outcomes[3].value);
      EXPECT_TRUE(back.output_writes == r.output_writes);
    }
  }
}

TEST(Wire, ManyBigArgs) {
  Call c{7, "F", {}};
  for (int i = 0; i < 1500; ++i) c.args.push_back(std::string(17000 + i, 'a' + i % 26));
  absl::StatusOr<Message> m = DecodeOwnedMessage(EncodeMessage(c));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(std::get<Call>(*m).args == c.args);
}

TEST(Wire, OwnedLargeConfigInitializer) {
  Config c;
  c.initializer = CallSpec{"Init", std::string(1 << 20, 'z')};
  absl::StatusOr<Message> m = DecodeOwnedMessage(EncodeMessage(c));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(std::get<Config>(*m).initializer->args, c.initializer->args);
}

TEST(Wire, OwnedMisalignedAndCorruptFrames) {
  std::string frame = EncodeMessage(Call{1, "X", {std::string(1 << 17, 'q')}});
  std::string shifted = " " + frame;
  absl::StatusOr<Message> m = DecodeOwnedMessage(shifted.substr(1));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(std::get<Call>(*m).args[0], std::string(1 << 17, 'q'));
  std::mt19937 rng(99);
  for (int i = 0; i < 2000; ++i) {
    std::string mutated = frame;
    mutated[rng() % 64] = static_cast<char>(rng());
    absl::StatusOr<Message> d = DecodeOwnedMessage(mutated);
    if (!d.ok()) {
      EXPECT_TRUE(absl::IsDataLoss(d.status())) << d.status();
    }
  }
}

// Protocol 2: a Call or Result whose elements are all small travels packed
// (one blob and a list of ends).
TEST(Wire, PackedCallRoundTrips) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{1000}}) {
    Call c{5, "Sq", {}};
    for (size_t i = 0; i < n; ++i) c.args.push_back(std::string(i % 5, 'a' + i % 26));
    Call out = RoundTrip(c);
    EXPECT_EQ(out.work_id, 5u);
    EXPECT_EQ(out.task, "Sq");
    EXPECT_TRUE(out.args == c.args) << n;
    absl::StatusOr<Message> owned = DecodeOwnedMessage(EncodeMessage(c));
    ASSERT_TRUE(owned.ok()) << owned.status();
    EXPECT_TRUE(Unpacked(std::get<Call>(*owned)).args == c.args) << n;
  }
  // Packed: well under a Data pointer (8 bytes) per element.
  Call ones{1, "F", std::vector<std::string>(1000, "x")};
  EXPECT_LT(EncodeMessage(ones).size(), 6000u);
  Call empties{1, "F", std::vector<std::string>(1000, "")};
  EXPECT_TRUE(RoundTrip(empties).args == empties.args);
  // Small and big elements mixed: not packed, still equal.
  Call mixed{1, "F", {"a", std::string(20000, 'b'), ""}};
  EXPECT_TRUE(RoundTrip(mixed).args == mixed.args);
}

TEST(Wire, PackedResultRoundTrips) {
  auto failed = [](int i) {
    Outcome o;
    o.ok = false;
    o.exception = {"E" + std::to_string(i), std::string("m\0", 2) + std::to_string(i),
                   "tb" + std::to_string(i)};
    return o;
  };
  for (size_t n : {size_t{0}, size_t{1}, size_t{3}, size_t{1000}}) {
    for (int pattern = 0; pattern < 4; ++pattern) {
      Result r;
      r.work_id = 77;
      for (size_t i = 0; i < n; ++i) {
        bool bad = pattern == 1 ? i == 0
                 : pattern == 2 ? i % 3 == 1 || i + 1 == n
                 : pattern == 3;
        if (bad) {
          r.outcomes.push_back(failed(static_cast<int>(i)));
        } else {
          r.outcomes.push_back(Outcome{true, std::string(i % 4, 'v'), {}});
        }
      }
      const std::string frame = EncodeMessage(r);
      std::string storage;
      EXPECT_EQ(absl::StrJoin(EncodeMessageParts(r, &storage), ""), frame);
      for (bool owned : {false, true}) {
        absl::StatusOr<Message> m =
            owned ? DecodeOwnedMessage(frame) : DecodeMessage(frame);
        ASSERT_TRUE(m.ok()) << m.status();
        const Result out = Unpacked(std::get<Result>(*m));
        EXPECT_EQ(out.work_id, 77u);
        ASSERT_EQ(out.outcomes.size(), n);
        for (size_t i = 0; i < n; ++i) {
          const Outcome& a = r.outcomes[i];
          const Outcome& b = out.outcomes[i];
          ASSERT_EQ(a.ok, b.ok) << n << " " << pattern << " " << i;
          EXPECT_EQ(a.value, b.value);
          EXPECT_EQ(a.exception.type_name, b.exception.type_name);
          EXPECT_EQ(a.exception.message, b.exception.message);
          EXPECT_EQ(a.exception.traceback, b.exception.traceback);
        }
      }
    }
  }
}

// The packed forms of the structs (Call::packed_args, Result::packed_values):
// a packed frame decodes into them, and they encode as the other form does.
PackedElements Pack(const std::vector<std::string>& elements) {
  PackedElements p;
  for (const std::string& e : elements) p.Append(e);
  return p;
}

TEST(Wire, PackedFormsDecodeFromPackedFrames) {
  Call c{3, "Sq", {"ab", "", "c"}};
  Call out = RoundTrip(c, /*packed=*/true);
  EXPECT_TRUE(out.args.empty());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out.packed_args, Pack(c.args));
  Unpack(&out);
  EXPECT_EQ(out.args, c.args);
  EXPECT_TRUE(out.packed_args.empty());
  Unpack(&out);  // not packed: nothing to do
  EXPECT_EQ(out.args, c.args);

  // Not packed on the wire (a big element): one string each.
  Call mixed{1, "F", {"a", std::string(20000, 'b')}};
  Call mixed_out = RoundTrip(mixed, /*packed=*/true);
  EXPECT_EQ(mixed_out.args, mixed.args);
  EXPECT_TRUE(mixed_out.packed_args.empty());
}

TEST(Wire, PackedCallEncodesAsItsElements) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{300}}) {
    std::vector<std::string> elements;
    for (size_t i = 0; i < n; ++i) elements.push_back(std::string(i % 7, 'a' + i % 26));
    Call packed{11, "T", {}, Pack(elements)};
    EXPECT_EQ(packed.size(), n);
    // A big element among small ones still travels packed when the Call
    // was built packed (the producer chose to).
    if (n == 300) packed.packed_args.Append(std::string(20000, 'z'));
    Call out = RoundTrip(packed, /*packed=*/true);
    EXPECT_EQ(out.work_id, 11u);
    EXPECT_EQ(out.packed_args, packed.packed_args) << n;
    EXPECT_EQ(Unpacked(out).args, packed.packed_args.Unpack()) << n;
    // The same frame decodes the same whichever form it was built from.
    Call strings{11, "T", packed.packed_args.Unpack()};
    EXPECT_EQ(Unpacked(RoundTrip(strings, true)).args, Unpacked(out).args);
  }
}

TEST(Wire, PackedResultRoundTripsWithFailures) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{5}, size_t{1000}}) {
    Result r;
    r.work_id = 8;
    for (size_t i = 0; i < n; ++i) {
      if (i % 4 == 1) {
        r.packed_values.EndElement();
        r.failures.push_back(
            {static_cast<uint32_t>(i),
             {"E", std::string("m\0", 2) + std::to_string(i), "tb"}});
      } else {
        r.packed_values.Append(std::string(i % 3, 'v'));
      }
    }
    if (n == 5) r.packed_values.Append(std::string(30000, 'B'));  // big, last
    EXPECT_EQ(r.size(), n + (n == 5 ? 1 : 0));
    EXPECT_FALSE(HasExternalBlobs(r));  // copied into the frame whatever size
    const std::string frame = EncodeMessage(r);
    for (bool owned : {false, true}) {
      absl::StatusOr<Message> m =
          owned ? DecodeOwnedMessage(frame) : DecodeMessage(frame);
      ASSERT_TRUE(m.ok()) << m.status();
      const Result& out = std::get<Result>(*m);
      EXPECT_EQ(out.work_id, 8u);
      EXPECT_TRUE(out.outcomes.empty());
      EXPECT_EQ(out.packed_values, r.packed_values) << n;
      ASSERT_EQ(out.failures.size(), r.failures.size());
      for (size_t k = 0; k < r.failures.size(); ++k) {
        EXPECT_EQ(out.failures[k].index, r.failures[k].index);
        EXPECT_EQ(out.failures[k].exception.type_name, "E");
        EXPECT_EQ(out.failures[k].exception.message,
                  r.failures[k].exception.message);
        EXPECT_EQ(out.failures[k].exception.traceback, "tb");
      }
      // Unpacked: an Outcome per element, the failed ones in place.
      Result u = Unpacked(out);
      ASSERT_EQ(u.outcomes.size(), r.size());
      EXPECT_TRUE(u.packed_values.empty() && u.failures.empty());
      size_t k = 0;
      for (size_t i = 0; i < u.outcomes.size(); ++i) {
        if (k < r.failures.size() && r.failures[k].index == i) {
          EXPECT_FALSE(u.outcomes[i].ok) << i;
          EXPECT_EQ(u.outcomes[i].exception.message,
                    r.failures[k].exception.message);
          ++k;
        } else {
          EXPECT_TRUE(u.outcomes[i].ok) << i;
          EXPECT_EQ(u.outcomes[i].value, r.packed_values[i]) << i;
        }
      }
      // Encoded again from the Outcomes: the same message, packed on the
      // wire unless a value is big.
      Result again = RoundTrip(u, /*packed=*/true);
      if (n == 5) {
        EXPECT_EQ(again.outcomes.size(), u.outcomes.size());
        EXPECT_TRUE(again.packed_values.empty());
      } else {
        EXPECT_EQ(again.packed_values, out.packed_values) << n;
        EXPECT_EQ(again.failures.size(), out.failures.size());
      }
    }
  }
}

// Replaces the one run of little-endian uint32 `from` in `frame` by `to`.
void Patch(std::string* frame, const std::vector<uint32_t>& from,
           const std::vector<uint32_t>& to) {
  auto bytes = [](const std::vector<uint32_t>& v) {
    std::string s;
    for (uint32_t x : v) {
      for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>(x >> (8 * i)));
    }
    return s;
  };
  const std::string f = bytes(from), t = bytes(to);
  size_t at = frame->find(f);
  ASSERT_NE(at, std::string::npos);
  ASSERT_EQ(frame->find(f, at + 1), std::string::npos) << "ambiguous patch";
  frame->replace(at, t.size(), t);
}

void ExpectDataLoss(const std::string& frame, absl::string_view what) {
  for (bool owned : {false, true}) {
    absl::StatusOr<Message> m =
        owned ? DecodeOwnedMessage(frame) : DecodeMessage(frame);
    ASSERT_FALSE(m.ok()) << what;
    EXPECT_TRUE(absl::IsDataLoss(m.status())) << m.status();
    EXPECT_NE(m.status().message().find(what), absl::string_view::npos)
        << m.status();
  }
}

TEST(Wire, PackedCallWithCorruptEndsIsDataLoss) {
  const std::string frame =
      EncodeMessage(Call{1, "F", {std::string(77, 'a'), std::string(55, 'b')}});
  {
    std::string f = frame;
    Patch(&f, {77, 132}, {132, 77});
    ExpectDataLoss(f, "out of order");
  }
  {
    std::string f = frame;
    Patch(&f, {77, 132}, {77, 200});
    ExpectDataLoss(f, "past its blob");
  }
  {
    std::string f = frame;
    Patch(&f, {77, 132}, {77, 100});
    ExpectDataLoss(f, "longer than its elements");
  }
}

// A frame whose pieces lie is refused, not read: a tail for an element the
// call does not have.
TEST(Wire, ATailForNoElementIsDataLoss) {
  struct Restore {
    ~Restore() { SetPieceBytesForTesting(0); }
  } restore;
  SetPieceBytesForTesting(size_t{64} << 10);
  // The long element's index (0x2222) is the word the patch finds.
  Call c{1, "F", std::vector<std::string>(0x2222, "x")};
  c.args.push_back(std::string(100000, 'L'));
  std::string frame = EncodeMessage(c);
  ASSERT_TRUE(DecodeMessage(frame).ok());
  Patch(&frame, {0x2222, 0}, {0x3333, 0});
  ExpectDataLoss(frame, "a tail for no element");
}

TEST(Wire, PackedResultWithCorruptEndsOrFailuresIsDataLoss) {
  // 300 elements with empty values: every end is 0, the failures' indexes
  // (0x111 and 0x123) are the only such words in the frame.
  Result r;
  r.work_id = 2;
  r.outcomes.resize(300);
  r.outcomes[0x111].ok = false;
  r.outcomes[0x111].exception = {"E", "m", "t"};
  r.outcomes[0x123].ok = false;
  r.outcomes[0x123].exception = {"E", "m", "t"};
  const std::string frame = EncodeMessage(r);
  ASSERT_TRUE(DecodeMessage(frame).ok());
  {
    std::string f = frame;
    Patch(&f, {0x123, 0}, {300, 0});  // index == count
    ExpectDataLoss(f, "past the elements");
  }
  {
    std::string f = frame;
    Patch(&f, {0x123, 0}, {0x110, 0});  // before the previous one
    ExpectDataLoss(f, "out of order");
  }
  {
    std::string f = frame;
    Patch(&f, {0x111, 0}, {0x123, 0});  // the same index twice
    ExpectDataLoss(f, "out of order");
  }
  // A failed element with a value; ends that run past the (empty) blob.
  Result v;
  v.work_id = 2;
  v.outcomes.push_back(Outcome{true, std::string(0x51, 'x'), {}});
  Outcome bad;
  bad.ok = false;
  bad.exception = {"E", "m", "t"};
  v.outcomes.push_back(bad);
  v.outcomes.push_back(Outcome{true, std::string(0x22, 'y'), {}});
  const std::string vf = EncodeMessage(v);
  {
    std::string f = vf;
    Patch(&f, {0x51, 0x51, 0x73}, {0x50, 0x51, 0x73});
    ExpectDataLoss(f, "failed element has a value");
  }
  {
    std::string f = vf;
    Patch(&f, {0x51, 0x51, 0x73}, {0x51, 0x51, 0x74});
    ExpectDataLoss(f, "past its blob");
  }
}

TEST(Wire, EveryTruncationIsAnError) {
  Call c{42, "Pow", {"abc", "defgh"}};
  std::string frame = EncodeMessage(c);
  for (size_t n = 0; n < frame.size(); ++n) {
    absl::StatusOr<Message> m = DecodeMessage(absl::string_view(frame).substr(0, n));
    EXPECT_FALSE(m.ok()) << "prefix of " << n << " bytes decoded";
  }
}

TEST(Wire, RandomCorruptionNeverCrashes) {
  Result r;
  r.work_id = 5;
  r.outcomes.push_back(Outcome{true, "vvvvvvvv", {}});
  Outcome bad;
  bad.ok = false;
  bad.exception = {"T", "msg", "tb"};
  r.outcomes.push_back(bad);
  const std::string frame = EncodeMessage(r);
  std::mt19937 rng(1234);
  int errors = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string mutated = frame;
    int flips = 1 + rng() % 4;
    for (int f = 0; f < flips; ++f) {
      mutated[rng() % mutated.size()] = static_cast<char>(rng());
    }
    absl::StatusOr<Message> m = DecodeMessage(mutated);
    if (!m.ok()) {
      ++errors;
      EXPECT_TRUE(absl::IsDataLoss(m.status())) << m.status();
    }
  }
  EXPECT_GT(errors, 0);
}

}  // namespace
}  // namespace wire
}  // namespace procpool
