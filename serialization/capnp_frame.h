// Cap'n Proto frames: building one message into one frame (or into parts
// whose concatenation is that frame), reading a frame back, and the byte
// strings (Data blobs, packed lists) inside one. What the messages hold is
// wire.h's business; this is the layer under it, and it knows no schema.
//
// A frame is one Cap'n Proto message: the segment table (segment count - 1,
// then each segment's size in words, all little-endian uint32s, padded to a
// whole word) and the segments, as in the standard flat-array layout, except
// that the segment of the biggest referenced blob (kStealBlobBytes or more)
// comes first, before the table; then a 16-byte trailer: that segment's size
// in words (uint64; 0: none first), its index (uint32; kNoneFirst: none),
// kFrameMagic (uint32). So a receiver's frame buffer starts with the biggest
// blob, and the string that takes over the buffer (BlobReader) needs no move
// of its bytes: a 64 MiB argument or result cost two 64 MiB memmoves per
// round trip before (tools/BENCHMARKS.md).
//
// Building: FrameBuilder copies a byte string smaller than
// kReferencedBlobBytes into the message; a bigger, word-aligned one is
// referenced where it lies (Orphanage::referenceExternalData: a segment of
// its own), so that each payload byte is copied once, into the frame (Finish),
// or not at all (FinishParts, whose parts view the big blobs).
//
// Reading: ReadFrame checks the frame's size, aligns its words (copying a
// misaligned frame), bounds the traversal and turns any Cap'n Proto error into
// kDataLoss. BlobReader copies the blobs out into strings, except that with a
// frame the caller gives up, the biggest one of kStealBlobBytes or more takes
// over the frame's buffer instead.
//
// Example:
//   FrameBuilder f(/*first_segment_words=*/64);
//   auto root = f.Root<schema::Message>();
//   root.initCall().adoptArgs(...f.Blob(bytes)...);
//   std::string frame = f.Finish();
//
//   absl::Status s = ReadFrame<schema::Message>(
//       frame, /*owned=*/nullptr,
//       [&](schema::Message::Reader root, BlobReader& blobs) { ... });
//
// Internal to serialization/ (Cap'n Proto stays out of every other package).
// Thread safety: FrameBuilder and BlobReader are used by one thread at a time.
#ifndef PROCPOOL_SERIALIZATION_CAPNP_FRAME_H_
#define PROCPOOL_SERIALIZATION_CAPNP_FRAME_H_

#include <capnp/list.h>
#include <capnp/message.h>
#include <capnp/orphan.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "serialization/byte_io.h"
#include "serialization/packed.h"

namespace procpool {
namespace wire {

// Byte strings at least this big, and word-aligned, are referenced by
// FrameBuilder::Blob rather than copied into the message (wire.h's
// kExternalBlobBytes, which wire.cc checks is the same).
inline constexpr size_t kReferencedBlobBytes = size_t{16} << 10;

// A blob at least this big may take over the frame's buffer (BlobReader).
inline constexpr size_t kStealBlobBytes = size_t{64} << 10;

// The frame trailer (above).
inline constexpr size_t kFrameTrailerBytes = 16;
inline constexpr uint32_t kFrameMagic = 0x31465050;  // "PPF1"
inline constexpr uint32_t kNoneFirst = 0xffffffff;

// All of `s`, NULs included (a const char* would stop at the first NUL).
inline capnp::Text::Reader AsText(const std::string& s) {
  return capnp::Text::Reader(s.data(), s.size());
}

inline capnp::Data::Reader AsData(absl::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()),
                             s.size());
}

inline std::string ToString(capnp::Text::Reader t) {
  return std::string(t.begin(), t.size());
}

// Words a blob of `bytes` takes in the builder's first segment: all of it
// when copied, a pointer and a landing pad when referenced. For sizing
// FrameBuilder's first segment.
inline size_t BlobWords(const std::string& bytes) {
  return bytes.size() >= kReferencedBlobBytes
             ? 4
             : (bytes.size() + sizeof(capnp::word) - 1) / sizeof(capnp::word);
}

