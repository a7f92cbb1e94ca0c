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
