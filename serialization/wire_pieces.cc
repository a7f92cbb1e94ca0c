#include "serialization/wire_pieces.h"

#include <kj/debug.h>

#include "serialization/byte_io.h"

namespace procpool {
namespace wire {
namespace pieces {

void SetTail(FrameBuilder& f, const std::string& bytes,
             capnp::List<capnp::Data>::Builder list) {
  const size_t piece = PieceBytes();
  for (unsigned k = 0; k < list.size(); ++k) {
    list.adopt(k, f.Blob(absl::string_view(bytes).substr((k + 1) * piece,
                                                          piece)));
  }
}

void ReadPieces(BlobReader& blobs, capnp::Data::Reader first,
                capnp::List<capnp::Data>::Reader rest, std::string* out) {
  if (rest.size() == 0) {
    blobs.Read(first, out);
    return;
  }
  size_t total = first.size();
  for (auto piece : rest) total += piece.size();
  ::procpool::internal::ReserveBig(out, total);
  out->assign(reinterpret_cast<const char*>(first.begin()), first.size());
  for (auto piece : rest) {
    out->append(reinterpret_cast<const char*>(piece.begin()), piece.size());
  }
}

std::vector<capnp::List<capnp::Data>::Reader> TailsByIndex(
    capnp::List<schema::Tail>::Reader tails, size_t count) {
  std::vector<capnp::List<capnp::Data>::Reader> out(count);
  int64_t last = -1;
  for (auto t : tails) {
    KJ_REQUIRE(t.getIndex() < count, "a tail for no element", t.getIndex());
    KJ_REQUIRE(static_cast<int64_t>(t.getIndex()) > last,
               "tails out of order", t.getIndex());
    last = t.getIndex();
    out[t.getIndex()] = t.getPieces();
  }
  return out;
}

}  // namespace pieces
}  // namespace wire
}  // namespace procpool
