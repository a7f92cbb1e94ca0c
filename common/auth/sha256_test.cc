#include "common/auth/sha256.h"

#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace procpool {
namespace auth {
namespace {

std::string Hex(absl::string_view digest) {
  return absl::BytesToHexString(digest);
}

// FIPS 180-4's examples (NIST "Examples with intermediate values", SHA-256).
TEST(Sha256Test, FipsExamples) {
  EXPECT_EQ(Hex(Sha256::Hash("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(Sha256::Hash("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex(Sha256::Hash(
                "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Hex(Sha256::Hash("abcdefghbcdefghicdefghijdefghijkefghijklfghijklm"
                             "ghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                             "mnopqrstnopqrstu")),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  EXPECT_EQ(Hex(Sha256::Hash(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Lengths around the padding boundaries (55/56 bytes: the length fits in the
// last block or not; 64: a whole block), checked against Python's hashlib.
TEST(Sha256Test, PaddingBoundaries) {
  const struct {
    size_t size;
    const char* digest;
  } kCases[] = {
      {55, "576a1bf8d4478657e6dc4af9398544765c2a92cde28478b019235cfed315fc09"},
      {56, "9b20501dfd1d99161c257950f3444f3e49230c351c5c8e0943ef369f85f5205d"},
      {63, "30b345906b493f06f69444b6521113511c242f30e29840462950035043682f1e"},
      {64, "d8bc63b4fc1156e5e7d95a418b9bf54cd3174bedbc2db40f74895349b229b3c0"},
      {65, "1ee23b0fbcaecc1aff4a9e8f1645f35ab2c8e13609cd73b68df8b5e3f63ce073"},
      {119, "7a6589821178918ca8d9edaba5abfc1e9b2669564f4469b66885379c1530b2c8"},
      {120, "655250427d56b1b0eeb8497d21428704273458a01772d6881b65c0abac0f8a98"},
      {128, "54c9eb041badfd7064645067b107661fed6113197ce2dd066ba69618abd3732f"},
  };
  for (const auto& c : kCases) {
    std::string message;
    for (size_t i = 0; i < c.size; ++i) {
      message.push_back(static_cast<char>((i * 7) & 0xff));
    }
    EXPECT_EQ(Hex(Sha256::Hash(message)), c.digest) << c.size << " bytes";
  }
}

TEST(Sha256Test, UpdateInPiecesEqualsOneShot) {
  std::string message;
  for (int i = 0; i < 1000; ++i) message.push_back(static_cast<char>(i * 31));
  const std::string expected = Sha256::Hash(message);
  for (size_t piece : {1, 3, 63, 64, 65, 200}) {
    Sha256 h;
    for (size_t offset = 0; offset < message.size(); offset += piece) {
      h.Update(absl::string_view(message).substr(offset, piece));
    }
    EXPECT_EQ(h.Finish(), expected) << "pieces of " << piece;
  }
}

TEST(Sha256Test, FinishResetsForTheNextMessage) {
  Sha256 h;
  h.Update("something else");
  h.Finish();
  h.Update("abc");
  EXPECT_EQ(Hex(h.Finish()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace auth
}  // namespace procpool
