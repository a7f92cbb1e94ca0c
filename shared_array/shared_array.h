// procpool::SharedArray<T>: an array of trivially copyable T in shared memory
// (a memfd), which a task argument or result carries by reference: only a
// handle travels, and the bytes stay where they are (on another host they will
// be copied; README.md). The byte form is SharedBytes (SharedArray<uint8_t>);
// the untyped form under both, SharedBuffer (shared_buffer.h).
//
// Example (the Submit lines once the codec carries arrays: README.md):
//   procpool::SharedArray<double> a(1 << 20);    // zero-filled, writable here
//   for (size_t i = 0; i < a.size(); ++i) a[i] = i;
//   double total = pool.Submit(Sum, a).Get();    // a is sealed when sent
//
//   using procpool::SharedArrayMode;
//   procpool::SharedArray<double> out(a.size(), SharedArrayMode::kOutput);
//   std::vector<procpool::Future<void>> parts;  // each task writes a slice
//   for (size_t i = 0; i < 4; ++i) {
//     parts.push_back(pool.Submit(Twice, a, out, i, 4));
//   }
//   for (auto& f : parts) f.Get();               // now read out[...]
//
// Write rules (who may write, when):
//   * kImmutable (the default): writable by its creator, until it is first
//     shared (Share() or Seal(): the codec will call Share() when the array
//     is first passed to a task or returned from one). From then on it is
//     sealed: read-only in every process, for good, at the same address (no
//     copy). A write after that, by the creator or by a task, is SIGSEGV; a
//     task can neither write it nor make it writable (the kernel refuses
//     PROT_WRITE mappings and mprotect of a sealed memfd). writable() says
//     which state the array is in. To change data after sending it, make a
//     new array. This is the contract of joblib's memmapping (workers get
//     mmap_mode='r') made strict: joblib copies the array into a file, so the
//     parent's later writes go unseen; here there is no copy, so later writes
//     are refused instead of being seen by some tasks and not others.
//   * kOutput: writable by every process that holds it, never sealed (numpy's
//     out=). Tasks write disjoint slices; the creator reads the array once the
//     futures of the tasks that write it are done (a task's writes happen
//     before its result is sent, and the parent reads the result after) and
//     does not write it while they run. Overlapping writes, or reads of a
//     slice while its task runs, see unspecified values: a data race between
//     processes, as with Python's multiprocessing.shared_memory, which has no
//     other rule. A task handed an output array can write all of it: use
//     kImmutable for what tasks must not change. Where workers get copies
//     (capnp, remote workers), a task writes a copy of the array as it was at
//     Submit, and exactly the bytes it changed are written into the array
//     before its future completes (output_writes.h): the same rules hold.
//
// Lifetime: copies share one mapping (reference-counted like a shared_ptr);
// it is unmapped and its memfd closed when the last copy in this process
// goes. The memory itself is freed when no process maps it or holds its memfd
// any more (the kernel's rule for memfds); nothing is named in /dev/shm, so
// nothing outlives the processes. Workers started with fork() do not inherit
// arrays (MADV_DONTFORK).
//
// Element types: trivially copyable, not pointers (an address means nothing
// in another process), not long double. The type name in the handle is the
// codec's name for arithmetic types ("f64", "i32", ...), "byte" for
// std::byte, else the mangled type name; a task expecting another type
// refuses the array (CheckHandleType).
//
// Thread safety: as std::shared_ptr: copies may be used by different threads;
// one SharedArray object must not be assigned while another thread uses it.
// The elements are the callers' to synchronize.
#ifndef PROCPOOL_SHARED_ARRAY_SHARED_ARRAY_H_
#define PROCPOOL_SHARED_ARRAY_SHARED_ARRAY_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "absl/base/macros.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/unique_fd.h"
#include "core/errors.h"
#include "serialization/byte_io.h"
#include "shared_array/handle.h"
#include "shared_array/shared_buffer.h"

namespace procpool {
namespace shared_array_internal {

std::string StableTypeName(const char* mangled);

// Throws procpool::Error for a failed construction.
[[noreturn]] void ThrowCreateError(const absl::Status& status);

}  // namespace shared_array_internal

// The element type's name in handles (above).
template <typename T>
std::string SharedArrayTypeName() {
  if constexpr (std::is_arithmetic<T>::value) {
    return internal::ArithmeticName<T>();  // the codec's names
  } else if constexpr (std::is_same<T, std::byte>::value) {
    return "byte";
  } else {
    return shared_array_internal::StableTypeName(typeid(T).name());
  }
}

template <typename T>
class SharedArray {
  static_assert(std::is_trivially_copyable<T>::value,
                "procpool::SharedArray<T>: T must be trivially copyable (its "
                "bytes are shared between processes as they are); use a "
                "std::vector<T> argument for other types");
  static_assert(!std::is_pointer<T>::value && !std::is_member_pointer<T>::value,
                "procpool::SharedArray<T>: T must not be a pointer (an address "
                "means nothing in another process); store offsets instead");
  static_assert(!std::is_same<std::remove_cv_t<T>, long double>::value,
                "procpool::SharedArray<T>: long double's size and layout "
                "differ between platforms; use double");
  static_assert(!std::is_const<T>::value && !std::is_volatile<T>::value,
                "procpool::SharedArray<T>: use SharedArray<T> (a const "
                "SharedArray gives const access)");

