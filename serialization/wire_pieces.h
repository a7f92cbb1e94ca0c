// Protocol 7's pieces (wire.h, "Layout"): a string longer than one Cap'n
// Proto Data holds (kMaxPieceBytes) goes as its first piece where the string
// belongs and the rest in a Tail (wire.capnp). The encoder's and decoder's
// helpers for them, internal to wire.cc.
#ifndef PROCPOOL_SERIALIZATION_WIRE_PIECES_H_
#define PROCPOOL_SERIALIZATION_WIRE_PIECES_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "serialization/capnp_frame.h"
#include "serialization/wire.capnp.h"

namespace procpool {
namespace wire {
namespace pieces {

// kMaxPieceBytes, or what SetPieceBytesForTesting set (defined in wire.cc,
// with them).
size_t PieceBytes();

// The first piece of `bytes` (all of it when it fits one Data).
inline absl::string_view FirstPiece(const std::string& bytes) {
  return absl::string_view(bytes).substr(0, PieceBytes());
}

// Pieces after the first: 0 for a string that fits one.
inline unsigned TailPieces(const std::string& bytes) {
  return bytes.empty()
             ? 0
             : static_cast<unsigned>((bytes.size() - 1) / PieceBytes());
}

// Adopts the pieces of `bytes` after the first into `list`
// (TailPieces(bytes) long); each is referenced where it lies when it can be
// (FrameBuilder::Blob).
void SetTail(FrameBuilder& f, const std::string& bytes,
             capnp::List<capnp::Data>::Builder list);

// The Tails of the strings of `strings` (get(x) is x's string, by index)
// that need one, in a list made by init(n).
template <typename Strings, typename Get, typename Init>
void SetTails(FrameBuilder& f, const Strings& strings, Get get, Init init) {
  unsigned n = 0;
  for (const auto& x : strings) n += TailPieces(get(x)) > 0;
  if (n == 0) return;
  auto tails = init(n);
  unsigned k = 0;
  for (unsigned i = 0; i < strings.size(); ++i) {
    const std::string& bytes = get(strings[i]);
    const unsigned count = TailPieces(bytes);
    if (count == 0) continue;
    tails[k].setIndex(i);
    SetTail(f, bytes, tails[k].initPieces(count));
    ++k;
  }
}

// Words in the builder's first segment for the Tails of `strings`.
template <typename Strings, typename Get>
size_t TailWords(const Strings& strings, Get get) {
  size_t n = 0;
  for (const auto& x : strings) {
    const unsigned count = TailPieces(get(x));
    if (count > 0) n += 4 + 5 * count;
  }
  return n;
}

// `*out` becomes `first` and then `rest` (a Tail's pieces) one after the
// other: a copy, never the frame taken over. Without `rest`, blobs.Read.
void ReadPieces(BlobReader& blobs, capnp::Data::Reader first,
                capnp::List<capnp::Data>::Reader rest, std::string* out);

// A message's Tails by the index they name, checked (kj::Exception, which
// the decoder turns into kDataLoss): increasing, each below `count`.
std::vector<capnp::List<capnp::Data>::Reader> TailsByIndex(
    capnp::List<schema::Tail>::Reader tails, size_t count);

}  // namespace pieces
}  // namespace wire
}  // namespace procpool

#endif  // PROCPOOL_SERIALIZATION_WIRE_PIECES_H_
