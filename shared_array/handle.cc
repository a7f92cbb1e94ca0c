#include "shared_array/handle.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace procpool {
namespace {

constexpr char kMagic[4] = {'P', 'P', 'S', 'A'};
constexpr uint8_t kVersion = 1;

std::atomic<uint64_t> next_serial{1};

// 64 random bits per process, drawn again in a forked child (its pid
// differs, but a stale handle could come from a dead process with its pid).
uint64_t ProcessNonce() {
  static std::atomic<uint64_t> nonce{0};
  static std::atomic<pid_t> nonce_pid{0};
  const pid_t pid = getpid();
  if (nonce_pid.load(std::memory_order_acquire) != pid) {
    uint64_t fresh = 0;
    if (getrandom(&fresh, sizeof(fresh), GRND_NONBLOCK) != sizeof(fresh)) {
      timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      fresh = (static_cast<uint64_t>(ts.tv_sec) * 1000000007u) ^
              static_cast<uint64_t>(ts.tv_nsec) ^
              (static_cast<uint64_t>(pid) << 32);
    }
    nonce.store(fresh, std::memory_order_relaxed);
    nonce_pid.store(pid, std::memory_order_release);
  }
  return nonce.load(std::memory_order_relaxed);
}

template <typename T>
void Put(std::string* out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) {
    out->push_back(
        static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff));
  }
}

template <typename T>
T Get(absl::string_view bytes, size_t offset) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    v |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[offset + i]))
         << (8 * i);
  }
  return static_cast<T>(v);
}

absl::Status Bad(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("shared array handle: ", what));
}

}  // namespace

BufferId BufferId::Next() {
  BufferId id;
  id.nonce = ProcessNonce();
  id.pid = static_cast<uint32_t>(getpid());
  id.serial = next_serial.fetch_add(1, std::memory_order_relaxed);
  return id;
}

std::string BufferId::ToString() const {
  return absl::StrCat(pid, ".", serial, ".",
                      absl::Hex(nonce, absl::kZeroPad16));
}

std::string MemfdName(const BufferId& id) {
  return absl::StrCat("procpool-array:", id.ToString());
}

std::string EncodeHandle(const SharedArrayHandle& h) {
  std::string out;
  out.reserve(kHandleHeaderBytes + h.type_name.size());
  out.append(kMagic, sizeof(kMagic));
  Put<uint8_t>(&out, kVersion);
  Put<uint8_t>(&out, static_cast<uint8_t>(h.access));
  Put<uint16_t>(&out, 0);
  Put<uint32_t>(&out, h.id.pid);
  Put<uint32_t>(&out, 0);
  Put<uint64_t>(&out, h.id.serial);
  Put<uint64_t>(&out, h.id.nonce);
  Put<uint64_t>(&out, h.byte_size);
  Put<uint32_t>(&out, h.element_size);
  Put<uint32_t>(&out, static_cast<uint32_t>(h.type_name.size()));
  out.append(h.type_name);
  return out;
}

absl::StatusOr<SharedArrayHandle> DecodeHandle(absl::string_view bytes) {
  if (bytes.size() < kHandleHeaderBytes) {
    return Bad(absl::StrCat("truncated: ", bytes.size(), " bytes, at least ",
                            kHandleHeaderBytes, " needed"));
  }
  if (std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return Bad(absl::StrCat("bad magic \"",
                            absl::CHexEscape(bytes.substr(0, 4)),
                            "\" (not a shared array handle)"));
  }
  const uint8_t version = Get<uint8_t>(bytes, 4);
  if (version != kVersion) {
    return Bad(absl::StrCat("version ", version, ", this build reads ",
                            kVersion, " (processes of another procpool?)"));
  }
  SharedArrayHandle h;
  const uint8_t access = Get<uint8_t>(bytes, 5);
  if (access != static_cast<uint8_t>(SharedAccess::kReadOnly) &&
      access != static_cast<uint8_t>(SharedAccess::kReadWrite)) {
    return Bad(absl::StrCat("unknown access mode ", access));
  }
  h.access = static_cast<SharedAccess>(access);
  if (Get<uint16_t>(bytes, 6) != 0 || Get<uint32_t>(bytes, 12) != 0) {
    return Bad("reserved bytes are not zero");
  }
  h.id.pid = Get<uint32_t>(bytes, 8);
  h.id.serial = Get<uint64_t>(bytes, 16);
  h.id.nonce = Get<uint64_t>(bytes, 24);
  if (h.id.pid == 0 || h.id.serial == 0) {
    return Bad(absl::StrCat("buffer id ", h.id.ToString(),
                            " has a zero pid or serial"));
  }
  h.byte_size = Get<uint64_t>(bytes, 32);
  h.element_size = Get<uint32_t>(bytes, 40);
  if (h.element_size == 0 || h.element_size > kMaxElementSize) {
    return Bad(absl::StrCat("element size ", h.element_size, ", not in 1..",
                            kMaxElementSize));
  }
  if (h.byte_size > kMaxHandleBytes || h.byte_size % h.element_size != 0) {
    return Bad(absl::StrCat(
        "byte size ", h.byte_size, " is not a whole number of ", h.element_size,
        "-byte elements of at most ", kMaxHandleBytes, " bytes"));
  }
  const uint32_t name_size = Get<uint32_t>(bytes, 44);
  if (name_size == 0 || name_size > kMaxTypeNameBytes) {
    return Bad(absl::StrCat("type name of ", name_size, " bytes, not in 1..",
                            kMaxTypeNameBytes));
  }
  if (bytes.size() != kHandleHeaderBytes + name_size) {
    return Bad(absl::StrCat(bytes.size(), " bytes where the type name makes ",
                            kHandleHeaderBytes + name_size,
                            bytes.size() < kHandleHeaderBytes + name_size
                                ? " (truncated)"
                                : " (trailing bytes)"));
  }
  h.type_name = std::string(bytes.substr(kHandleHeaderBytes));
  for (char c : h.type_name) {
    if (c <= ' ' || c > '~') {
      return Bad(absl::StrCat("type name \"", absl::CHexEscape(h.type_name),
                              "\" is not printable ASCII"));
    }
  }
  return h;
}

absl::Status CheckHandleType(const SharedArrayHandle& h,
                             absl::string_view type_name, size_t element_size) {
  if (h.type_name != type_name || h.element_size != element_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shared array handle: buffer ", h.id.ToString(), " holds ", h.type_name,
        " (", h.element_size, " bytes each), expected ", type_name, " (",
        element_size,
        " bytes each): the task's parameter type differs from the array "
        "passed"));
  }
  return absl::OkStatus();
}

}  // namespace procpool
