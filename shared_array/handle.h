// What travels on the wire in place of a shared array's bytes: the buffer's
// identity, its size, its element type and how the receiver may map it
// (SharedArrayHandle), with its encoder and a decoder that rejects what is
// not a well-formed handle. The memfd itself travels separately (SCM_RIGHTS),
// once per receiving process and buffer; the receiver attaches "handle + fd"
// (SharedBuffer::Attach in shared_buffer.h, MappingCache in mapping_cache.h).
//
// Example:
//   SharedArrayHandle h;
//   h.id = BufferId::Next();
//   h.byte_size = 8 * n; h.element_size = 8; h.type_name = "f64";
//   h.access = SharedAccess::kReadOnly;
//   std::string bytes = EncodeHandle(h);
//   ASSIGN_OR_RETURN(SharedArrayHandle back, DecodeHandle(bytes));
//   RETURN_IF_ERROR(CheckHandleType(back, "f64", 8));
//
// Identity: BufferId {pid, serial, nonce}: the creating process's pid, a
// counter in that process (from 1), and 64 random bits drawn once per process
// (a process that reuses a dead one's pid draws others). Unique across the
// processes of a pool, and across pools on a host for practical purposes. The
// memfd is named MemfdName(id) ("procpool-array:PID.SERIAL.NONCE"), and
// attaching checks the descriptor's name against the handle's id, so a handle
// paired with another buffer's descriptor is refused.
//
// Encoding (48 + type name bytes, little-endian, no padding):
//   0   4  magic "PPSA"
//   4   1  version, 1
//   5   1  access: 1 read-only, 2 read-write (SharedAccess)
//   6   2  reserved, 0
//   8   4  pid (> 0)
//   12  4  reserved, 0
//   16  8  serial (> 0)
//   24  8  nonce
//   32  8  byte_size, a multiple of element_size, at most kMaxHandleBytes
//   40  4  element_size, 1 .. kMaxElementSize
//   44  4  type name length, 1 .. kMaxTypeNameBytes
//   48  .. the type name: printable ASCII, no spaces
// DecodeHandle accepts exactly that: a short input, another magic or version,
// an unknown access, non-zero reserved bytes, a zero pid or serial, a size
// that is not a whole number of elements, a bad type name or bytes after the
// name are kDataLoss saying which. A handle that is well formed but for
// another type is CheckHandleType's kInvalidArgument; one whose size does not
// match its descriptor is refused by the attach (SharedRegion::Attach).
//
// Thread safety: the functions are thread-safe; BufferId::Next() may be called
// from any thread.
#ifndef PROCPOOL_SHARED_ARRAY_HANDLE_H_
#define PROCPOOL_SHARED_ARRAY_HANDLE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "shared_array/shared_region.h"

namespace procpool {

// A shared buffer's identity (above).
struct BufferId {
  uint32_t pid = 0;
  uint64_t serial = 0;
  uint64_t nonce = 0;

  // A new identity for a buffer created by this process.
  static BufferId Next();

  // "PID.SERIAL.NONCE" (nonce in hex), for names and messages.
  std::string ToString() const;

  friend bool operator==(const BufferId& a, const BufferId& b) {
    return a.pid == b.pid && a.serial == b.serial && a.nonce == b.nonce;
  }
  friend bool operator!=(const BufferId& a, const BufferId& b) {
    return !(a == b);
  }
  template <typename H>
  friend H AbslHashValue(H h, const BufferId& id) {
    return H::combine(std::move(h), id.pid, id.serial, id.nonce);
  }
};

// The memfd name of buffer `id`: "procpool-array:" + id.ToString().
std::string MemfdName(const BufferId& id);

inline constexpr size_t kHandleHeaderBytes = 48;
inline constexpr size_t kMaxTypeNameBytes = 64;
inline constexpr uint32_t kMaxElementSize = uint32_t{1} << 20;
inline constexpr uint64_t kMaxHandleBytes = uint64_t{1} << 46;  // 64 TiB

struct SharedArrayHandle {
  BufferId id;
  uint64_t byte_size = 0;
  uint32_t element_size = 1;
  std::string type_name;  // SharedArrayTypeName<T>() (shared_array.h)
  SharedAccess access = SharedAccess::kReadOnly;
};

// The handle's bytes (above). `h` must be well formed (what DecodeHandle
// accepts); a handle made by SharedBuffer::Share() is.
std::string EncodeHandle(const SharedArrayHandle& h);

// Parses and validates a handle (above).
absl::StatusOr<SharedArrayHandle> DecodeHandle(absl::string_view bytes);

// OK if `h` is for elements named `type_name` of `element_size` bytes, else
// kInvalidArgument naming both types.
absl::Status CheckHandleType(const SharedArrayHandle& h,
                             absl::string_view type_name, size_t element_size);

}  // namespace procpool

#endif  // PROCPOOL_SHARED_ARRAY_HANDLE_H_