// Builds one message and writes it as one frame: the segment table, then the
// segments, into a string sized once. Big Data blobs are not copied into the
// builder but referenced where they are (Orphanage::referenceExternalData), so
// each payload byte is copied exactly once, into the frame.
class FrameBuilder {
 public:
  // `first_segment_words`: what the message is expected to take, besides the
  // referenced blobs (capped at 2^29 words).
  explicit FrameBuilder(size_t first_segment_words)
      : builder_(static_cast<unsigned>(
                     std::min<size_t>(first_segment_words, 1u << 29)),
                 capnp::AllocationStrategy::GROW_HEURISTICALLY) {}

  FrameBuilder(const FrameBuilder&) = delete;
  FrameBuilder& operator=(const FrameBuilder&) = delete;

  // The message's root, a struct of type T (call once).
  template <typename T>
  typename T::Builder Root() {
    return builder_.initRoot<T>();
  }

  // `bytes` as a Data value: referenced when big and word-aligned (then it
  // must outlive Finish(), FinishParts() and their parts, unchanged), copied
  // otherwise.
  capnp::Orphan<capnp::Data> Blob(const std::string& bytes) {
    return Blob(absl::string_view(bytes));
  }
  // The same for a part of a string (a piece of one too big for one Data:
  // wire.h's kMaxPieceBytes).
  capnp::Orphan<capnp::Data> Blob(absl::string_view bytes) {
    capnp::Orphanage orphanage = builder_.getOrphanage();
    if (bytes.size() < kReferencedBlobBytes ||
        reinterpret_cast<uintptr_t>(bytes.data()) % sizeof(capnp::word) != 0) {
      return orphanage.newOrphanCopy(AsData(bytes));
    }
    external_[reinterpret_cast<const capnp::word*>(bytes.data())] =
        bytes.size();
    return orphanage.referenceExternalData(AsData(bytes));
  }

  // The message as one frame, in a string reserved once (ReserveBig). A
  // referenced blob's last word reaches past its bytes: its bytes are copied,
  // then zeros, never what lies past it.
  std::string Finish();

  // Finish()'s frame as parts whose concatenation it is, for a sender that
  // gathers: the table, the builder's segments and the padding are copied
  // into `*storage`; each referenced blob is a view of its own bytes (which
  // must outlive the parts, as must `*storage`).
  std::vector<absl::string_view> FinishParts(std::string* storage);

 private:
  // The segment that goes first (the biggest referenced blob of
  // kStealBlobBytes or more), or -1.
  int BlobFirst(
      kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) const;
  // The frame's layout, shared by Finish() and FinishParts(): calls
  // emit(bytes, n, referenced) for each piece in order (the first segment,
  // the table, the other segments, the trailer); a referenced blob's bytes
  // come with referenced = true, its padding after them as zeros.
  template <typename Emit>
  void Lay(Emit&& emit);
  // The frame's size in bytes, and in `*referenced` the referenced blobs'.
  size_t FrameBytes(size_t* referenced);

  capnp::MallocMessageBuilder builder_;
  // Referenced blobs by where their segment starts: their size in bytes.
  std::unordered_map<const capnp::word*, size_t> external_;
};

// Copies decoded Data blobs into strings, except (when `frame` is set) the
// biggest one of at least kStealBlobBytes: that one is only noted, and takes
// over the frame's buffer once reading is done (TakeFrame). Every string it
// is given must stay where it is until then.
class BlobReader {
 public:
  // `base`: the first word of the message being read (the frame, or an
  // aligned copy of it: offsets from it are offsets into the frame).
  // `frame`: null to copy every blob; otherwise the frame, given up.
  BlobReader(const capnp::word* base, std::string* frame)
      : base_(reinterpret_cast<const kj::byte*>(base)), frame_(frame) {}

  BlobReader(const BlobReader&) = delete;
  BlobReader& operator=(const BlobReader&) = delete;

  // `*out` becomes the bytes of `d` (a blob of the message at `base`), now
  // or, when noted for taking over the frame, at TakeFrame.
  void Read(capnp::Data::Reader d, std::string* out) {
    if (frame_ != nullptr && d.size() >= kStealBlobBytes &&
        d.size() > steal_size_) {
      if (steal_target_ != nullptr)
        Copy(steal_target_, steal_offset_, steal_size_);
      steal_target_ = out;
      steal_offset_ = static_cast<size_t>(d.begin() - base_);
      steal_size_ = d.size();
      return;
    }
    internal::ReserveBig(out, d.size());
    out->assign(reinterpret_cast<const char*>(d.begin()), d.size());
  }

