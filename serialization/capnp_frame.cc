#include "serialization/capnp_frame.h"

#include <capnp/any.h>

#include <cstring>
#include <utility>

#include "absl/base/optimization.h"

namespace procpool {
namespace wire {
namespace {

constexpr char kZeros[sizeof(capnp::word)] = {};

void WriteU32(kj::byte* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<kj::byte>(v >> (8 * i));
}
uint32_t ReadU32(const kj::byte* in) {
  return uint32_t{in[0]} | uint32_t{in[1]} << 8 | uint32_t{in[2]} << 16 |
         uint32_t{in[3]} << 24;
}

// The segment table: segment count - 1, each segment's size in words (all
// uint32 little-endian), padded to a whole word.
void WriteTable(kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments,
                char* out) {
  const size_t table_bytes = (segments.size() / 2 + 1) * sizeof(capnp::word);
  std::memset(out, 0, table_bytes);
  auto* table = reinterpret_cast<kj::byte*>(out);
  WriteU32(table, static_cast<uint32_t>(segments.size() - 1));
  for (size_t i = 0; i < segments.size(); ++i) {
    WriteU32(table + 4 * (i + 1), static_cast<uint32_t>(segments[i].size()));
  }
}

// The frame's trailer (capnp_frame.h): the first segment's words, the
// index of the segment that goes first (kNoneFirst: none), the magic.
void WriteTrailer(uint64_t first_words, uint32_t first_index, char* out) {
  auto* t = reinterpret_cast<kj::byte*>(out);
  for (int i = 0; i < 8; ++i) t[i] = static_cast<kj::byte>(first_words >> (8 * i));
  WriteU32(t + 8, first_index);
  WriteU32(t + 12, kFrameMagic);
}

}  // namespace

int FrameBuilder::BlobFirst(
    kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) const {
  int first = -1;
  size_t best = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    auto it = external_.find(segments[i].begin());
    if (it == external_.end() || it->second < kStealBlobBytes) continue;
    if (it->second > best) {
      best = it->second;
      first = static_cast<int>(i);
    }
  }
  return first;
}

template <typename Emit>
void FrameBuilder::Lay(Emit&& emit) {
  kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments =
      builder_.getSegmentsForOutput();
  const int first = BlobFirst(segments);
  auto segment_out = [&](const kj::ArrayPtr<const capnp::word>& segment) {
    const char* begin = reinterpret_cast<const char*>(segment.begin());
    const size_t words_bytes = segment.size() * sizeof(capnp::word);
    auto it = external_.find(segment.begin());
    if (it == external_.end()) {
      emit(begin, words_bytes, /*referenced=*/false);
    } else {
      // A referenced blob: its bytes, then zeros to the word boundary (the
      // segment's last word reaches past the blob's end; never read that).
      emit(begin, it->second, /*referenced=*/true);
      emit(kZeros, words_bytes - it->second, /*referenced=*/false);
    }
  };
  if (first >= 0) segment_out(segments[first]);
  std::vector<char> table((segments.size() / 2 + 1) * sizeof(capnp::word));
  WriteTable(segments, table.data());
  emit(table.data(), table.size(), /*referenced=*/false);
  for (size_t i = 0; i < segments.size(); ++i) {
    if (static_cast<int>(i) != first) segment_out(segments[i]);
  }
  char trailer[kFrameTrailerBytes];
  WriteTrailer(first >= 0 ? segments[first].size() : 0,
               first >= 0 ? static_cast<uint32_t>(first) : kNoneFirst, trailer);
  emit(trailer, kFrameTrailerBytes, /*referenced=*/false);
}

size_t FrameBuilder::FrameBytes(size_t* referenced) {
  kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments =
      builder_.getSegmentsForOutput();
  size_t total = (segments.size() / 2 + 1) * sizeof(capnp::word) +
                 kFrameTrailerBytes;
  *referenced = 0;
  for (const auto& segment : segments) {
    total += segment.size() * sizeof(capnp::word);
    auto it = external_.find(segment.begin());
    if (it != external_.end()) *referenced += it->second;
  }
  return total;
}

std::vector<absl::string_view> FrameBuilder::FinishParts(std::string* storage) {
  size_t referenced = 0;
  const size_t total = FrameBytes(&referenced);
  // First where each piece is (its bytes in *storage, or a blob), then the
  // views: *storage does not move once complete.
  struct Piece {
    const char* blob;  // null: bytes [at, at + size) of *storage
    size_t at;
    size_t size;
  };
  std::vector<Piece> pieces;
  storage->clear();
  storage->reserve(total - referenced);
  Lay([&](const char* bytes, size_t n, bool is_referenced) {
    if (is_referenced) {
      pieces.push_back({bytes, 0, n});
      return;
    }
    if (n == 0) return;
    if (pieces.empty() || pieces.back().blob != nullptr) {
      pieces.push_back({nullptr, storage->size(), 0});
    }
    storage->append(bytes, n);
    pieces.back().size += n;
  });
  std::vector<absl::string_view> parts;
  parts.reserve(pieces.size());
  for (const Piece& p : pieces) {
    parts.emplace_back(p.blob != nullptr ? p.blob : storage->data() + p.at,
                       p.size);
  }
  return parts;
}

std::string FrameBuilder::Finish() {
  size_t referenced = 0;
  std::string frame;
  internal::ReserveBig(&frame, FrameBytes(&referenced));
  Lay([&](const char* bytes, size_t n, bool) { frame.append(bytes, n); });
  return frame;
}

absl::Status SplitFrame(kj::ArrayPtr<const capnp::word> words,
                        std::vector<kj::ArrayPtr<const capnp::word>>* out) {
  constexpr size_t kTrailerWords = kFrameTrailerBytes / sizeof(capnp::word);
  if (words.size() < kTrailerWords + 1) {
    return absl::DataLossError(absl::StrCat(
        "corrupted frame: ", words.size() * sizeof(capnp::word),
        " bytes cannot hold a segment table and the trailer"));
  }
  const kj::byte* trailer =
      reinterpret_cast<const kj::byte*>(words.end() - kTrailerWords);
  if (ReadU32(trailer + 12) != kFrameMagic) {
    return absl::DataLossError(
        "corrupted frame: it does not end with the frame trailer");
  }
  uint64_t first_words = 0;
  for (int i = 7; i >= 0; --i) first_words = (first_words << 8) | trailer[i];
  const uint32_t first = ReadU32(trailer + 8);
  const size_t body = words.size() - kTrailerWords;
  if ((first == kNoneFirst) != (first_words == 0) || first_words >= body) {
    return absl::DataLossError(absl::StrCat(
        "corrupted frame: its trailer puts segment ", first, " of ",
        first_words, " words first in ", body, " words"));
  }
  // The table, after the segment that goes first.
  const size_t table_at = first == kNoneFirst ? 0 : first_words;
  const kj::byte* table = reinterpret_cast<const kj::byte*>(words.begin() + table_at);
  const uint64_t count = uint64_t{ReadU32(table)} + 1;
  const size_t table_words = count / 2 + 1;
  if (table_at + table_words > body || (first != kNoneFirst && first >= count)) {
    return absl::DataLossError(absl::StrCat("corrupted frame: a table of ",
                                            count, " segments in ",
                                            body - table_at, " words"));
  }
  out->assign(count, kj::ArrayPtr<const capnp::word>());
  size_t at = table_at + table_words;
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t size = ReadU32(table + 4 * (i + 1));
    if (i == first) {
      if (size != first_words) {
        return absl::DataLossError(absl::StrCat(
            "corrupted frame: segment ", i, " is ", size,
            " words in the table, ", first_words, " in the trailer"));
      }
      (*out)[i] = words.slice(0, first_words);
      continue;
    }
    if (size > body - at) {
      return absl::DataLossError(absl::StrCat(
          "corrupted frame: segment ", i, " of ", size,
          " words runs past the frame's end"));
    }
    (*out)[i] = words.slice(at, at + size);
    at += size;
  }
  if (at != body) {
    return absl::DataLossError(absl::StrCat(
        "corrupted frame: ", body - at, " words after its last segment"));
  }
  return absl::OkStatus();
}

