#include "shared_array/output_writes.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace procpool {
namespace {

constexpr size_t kBlock = 64;

uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Whether any byte of `x` is zero.
bool HasZeroByte(uint64_t x) {
  return ((x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL) != 0;
}

// The first i >= `from` where a[i] != b[i], or n.
size_t NextDifference(const char* a, const char* b, size_t from, size_t n) {
  size_t i = from;
  while (i + kBlock <= n && std::memcmp(a + i, b + i, kBlock) == 0) i += kBlock;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// The first i >= `from` where a[i] == b[i], or n.
size_t NextSame(const char* a, const char* b, size_t from, size_t n) {
  size_t i = from;
  while (i + 8 <= n && !HasZeroByte(Load64(a + i) ^ Load64(b + i))) i += 8;
  while (i < n && a[i] != b[i]) ++i;
  return i;
}

absl::Status Malformed(absl::string_view what) {
  return absl::DataLossError(
      absl::StrCat("the writes to output arrays that came back are "
                   "malformed: ", what));
}

// Reads `writes`; with `apply`, copies each run into its target (call it
// only once a pass without has returned OK).
absl::Status Walk(absl::string_view writes,
                  absl::Span<const SharedBuffer> targets, bool apply) {
  Reader r(writes);
  while (r.remaining() > 0) {
    uint64_t index, size;
    RETURN_IF_ERROR(r.ReadVarint(&index));
    RETURN_IF_ERROR(r.ReadVarint(&size));
    if (index >= targets.size()) {
      return Malformed(absl::StrCat("array ", index, " of a call that sent ",
                                    targets.size()));
    }
    const SharedBuffer& target = targets[index];
    if (size != target.byte_size()) {
      return Malformed(absl::StrCat("array ", index, " has ",
                                    target.byte_size(), " bytes, not ", size));
    }
    if (!target.writable()) {
      return Malformed(absl::StrCat("array ", index, " is not writable here"));
    }
    char* base = static_cast<char*>(target.address());
    uint64_t pos = 0;
    while (true) {
      uint64_t skip, length;
      RETURN_IF_ERROR(r.ReadVarint(&skip));
      RETURN_IF_ERROR(r.ReadVarint(&length));
      if (length == 0) {
        if (skip != 0) return Malformed("a run of no bytes");
        break;
      }
      if (skip > size - pos || length > size - pos - skip) {
        return Malformed(absl::StrCat("a run of ", length, " bytes at ",
                                      pos + skip, " in array ", index, " of ",
                                      size, " bytes"));
      }
      pos += skip;
      absl::StatusOr<absl::string_view> bytes = r.ReadView(length);
      if (!bytes.ok()) return bytes.status();
      if (apply) std::memcpy(base + pos, bytes->data(), length);
      pos += length;
    }
  }
  return absl::OkStatus();
}

}  // namespace

void OutputWrites::AddChanges(uint32_t index, absl::string_view before,
                              const void* now) {
  const char* a = before.data();
  const char* b = static_cast<const char*>(now);
  const size_t n = before.size();
  size_t end = 0;  // of the last run
  size_t i = NextDifference(a, b, 0, n);
  if (i == n) return;
  w_.WriteVarint(index);
  w_.WriteVarint(n);
  while (i < n) {
    const size_t same = NextSame(a, b, i, n);
    w_.WriteVarint(i - end);
    w_.WriteVarint(same - i);
    w_.WriteBytes(b + i, same - i);
    end = same;
    i = NextDifference(a, b, same, n);
  }
  w_.WriteVarint(0);
  w_.WriteVarint(0);
}

absl::Status OutputWrites::Apply(absl::string_view writes,
                                 absl::Span<const SharedBuffer> targets) {
  RETURN_IF_ERROR(Walk(writes, targets, /*apply=*/false));
  return Walk(writes, targets, /*apply=*/true);
}

}  // namespace procpool