 public:
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;

  // Holds nothing: size() 0, data() nullptr. It cannot be shared.
  SharedArray() = default;

  // `n` elements, zero-filled, writable by this process (write rules above).
  // Throws procpool::Error if the memory cannot be had (the message says
  // why and what to do); Create() returns the error instead.
  explicit SharedArray(size_t n,
                       SharedArrayMode mode = SharedArrayMode::kImmutable) {
    absl::StatusOr<SharedArray> made = Create(n, mode);
    if (!made.ok()) shared_array_internal::ThrowCreateError(made.status());
    *this = *std::move(made);
  }

  static absl::StatusOr<SharedArray> Create(
      size_t n, SharedArrayMode mode = SharedArrayMode::kImmutable) {
    absl::StatusOr<SharedBuffer> buffer =
        SharedBuffer::Create(n, sizeof(T), SharedArrayTypeName<T>(), mode);
    if (!buffer.ok()) return buffer.status();
    return SharedArray(*std::move(buffer));
  }

  // Views `buffer` as T elements: kInvalidArgument if it holds another type.
  static absl::StatusOr<SharedArray> FromBuffer(SharedBuffer buffer) {
    if (buffer.type_name() != SharedArrayTypeName<T>() ||
        buffer.element_size() != sizeof(T)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shared array ", buffer.id().ToString(), " holds ",
          buffer.type_name(), " (", buffer.element_size(), " bytes each), not ",
          SharedArrayTypeName<T>(), " (", sizeof(T), " bytes each)"));
    }
    return SharedArray(std::move(buffer));
  }

  // Maps a received array: `handle` must be for T (CheckHandleType), `fd`
  // its memfd (owned from now on). For a worker, MappingCache does this once
  // per buffer.
  static absl::StatusOr<SharedArray> Attach(const SharedArrayHandle& handle,
                                            UniqueFd fd) {
    absl::Status type =
        CheckHandleType(handle, SharedArrayTypeName<T>(), sizeof(T));
    if (!type.ok()) return type;
    absl::StatusOr<SharedBuffer> buffer =
        SharedBuffer::Attach(handle, std::move(fd));
    if (!buffer.ok()) return buffer.status();
    return SharedArray(*std::move(buffer));
  }

  size_t size() const { return buffer_.byte_size() / sizeof(T); }
  bool empty() const { return size() == 0; }

  // The elements (nullptr when empty). Writing through the non-const forms
  // is allowed only while writable() (write rules above).
  T* data() { return static_cast<T*>(buffer_.address()); }
  const T* data() const { return static_cast<const T*>(buffer_.address()); }
  T& operator[](size_t i) {
    ABSL_HARDENING_ASSERT(i < size());
    return data()[i];
  }
  const T& operator[](size_t i) const {
    ABSL_HARDENING_ASSERT(i < size());
    return data()[i];
  }
  T* begin() { return data(); }
  T* end() { return data() + size(); }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size(); }
  absl::Span<T> span() { return absl::Span<T>(data(), size()); }
  absl::Span<const T> span() const {
    return absl::Span<const T>(data(), size());
  }

  SharedArrayMode mode() const { return buffer_.mode(); }
  // Whether this process may write the elements now.
  bool writable() const { return buffer_.writable(); }

  // SharedBuffer::Seal() and Share(): seal a kImmutable array now (instead
  // of on first send); the handle to send.
  absl::Status Seal() const { return buffer_.Seal(); }
  absl::StatusOr<SharedArrayHandle> Share() const { return buffer_.Share(); }

  // The untyped buffer (shared, not copied).
  const SharedBuffer& buffer() const { return buffer_; }

 private:
  explicit SharedArray(SharedBuffer buffer) : buffer_(std::move(buffer)) {}

  SharedBuffer buffer_;
};

// The byte form.
using SharedBytes = SharedArray<uint8_t>;

}  // namespace procpool

#endif  // PROCPOOL_SHARED_ARRAY_SHARED_ARRAY_H_
