// PackedElements: a list of small byte strings kept in one buffer.
//
// The elements of a Map chunk (its encoded argument tuples, or its encoded
// values) are a few bytes each. Kept as one std::string per element they cost
// a string, its moves and its copies per element at every step between
// Source::Next and MapResults; kept here they cost one append going in and a
// view coming out. It is also protocol 2's packed layout on the wire (one Data
// blob and a List(UInt32) of ends, serialization/wire.h), so a packed Call or
// Result is encoded and decoded with one copy of the blob.
//
// Example:
//   PackedElements p;
//   p.Append("ab");
//   p.Append("");
//   p.size();  // 2
//   p[0];      // "ab"
//
// Thread safety: none (a value type).
#ifndef PROCPOOL_SERIALIZATION_PACKED_H_
#define PROCPOOL_SERIALIZATION_PACKED_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace procpool {

struct PackedElements {
  // The elements' bytes, one after the other.
  std::string bytes;
  // One per element: where its bytes end in `bytes` (non-decreasing; the
  // last one is bytes.size()).
  std::vector<uint32_t> ends;

  size_t size() const { return ends.size(); }
  bool empty() const { return ends.empty(); }

  // Element i (i < size()); valid until the next change.
  absl::string_view operator[](size_t i) const {
    const uint32_t begin = i == 0 ? 0 : ends[i - 1];
    return absl::string_view(bytes.data() + begin, ends[i] - begin);
  }

  // Appends an element; the caller keeps the total under 4 GiB (the
  // producers in this repository switch to one string per element long
  // before: wire::kExternalBlobBytes).
  void Append(absl::string_view element) {
    bytes.append(element.data(), element.size());
    ends.push_back(static_cast<uint32_t>(bytes.size()));
  }
  // Ends an element whose bytes the caller appended to `bytes` itself.
  void EndElement() { ends.push_back(static_cast<uint32_t>(bytes.size())); }

  void clear() {
    bytes.clear();
    ends.clear();
  }

  // Each element as a std::string of its own.
  std::vector<std::string> Unpack() const {
    std::vector<std::string> out;
    out.reserve(size());
    for (size_t i = 0; i < size(); ++i) out.emplace_back((*this)[i]);
    return out;
  }

  friend bool operator==(const PackedElements& a, const PackedElements& b) {
    return a.bytes == b.bytes && a.ends == b.ends;
  }
};

}  // namespace procpool

#endif  // PROCPOOL_SERIALIZATION_PACKED_H_
