#include "shared_array/shared_array_codec.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/unique_fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "serialization/codec.h"
#include "shared_array/mapping_cache.h"
#include "shared_array/test_util.h"
#include "shared_array/transfer.h"

namespace procpool {
namespace {

using shared_array_testing::ArrayMappingCount;
using shared_array_testing::FdCount;
using ::testing::HasSubstr;

SharedArray<double> Iota(size_t n,
                         SharedArrayMode mode = SharedArrayMode::kImmutable) {
  SharedArray<double> a(n, mode);
  for (size_t i = 0; i < n; ++i) a[i] = 0.5 * i;
  return a;
}

// What a channel does with the outgoing descriptors: the receiver gets
// duplicates.
std::vector<UniqueFd> Duplicates(const ArrayTransfer& sent) {
  std::vector<UniqueFd> fds;
  for (int fd : sent.OutgoingFds()) fds.emplace_back(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  return fds;
}

TEST(SharedArrayCodec, Signature) {
  EXPECT_EQ(TypeSignature<SharedArray<double>>(), "shared_array<f64>");
  EXPECT_EQ(TypeSignature<SharedBytes>(), "shared_array<u8>");
  EXPECT_EQ(TypeSignature<std::vector<SharedArray<int32_t>>>(),
            "vector<shared_array<i32>>");
}

TEST(SharedArrayCodec, ByValueWithoutATransfer) {
  const int fds = FdCount();
  {
    const SharedArray<double> a = Iota(1000);
    const std::string bytes = EncodeValue(a);
    EXPECT_EQ(bytes.size(), 1 + 1 + 2 + 1000 * sizeof(double));
    EXPECT_TRUE(a.writable()) << "by value does not seal";
    absl::StatusOr<SharedArray<double>> back =
        DecodeValue<SharedArray<double>>(bytes);
    ASSERT_TRUE(back.ok()) << back.status();
    ASSERT_EQ(back->size(), 1000u);
    EXPECT_NE(back->data(), a.data());
    EXPECT_FALSE(back->buffer().id() == a.buffer().id());
    for (size_t i = 0; i < 1000; ++i) ASSERT_EQ((*back)[i], 0.5 * i);
    EXPECT_EQ(back->mode(), SharedArrayMode::kImmutable);

    absl::StatusOr<SharedArray<double>> out = DecodeValue<SharedArray<double>>(
        EncodeValue(Iota(3, SharedArrayMode::kOutput)));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->mode(), SharedArrayMode::kOutput);
  }
  EXPECT_EQ(FdCount(), fds);
  EXPECT_EQ(ArrayMappingCount(), 0);
}

TEST(SharedArrayCodec, EmptyArrays) {
  absl::StatusOr<SharedArray<double>> none =
      DecodeValue<SharedArray<double>>(EncodeValue(SharedArray<double>()));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->buffer());
  absl::StatusOr<SharedArray<double>> zero =
      DecodeValue<SharedArray<double>>(EncodeValue(SharedArray<double>(0)));
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_TRUE(zero->buffer());
  EXPECT_EQ(zero->size(), 0u);
}

TEST(SharedArrayCodec, ByReferenceSharesTheMemoryAndSendsEachBufferOnce) {
  const int fds = FdCount();
  {
    const SharedArray<double> a = Iota(1 << 16);
    const SharedArray<double> b = Iota(8);
    ArrayTransfer sent(ArrayTransfer::Way::kByReference);
    std::string bytes;
    {
      ArrayTransferScope scope(&sent);
      bytes = EncodeValue(std::make_tuple(a, b, a));
    }
    EXPECT_LT(bytes.size(), 300u) << "the elements do not travel";
    EXPECT_EQ(sent.outgoing_count(), 2u) << "a twice goes once";
    EXPECT_FALSE(a.writable()) << "sending seals an immutable array";

    MappingCache cache;
    ArrayTransfer received(ArrayTransfer::Way::kByReference);
    received.SetIncoming(Duplicates(sent), {}, &cache);
    ArrayTransferScope scope(&received);
    auto back = DecodeValue<std::tuple<SharedArray<double>, SharedArray<double>,
                                       SharedArray<double>>>(bytes);
    ASSERT_TRUE(back.ok()) << back.status();
    const auto& [a1, b1, a2] = *back;
    EXPECT_TRUE(a1.buffer().id() == a.buffer().id());
    EXPECT_TRUE(a2.buffer().id() == a.buffer().id());
    EXPECT_EQ(a1.data(), a2.data()) << "mapped once";
    ASSERT_EQ(a1.size(), a.size());
    EXPECT_EQ(a1[12345], 0.5 * 12345);
    EXPECT_EQ(b1[7], 3.5);
    EXPECT_EQ(cache.entries(), 2u);
  }
  EXPECT_EQ(FdCount(), fds);
  EXPECT_EQ(ArrayMappingCount(), 0);
}

// Descriptors of `sent`'s arrays other than those at `held` (what the pool
// sends when the receiver holds those already).
std::vector<UniqueFd> DuplicatesBut(const ArrayTransfer& sent,
                                    const std::vector<uint32_t>& held) {
  std::vector<UniqueFd> all = Duplicates(sent), fds;
  for (size_t i = 0; i < all.size(); ++i) {
    if (!std::binary_search(held.begin(), held.end(), i)) {
      fds.push_back(std::move(all[i]));
    }
  }
  return fds;
}

TEST(SharedArrayCodec, HeldArraysComeWithoutADescriptorAndGoBackSo) {
  const SharedArray<double> a = Iota(100), b = Iota(200);
  MappingCache cache;
  // First frame: a with its descriptor; the receiver caches it.
  {
    ArrayTransfer sent(ArrayTransfer::Way::kByReference);
    std::string bytes;
    {
      ArrayTransferScope scope(&sent);
      bytes = EncodeValue(a);
    }
    ArrayTransfer received(ArrayTransfer::Way::kByReference);
    received.SetIncoming(Duplicates(sent), {}, &cache);
    ArrayTransferScope scope(&received);
    ASSERT_TRUE(DecodeValue<SharedArray<double>>(bytes).ok());
  }
  ASSERT_EQ(cache.attached(), 1u);
  // Second frame (b, a): a (index 1) held, only b's descriptor comes.
  ArrayTransfer sent(ArrayTransfer::Way::kByReference);
  std::string bytes;
  {
    ArrayTransferScope scope(&sent);
    bytes = EncodeValue(std::make_tuple(b, a));
  }
  ArrayTransfer received(ArrayTransfer::Way::kByReference);
  received.SetIncoming(DuplicatesBut(sent, {1}), {1}, &cache);
  std::string answer;
  {
    ArrayTransferScope scope(&received);
    auto back =
        DecodeValue<std::tuple<SharedArray<double>, SharedArray<double>>>(
            bytes);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(std::get<0>(*back)[199], 0.5 * 199);
    EXPECT_EQ(std::get<1>(*back)[99], 0.5 * 99);
    EXPECT_EQ(cache.attached(), 2u);
    // The answer: a new array and a, which came in this frame: a goes back
    // as held (the sender holds what it sent until the answer is read).
    SharedArray<double> fresh = Iota(5);
    answer = EncodeValue(std::make_tuple(fresh, std::get<1>(*back)));
  }
  EXPECT_EQ(received.outgoing_count(), 2u);
  EXPECT_EQ(received.held_outgoing(), (std::vector<uint32_t>{1}));
  EXPECT_EQ(received.OutgoingFds().size(), 1u);
  // The sender reads it: a is its own, found without a descriptor.
  ArrayTransfer back(ArrayTransfer::Way::kByReference);
  back.SetIncoming(DuplicatesBut(received, {1}), {1}, nullptr);
  ArrayTransferScope scope(&back);
  auto values =
      DecodeValue<std::tuple<SharedArray<double>, SharedArray<double>>>(answer);
  ASSERT_TRUE(values.ok()) << values.status();
  // (In one process the cache's mapping of a is the live one it finds.)
  EXPECT_TRUE(std::get<1>(*values).buffer().id() == a.buffer().id());
  EXPECT_EQ(std::get<1>(*values)[99], 0.5 * 99);
  EXPECT_EQ(std::get<0>(*values)[4], 2.0);
}

TEST(SharedArrayCodec, AHeldArrayTheReceiverDoesNotHoldFailsThatValue) {
  const SharedArray<double> a = Iota(10);
  ArrayTransfer sent(ArrayTransfer::Way::kByReference);
  std::string bytes;
  {
    ArrayTransferScope scope(&sent);
    bytes = EncodeValue(a);
  }
  MappingCache cache;  // empty: the frame lies
  ArrayTransfer received(ArrayTransfer::Way::kByReference);
  received.SetIncoming({}, {0}, &cache);
  ArrayTransferScope scope(&received);
  absl::StatusOr<SharedArray<double>> back =
      DecodeValue<SharedArray<double>>(bytes);
  ASSERT_FALSE(back.ok());
  const absl::Status noted = received.TakeArrayError();
  EXPECT_EQ(noted.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(noted.message()),
              HasSubstr("came without its descriptor"));
}

TEST(SharedArrayCodec, AnOutputArrayIsWritableThroughTheReceiversMapping) {
  SharedArray<int32_t> out(4, SharedArrayMode::kOutput);
  ArrayTransfer sent(ArrayTransfer::Way::kByReference);
  std::string bytes;
  {
    ArrayTransferScope scope(&sent);
    bytes = EncodeValue(out);
  }
  ArrayTransfer received(ArrayTransfer::Way::kByReference);
  received.SetIncoming(Duplicates(sent), {}, nullptr);
  ArrayTransferScope scope(&received);
  absl::StatusOr<SharedArray<int32_t>> back =
      DecodeValue<SharedArray<int32_t>>(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  (*back)[2] = 42;
  EXPECT_EQ(out[2], 42);
  EXPECT_TRUE(out.writable());
}

TEST(SharedArrayCodec, BadInputFailsWithAClearError) {
  const SharedArray<double> a = Iota(4);
  ArrayTransfer sent(ArrayTransfer::Way::kByReference);
  std::string bytes;
  {
    ArrayTransferScope scope(&sent);
    bytes = EncodeValue(a);
  }
  // No descriptors came: none in scope, or fewer than named.
  absl::StatusOr<SharedArray<double>> none =
      DecodeValue<SharedArray<double>>(bytes);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(none.status().message()),
              HasSubstr("no descriptors came"));
  {
    ArrayTransfer received(ArrayTransfer::Way::kByReference);
    received.SetIncoming({}, {}, nullptr);
    ArrayTransferScope scope(&received);
    absl::StatusOr<SharedArray<double>> missing =
        DecodeValue<SharedArray<double>>(bytes);
    EXPECT_EQ(missing.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(missing.status().message()),
                HasSubstr("needs descriptor 0, but 0 came"));
  }
  {
    // Another element type.
    ArrayTransfer received(ArrayTransfer::Way::kByReference);
    received.SetIncoming(Duplicates(sent), {}, nullptr);
    ArrayTransferScope scope(&received);
    absl::StatusOr<SharedArray<int64_t>> other =
        DecodeValue<SharedArray<int64_t>>(bytes);
    EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(other.status().message()), HasSubstr("f64"));
  }
  {
    // A descriptor that is not this array's memfd, to a receiver that maps
    // what comes (a worker, through its cache; a parent would find `a`
    // itself, live here: FindLive).
    const SharedArray<double> c = Iota(4);
    ASSERT_TRUE(c.Seal().ok());
    MappingCache cache;
    ArrayTransfer received(ArrayTransfer::Way::kByReference);
    std::vector<UniqueFd> wrong;
    wrong.emplace_back(fcntl(c.buffer().fd(), F_DUPFD_CLOEXEC, 0));
    received.SetIncoming(std::move(wrong), {}, &cache);
    ArrayTransferScope scope(&received);
    EXPECT_FALSE(DecodeValue<SharedArray<double>>(bytes).ok());
  }
  {
    // Without a cache (the parent), an array held here is that array,
    // whatever descriptor came with it.
    ArrayTransfer received(ArrayTransfer::Way::kByReference);
    received.SetIncoming(Duplicates(sent), {}, nullptr);
    ArrayTransferScope scope(&received);
    absl::StatusOr<SharedArray<double>> same =
        DecodeValue<SharedArray<double>>(bytes);
    ASSERT_TRUE(same.ok()) << same.status();
    EXPECT_EQ(same->data(), a.data());
  }
  // By value: a count the bytes cannot hold, a bad tag, a bad mode.
  std::string huge("\x02\x00\xff\xff\xff\xff\x0f", 7);
  EXPECT_EQ(DecodeValue<SharedArray<double>>(huge).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeValue<SharedArray<double>>(std::string("\x07", 1))
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeValue<SharedArray<double>>(std::string("\x02\x09\x00", 3))
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace procpool
