// The value types the codec fuzzer decodes, and sample values of each (which
// seed the corpus and are reused as non-empty decode targets).
//
// The first byte of a fuzz input picks the type (byte % kNumTypes); the rest
// is that type's encoding. The types nest the standard codecs (tuple, vector,
// map, unordered_map, set, optional, variant, pair, array, vector<bool>,
// monostate, tuple<>) and a recursive user type, so that the count checks, the
// empty-element budget and the nesting limit of codec.h are all exercised.
//
// Example:
//   std::string input = std::string(1, char{kNestedIndex}) +
//                       procpool::EncodeValue(Nested{...});
#ifndef PROCPOOL_FUZZ_CODEC_FUZZ_TYPES_H_
#define PROCPOOL_FUZZ_CODEC_FUZZ_TYPES_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "serialization/codec.h"

namespace procpool {
namespace fuzz {

// A recursive user type with ADL codec functions (way (b) of codec.h): its
// children go through vector<Tree>, so the depth limit applies.
struct Tree {
  std::string label;
  std::vector<Tree> kids;
};
inline void ProcpoolEncode(Writer& w, const Tree& t) {
  WriteValue(w, t.label);
  WriteValue(w, t.kids);
}
inline absl::Status ProcpoolDecode(Reader& r, Tree* t) {
  RETURN_IF_ERROR(ReadValue(r, &t->label));
  return ReadValue(r, &t->kids);
}
inline std::string ProcpoolSignature(const Tree*) { return "fuzz.Tree"; }

using Nested = std::tuple<int32_t, std::string,
                          std::vector<std::map<std::string,
                                               std::optional<double>>>>;
using Choice =
    std::variant<std::monostate, int64_t, std::string, std::vector<bool>,
                 std::pair<uint8_t, std::array<int16_t, 2>>, std::tuple<>>;
using Bits = std::vector<bool>;
// No floating point inside (see kCompareEncodings).
using Table = std::unordered_map<
    std::string, std::vector<std::variant<bool, int32_t, std::string>>>;
using Empties = std::vector<std::tuple<>>;
using Mixed =
    std::tuple<std::array<std::optional<std::string>, 3>, std::vector<double>,
               std::vector<uint64_t>, std::set<int16_t>, char, bool>;
using Forest = std::vector<Tree>;

// The fuzzed types, in the order of the selector byte.
using FuzzTypes =
    std::tuple<Nested, Choice, Bits, Table, Empties, Mixed, Forest>;
inline constexpr size_t kNumTypes = std::tuple_size<FuzzTypes>::value;

// Whether every decodable input of the type is the one encoding of its value,
// so that re-encoding gives back the input byte for byte. Not so for maps and
// sets (the decoder accepts keys in any order; std::map re-encodes them sorted
// and unordered_map in its own order).
template <typename T>
inline constexpr bool kCanonical = true;
template <>
inline constexpr bool kCanonical<Nested> = false;
template <>
inline constexpr bool kCanonical<Table> = false;
template <>
inline constexpr bool kCanonical<Mixed> = false;

// Whether two values of T are compared through their encodings (which makes
// NaN equal to itself) rather than with ==. Not for unordered containers,
// whose encoding follows their iteration order (which depends on their
// history); such a type must not hold floating point.
template <typename T>
inline constexpr bool kCompareEncodings = true;
template <>
inline constexpr bool kCompareEncodings<Table> = false;

// A few values of T; the first is also the non-empty target that
// DecodeValueInto overwrites.
template <typename T>
std::vector<T> Samples();

template <>
inline std::vector<Nested> Samples<Nested>() {
  return {Nested{-7,
                 "abc",
                 {{{"x", 1.5}, {"y", std::nullopt}},
                  {},
                  {{"", -0.0}, {"nan", std::numeric_limits<double>::quiet_NaN()}}}},
          Nested{}};
}
template <>
inline std::vector<Choice> Samples<Choice>() {
  return {Choice{std::vector<bool>{true, false, true, true, false, false,
                                   false, false, true}},
          Choice{}, Choice{int64_t{-1}}, Choice{std::string("text")},
          Choice{std::pair<uint8_t, std::array<int16_t, 2>>{7, {{-2, 300}}}},
          Choice{std::tuple<>()}};
}
template <>
inline std::vector<Bits> Samples<Bits>() {
  return {Bits{true, true, false, true, false, true, true, true, false, true},
          Bits{}, Bits(16, true)};
}
template <>
inline std::vector<Table> Samples<Table>() {
  return {Table{{"a", {true, int32_t{-5}, std::string("s")}}, {"b", {}}}, Table{}};
}
template <>
inline std::vector<Empties> Samples<Empties>() {
  return {Empties(5), Empties{}};
}
template <>
inline std::vector<Mixed> Samples<Mixed>() {
  return {Mixed{{{std::string("one"), std::nullopt, std::string()}},
                {0.25, -1e300},
                {1, 2, std::numeric_limits<uint64_t>::max()},
                {-3, 0, 9},
                'z',
                true},
          Mixed{}};
}
template <>
inline std::vector<Forest> Samples<Forest>() {
  Tree leaf{"leaf", {}};
  Tree mid{"mid", {leaf, leaf}};
  return {Forest{Tree{"root", {mid, leaf}}, leaf}, Forest{}};
}

}  // namespace fuzz
}  // namespace procpool

#endif  // PROCPOOL_FUZZ_CODEC_FUZZ_TYPES_H_
