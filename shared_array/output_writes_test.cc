#include "shared_array/output_writes.h"

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "shared_array/shared_array.h"

namespace procpool {
namespace {

std::string Bytes(const SharedArray<uint8_t>& a) {
  return std::string(reinterpret_cast<const char*>(a.data()), a.size());
}

SharedArray<uint8_t> Output(size_t n) {
  return SharedArray<uint8_t>(n, SharedArrayMode::kOutput);
}

TEST(OutputWritesTest, NothingChangedIsNothing) {
  SharedArray<uint8_t> copy = Output(1000);
  OutputWrites writes;
  writes.AddChanges(0, Bytes(copy), copy.data());
  EXPECT_TRUE(writes.empty());
  EXPECT_EQ(writes.Release(), "");
}

// Two tasks write interleaved elements (even and odd doubles) of one array,
// each into its own copy: each copy's changes leave the other's alone.
TEST(OutputWritesTest, InterleavedSlicesOfTwoCopiesBothLand) {
  const size_t n = 1001;
  SharedArray<double> target(n, SharedArrayMode::kOutput);
  std::vector<SharedArray<double>> copies;
  std::vector<std::string> originals;
  for (int task = 0; task < 2; ++task) {
    SharedArray<double> copy(n, SharedArrayMode::kOutput);
    originals.emplace_back(reinterpret_cast<const char*>(copy.data()),
                           n * sizeof(double));
    for (size_t j = task; j < n; j += 2) copy[j] = 2.0 * j + 0.25;
    copies.push_back(std::move(copy));
  }
  for (int task = 0; task < 2; ++task) {
    OutputWrites writes;
    writes.AddChanges(0, originals[task], copies[task].data());
    ASSERT_TRUE(OutputWrites::Apply(writes.Release(), {target.buffer()}).ok());
  }
  for (size_t j = 0; j < n; ++j) ASSERT_EQ(target[j], 2.0 * j + 0.25) << j;
}

// Random changes of random lengths over random contents: exactly the bytes
// that differ land; every other byte of the target keeps its own value.
TEST(OutputWritesTest, ExactlyTheChangedBytesLand) {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    const size_t n = rng() % 3000;
    std::string before(n, '\0'), now;
    for (char& c : before) c = static_cast<char>(rng() % 4);
    now = before;
    const int changes = static_cast<int>(rng() % 20);
    for (int k = 0; k < changes && n > 0; ++k) {
      const size_t at = rng() % n;
      const size_t len = std::min<size_t>(n - at, rng() % 100);
      for (size_t i = at; i < at + len; ++i) now[i] = static_cast<char>(rng() % 4);
    }
    SharedArray<uint8_t> target = Output(n);
    for (size_t i = 0; i < n; ++i) target[i] = static_cast<uint8_t>(100 + rng() % 4);
    const std::string target_before = Bytes(target);
    OutputWrites writes;
    writes.AddChanges(3, before, now.data());
    std::vector<SharedBuffer> targets(4);
    targets[3] = target.buffer();
    ASSERT_TRUE(OutputWrites::Apply(writes.Release(), targets).ok()) << round;
    for (size_t i = 0; i < n; ++i) {
      const uint8_t want = now[i] != before[i]
                               ? static_cast<uint8_t>(now[i])
                               : static_cast<uint8_t>(target_before[i]);
      ASSERT_EQ(target[i], want) << "round " << round << " byte " << i;
    }
  }
}

TEST(OutputWritesTest, SeveralArraysByIndex) {
  SharedArray<uint8_t> a = Output(10), b = Output(20);
  const std::string zeros_a(10, '\0'), zeros_b(20, '\0');
  std::string now_a = zeros_a, now_b = zeros_b;
  now_a[9] = 1;
  now_b[0] = 2;
  OutputWrites writes;
  writes.AddChanges(1, zeros_a, now_a.data());
  writes.AddChanges(0, zeros_b, now_b.data());
  ASSERT_TRUE(OutputWrites::Apply(writes.Release(), {b.buffer(), a.buffer()}).ok());
  EXPECT_EQ(a[9], 1);
  EXPECT_EQ(b[0], 2);
}

// Lies are refused whole: nothing is written, not even the good part before
// the lie.
TEST(OutputWritesTest, MalformedWritesAreRefusedAndWriteNothing) {
  SharedArray<uint8_t> target = Output(16);
  const std::string zeros(16, '\0');
  std::string now = zeros;
  now[0] = 9;
  OutputWrites good;
  good.AddChanges(0, zeros, now.data());
  const std::string valid = good.Release();
  auto refused = [&](const std::string& writes,
                     std::vector<SharedBuffer> targets) {
    const absl::Status s = OutputWrites::Apply(writes, targets);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_EQ(target[0], 0) << "written before the lie was found";
  };
  // index 1 of one target
  refused(valid + std::string("\x01\x10\x00\x01\x07\x00\x00", 7), {target.buffer()});
  // another size
  refused(valid + std::string("\x00\x11\x00\x01\x07\x00\x00", 7), {target.buffer()});
  // a run past the end
  refused(valid + std::string("\x00\x10\x0f\x02\x07\x07\x00\x00", 8), {target.buffer()});
  // truncated
  refused(valid.substr(0, valid.size() - 1), {target.buffer()});
  refused(valid + std::string("\x00\x10\x00\x05\x07", 5), {target.buffer()});
  // a run of no bytes that skips
  refused(valid + std::string("\x00\x10\x03\x00", 4), {target.buffer()});
  // no targets at all
  refused(valid, {});
  // a target this process may not write (sealed)
  SharedArray<uint8_t> sealed(16);
  ASSERT_TRUE(sealed.buffer().Seal().ok());
  EXPECT_EQ(OutputWrites::Apply(valid, {sealed.buffer()}).code(),
            absl::StatusCode::kDataLoss);
  // and the valid one lands
  ASSERT_TRUE(OutputWrites::Apply(valid, {target.buffer()}).ok());
  EXPECT_EQ(target[0], 9);
}

}  // namespace
}  // namespace procpool
