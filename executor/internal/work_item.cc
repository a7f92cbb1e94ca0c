#include "executor/internal/work_item.h"

#include <utility>

#include "serialization/wire.h"

namespace procpool {
namespace internal {

static_assert(kBigElementBytes == wire::kExternalBlobBytes);

void AddElement(WorkItem* item, std::string encoded) {
  if (item->args.empty() && encoded.size() < kBigElementBytes) {
    item->packed_args.Append(encoded);
    return;
  }
  if (item->args.empty()) {
    item->args = item->packed_args.Unpack();
    item->packed_args.clear();
  }
  item->args.push_back(std::move(encoded));
}

void EndAppendedElement(WorkItem* item, size_t begin) {
  std::string& bytes = item->packed_args.bytes;
  std::string big = bytes.substr(begin);
  bytes.resize(begin);
  item->args = item->packed_args.Unpack();
  item->packed_args.clear();
  item->args.push_back(std::move(big));
}

}  // namespace internal
}  // namespace procpool