  // Call once the message has been read: the noted blob's string becomes the
  // frame's buffer, moved down to its start (no new memory to fault in).
  void TakeFrame();

 private:
  void Copy(std::string* out, size_t offset, size_t size) {
    internal::ReserveBig(out, size);
    out->assign(reinterpret_cast<const char*>(base_) + offset, size);
  }

  const kj::byte* base_;
  std::string* frame_;  // null: copy every blob
  std::string* steal_target_ = nullptr;
  size_t steal_offset_ = 0;
  size_t steal_size_ = 0;
};

// A List(UInt32)'s elements as they lie in the message (little-endian
// uint32s, one after the other), or null when the list is laid out otherwise
// (a reader may meet a list of structs in its place) or the host is
// big-endian: then read it element by element.
const kj::byte* RawUInt32s(capnp::List<uint32_t>::Reader list);

// Writes a packed list's ends and bytes into a message (lists just built with
// p.size() ends and p.bytes.size() bytes). The ends go in one copy where the
// list lies as plain uint32s.
void SetPacked(const PackedElements& p, capnp::List<uint32_t>::Builder ends,
               capnp::Data::Builder bytes);

// A packed list into `*out`: checks that `ends` is non-decreasing and covers
// exactly `blob`. Malformed ends throw a kj::Exception (kDataLoss from
// ReadFrame).
void ReadPackedInto(capnp::Data::Reader blob,
                    capnp::List<uint32_t>::Reader ends, PackedElements* out);

// The segments of the frame `words` (trailer included), checked against its
// table and trailer: kDataLoss saying what is wrong, never a crash.
absl::Status SplitFrame(kj::ArrayPtr<const capnp::word> words,
                        std::vector<kj::ArrayPtr<const capnp::word>>* out);

// Reads `frame` as one message whose root is a T: calls
// `read(T::Reader root, BlobReader& blobs)`, then, if that succeeded,
// blobs.TakeFrame(). `owned`, when set, holds the bytes of `frame` and may be
// taken over by the biggest blob. Never crashes on bad bytes: a frame that is
// not a whole number of words, or that `read` (or Cap'n Proto under it) finds
// malformed by throwing a kj::Exception, is kDataLoss saying what is wrong.
// Misaligned frames are copied first (Cap'n Proto reads words in place).
// Every word may be read at most twice (a blob shared by two pointers counts
// twice); more than that is a crafted amplification, and an error.
template <typename T, typename Fn>
absl::Status ReadFrame(absl::string_view frame, std::string* owned, Fn&& read) {
  if (frame.size() % sizeof(capnp::word) != 0 || frame.empty()) {
    return absl::DataLossError(
        absl::StrCat("corrupted frame: ", frame.size(),
                     " bytes is not a whole number of 8-byte words"));
  }
  // Offsets into a copy are offsets into the frame, so taking over the frame
  // still works.
  kj::Array<capnp::word> copy;
  kj::ArrayPtr<const capnp::word> words(
      reinterpret_cast<const capnp::word*>(frame.data()),
      frame.size() / sizeof(capnp::word));
  if (reinterpret_cast<uintptr_t>(frame.data()) % alignof(capnp::word) != 0) {
    copy = kj::heapArray<capnp::word>(words.size());
    std::memcpy(copy.begin(), frame.data(), frame.size());
    words = copy;
  }
  std::vector<kj::ArrayPtr<const capnp::word>> segments;
  absl::Status split = SplitFrame(words, &segments);
  if (!split.ok()) return split;
  capnp::ReaderOptions options;
  options.traversalLimitInWords = words.size() * 2 + 1024;
  BlobReader blobs(words.begin(), owned);
  kj::Maybe<kj::Exception> error = kj::runCatchingExceptions([&] {
    capnp::SegmentArrayMessageReader reader(
        kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>(segments.data(),
                                                            segments.size()),
        options);
    read(reader.getRoot<T>(), blobs);
  });
  KJ_IF_MAYBE (e, error) {
    return absl::DataLossError(
        absl::StrCat("corrupted frame: ", e->getDescription().cStr()));
  }
  blobs.TakeFrame();
  return absl::OkStatus();
}

}  // namespace wire
}  // namespace procpool

#endif  // PROCPOOL_SERIALIZATION_CAPNP_FRAME_H_
