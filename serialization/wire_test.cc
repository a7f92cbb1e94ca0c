#include "serialization/wire.h"

#include <random>

#include "gtest/gtest.h"

namespace procpool {
namespace wire {
namespace {

template <typename T>
T RoundTrip(const T& in) {
  std::string frame = EncodeMessage(in);
  absl::StatusOr<Message> out = DecodeMessage(frame);
  EXPECT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(std::holds_alternative<T>(*out)) << MessageKind(*out);
  return std::get<T>(*out);
}

TEST(Wire, ConfigRoundTrip) {
  Config c;
  c.max_tasks = 3;
  c.initializer = CallSpec{"Init", std::string("\0\1\2", 3)};
  Config out = RoundTrip(c);
  EXPECT_EQ(out.protocol_version, kProtocolVersion);
  EXPECT_EQ(out.max_tasks, 3);
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

TEST(Wire, OwnedResultIsBuiltInTheBiggestValue) {
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
    std::string frame = EncodeOwnedMessage(std::move(r));
    EXPECT_TRUE(frame == expected) << spare;
    if (spare == 200000) {
      EXPECT_EQ(frame.data(), buffer);
    } else {
      EXPECT_NE(frame.data(), buffer);
    }
  }
  absl::StatusOr<Message> m = DecodeOwnedMessage(expected);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(std::get<Result>(*m).outcomes[1].value,
            std::string((1 << 20) + 3, 'q'));
  EXPECT_EQ(EncodeOwnedMessage(Result{3, {}}), EncodeMessage(Result{3, {}}));
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

TEST(Wire, EmptyAndOddSizesAreErrors) {
  EXPECT_TRUE(absl::IsDataLoss(DecodeMessage("").status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeMessage("abc").status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeMessage(std::string(8, '\xff')).status()));
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

TEST(Wire, MisalignedInputIsCopied) {
  std::string frame = EncodeMessage(Call{1, "X", {"a"}});
  std::string shifted = " " + frame;
  absl::StatusOr<Message> m = DecodeMessage(absl::string_view(shifted).substr(1));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(std::get<Call>(*m).task, "X");
}

}  // namespace
}  // namespace wire
}  // namespace procpool