void BlobReader::TakeFrame() {
  if (steal_target_ == nullptr) return;
  *steal_target_ = std::move(*frame_);
  if (steal_offset_ != 0) {
    // Not first in the frame (FrameBuilder puts the biggest blob first).
    char* data = &(*steal_target_)[0];
    std::memmove(data, data + steal_offset_, steal_size_);
  }
  steal_target_->resize(steal_size_);
}

const kj::byte* RawUInt32s(capnp::List<uint32_t>::Reader list) {
  if (!internal::kLittleEndian) return nullptr;
  capnp::AnyList::Reader any(list);
  if (any.getElementSize() != capnp::ElementSize::FOUR_BYTES) return nullptr;
  kj::ArrayPtr<const kj::byte> raw = any.getRawBytes();
  if (raw.size() != size_t{4} * list.size()) return nullptr;
  return raw.begin();
}

void SetPacked(const PackedElements& p, capnp::List<uint32_t>::Builder ends,
               capnp::Data::Builder bytes) {
  const kj::byte* raw = p.empty() ? nullptr : RawUInt32s(ends.asReader());
  if (raw != nullptr) {
    std::memcpy(const_cast<kj::byte*>(raw), p.ends.data(), 4 * p.size());
  } else {
    for (unsigned i = 0; i < p.size(); ++i) ends.set(i, p.ends[i]);
  }
  if (!p.bytes.empty())
    std::memcpy(bytes.begin(), p.bytes.data(), p.bytes.size());
}

void ReadPackedInto(capnp::Data::Reader blob,
                    capnp::List<uint32_t>::Reader ends, PackedElements* out) {
  const unsigned n = ends.size();
  const size_t size = blob.size();
  out->ends.resize(n);
  // One copy of the ends where they lie as plain uint32s, then the checks.
  const kj::byte* raw = n == 0 ? nullptr : RawUInt32s(ends);
  if (raw != nullptr) {
    std::memcpy(out->ends.data(), raw, size_t{4} * n);
  } else {
    for (unsigned i = 0; i < n; ++i) out->ends[i] = ends[i];
  }
  uint32_t prev = 0;
  for (unsigned i = 0; i < n; ++i) {
    const uint32_t end = out->ends[i];
    if (ABSL_PREDICT_FALSE(end < prev || end > size)) {
      KJ_REQUIRE(end >= prev, "packed element ends out of order", i, prev, end);
      KJ_REQUIRE(end <= size, "packed element ends past its blob", i, end,
                 size);
    }
    prev = end;
  }
  KJ_REQUIRE(prev == size, "packed blob longer than its elements", prev, size);
  out->bytes.assign(reinterpret_cast<const char*>(blob.begin()), size);
}

}  // namespace wire
}  // namespace procpool
