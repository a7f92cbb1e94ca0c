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

}  // namespace

std::vector<absl::string_view> FrameBuilder::FinishParts(std::string* storage) {
  kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments =
      builder_.getSegmentsForOutput();
  const size_t table_bytes = (segments.size() / 2 + 1) * sizeof(capnp::word);
  // First where each piece is (its bytes in *storage, or a blob), then the
  // views: *storage does not move once complete.
  struct Piece {
    const char* blob;  // null: bytes [at, at + size) of *storage
    size_t at;
    size_t size;
  };
  std::vector<Piece> pieces;
  size_t stored = table_bytes;
  for (const auto& segment : segments) {
    const size_t words_bytes = segment.size() * sizeof(capnp::word);
    auto it = external_.find(segment.begin());
    if (it == external_.end()) {
      stored += words_bytes;
    } else {
      stored += words_bytes - it->second;
    }
  }
  storage->clear();
  storage->reserve(stored);
  storage->resize(table_bytes);
  WriteTable(segments, &(*storage)[0]);
  pieces.push_back({nullptr, 0, table_bytes});
  auto store = [&](const char* bytes, size_t n) {
    if (n == 0) return;
    if (pieces.back().blob != nullptr) {
      pieces.push_back({nullptr, storage->size(), 0});
    }
    storage->append(bytes, n);
    pieces.back().size += n;
  };
  for (const auto& segment : segments) {
    const char* begin = reinterpret_cast<const char*>(segment.begin());
    const size_t words_bytes = segment.size() * sizeof(capnp::word);
    auto it = external_.find(segment.begin());
    if (it == external_.end()) {
      store(begin, words_bytes);
    } else {
      pieces.push_back({begin, 0, it->second});
      store(kZeros, words_bytes - it->second);
    }
  }
  std::vector<absl::string_view> parts;
  parts.reserve(pieces.size());
  for (const Piece& p : pieces) {
    parts.emplace_back(p.blob != nullptr ? p.blob : storage->data() + p.at,
                       p.size);
  }
  return parts;
}

std::string FrameBuilder::Finish() {
  kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments =
      builder_.getSegmentsForOutput();
  // The table: segment count - 1, each segment's size in words (all
  // uint32 little-endian), padded to a whole word.
  const size_t table_words = segments.size() / 2 + 1;
  size_t total_words = table_words;
  for (const auto& segment : segments) total_words += segment.size();
  std::string frame;
  internal::ReserveBig(&frame, total_words * sizeof(capnp::word));
  std::vector<kj::byte> table(table_words * sizeof(capnp::word), 0);
  WriteU32(&table[0], static_cast<uint32_t>(segments.size() - 1));
  for (size_t i = 0; i < segments.size(); ++i) {
    WriteU32(&table[4 * (i + 1)], static_cast<uint32_t>(segments[i].size()));
  }
  frame.append(reinterpret_cast<const char*>(table.data()), table.size());
  for (const auto& segment : segments) {
    const char* begin = reinterpret_cast<const char*>(segment.begin());
    const size_t words_bytes = segment.size() * sizeof(capnp::word);
    auto it = external_.find(segment.begin());
    if (it == external_.end()) {
      frame.append(begin, words_bytes);
    } else {
      // A referenced blob: its bytes, then zeros to the word boundary (the
      // segment's last word reaches past the blob's end; never read that).
      frame.append(begin, it->second);
      frame.append(kZeros, words_bytes - it->second);
    }
  }
  return frame;
}

void BlobReader::TakeFrame() {
  if (steal_target_ == nullptr) return;
  *steal_target_ = std::move(*frame_);
  char* data = &(*steal_target_)[0];
  std::memmove(data, data + steal_offset_, steal_size_);
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
