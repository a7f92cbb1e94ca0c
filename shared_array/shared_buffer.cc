#include "shared_array/shared_buffer.h"

#include <atomic>
#include <limits>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "shared_array/shared_region.h"

namespace procpool {
namespace shared_array_internal {

struct BufferState {
  BufferState(const BufferId& id_in, SharedArrayMode mode_in,
              absl::string_view type_name_in, size_t element_size_in,
              SharedRegion region_in)
      : id(id_in),
        mode(mode_in),
        type_name(type_name_in),
        element_size(element_size_in),
        address(region_in.address()),
        byte_size(region_in.size()),
        region(std::move(region_in)) {}

  // Constant after construction (Seal() keeps the address).
  const BufferId id;
  const SharedArrayMode mode;
  const std::string type_name;
  const size_t element_size;
  void* const address;
  const size_t byte_size;

  mutable absl::Mutex mu;
  SharedRegion region ABSL_GUARDED_BY(mu);

  ~BufferState();
};

namespace {

// Every live buffer of this process by id: a buffer that comes back (a task
// returns an array it was given, or the parent sends a worker an array that
// worker made) is the mapping this process already has, not a second one.
class LiveBuffers {
 public:
  static LiveBuffers& Get() {
    static LiveBuffers* const live = new LiveBuffers();
    return *live;
  }

  void Add(const std::shared_ptr<BufferState>& state) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    by_id_[state->id] = Entry{state.get(), state};
  }
  // Called by `state`'s destructor.
  void Remove(const BufferState* state) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = by_id_.find(state->id);
    if (it == by_id_.end() || it->second.raw != state) return;
    by_id_.erase(it);
    released_[released_count_ % kReleaseLog] = state->id;
    ++released_count_;
    released_total_.store(released_count_, std::memory_order_release);
  }
  bool ReleasedSince(uint64_t* cursor, std::vector<BufferId>* out)
      ABSL_LOCKS_EXCLUDED(mu_) {
    // Nothing released since: no lock (every hand-out to a worker that
    // ever held arrays asks; peer_arrays.cc).
    if (released_total_.load(std::memory_order_acquire) == *cursor) {
      return true;
    }
    absl::MutexLock lock(&mu_);
    const uint64_t from = *cursor;
    *cursor = released_count_;
    if (released_count_ - from > kReleaseLog) return false;
    if (out != nullptr) {
      for (uint64_t i = from; i < released_count_; ++i) {
        out->push_back(released_[i % kReleaseLog]);
      }
    }
    return true;
  }
  std::shared_ptr<BufferState> Find(const BufferId& id) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : it->second.state.lock();
  }

 private:
  struct Entry {
    const BufferState* raw;
    std::weak_ptr<BufferState> state;
  };
  static constexpr uint64_t kReleaseLog = 1024;

  absl::Mutex mu_;
  absl::flat_hash_map<BufferId, Entry> by_id_ ABSL_GUARDED_BY(mu_);
  // The ids erased from by_id_, a ring of the last kReleaseLog.
  BufferId released_[kReleaseLog] ABSL_GUARDED_BY(mu_);
  uint64_t released_count_ ABSL_GUARDED_BY(mu_) = 0;
  // released_count_, for reading without mu_ (it only grows).
  std::atomic<uint64_t> released_total_{0};
};

}  // namespace

BufferState::~BufferState() { LiveBuffers::Get().Remove(this); }

}  // namespace shared_array_internal

using shared_array_internal::BufferState;
using shared_array_internal::LiveBuffers;

absl::StatusOr<SharedBuffer> SharedBuffer::Create(size_t element_count,
                                                  size_t element_size,
                                                  absl::string_view type_name,
                                                  SharedArrayMode mode) {
  if (element_size == 0 || element_size > kMaxElementSize ||
      type_name.empty() || type_name.size() > kMaxTypeNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("shared array: element type \"", type_name, "\" of ",
                     element_size, " bytes: need 1..", kMaxElementSize,
                     " bytes and a name of 1..", kMaxTypeNameBytes));
  }
  if (element_count > kMaxHandleBytes / element_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("shared array: ", element_count, " elements of ",
                     element_size, " bytes is more than the ", kMaxHandleBytes,
                     " bytes an array may hold"));
  }
  const size_t bytes = element_count * element_size;
  const BufferId id = BufferId::Next();
  const std::string name = MemfdName(id);
  absl::StatusOr<SharedRegion> region =
      mode == SharedArrayMode::kOutput ? SharedRegion::CreateOutput(bytes, name)
                                       : SharedRegion::Create(bytes, name);
  if (!region.ok()) return region.status();
  auto state = std::make_shared<BufferState>(id, mode, type_name, element_size,
                                             *std::move(region));
  LiveBuffers::Get().Add(state);
  return SharedBuffer(std::move(state));
}

absl::StatusOr<SharedBuffer> SharedBuffer::Attach(
    const SharedArrayHandle& handle, UniqueFd fd) {
  ASSIGN_OR_RETURN(SharedRegion region,
                   SharedRegion::Attach(std::move(fd), handle.byte_size,
                                        handle.access, MemfdName(handle.id)));
  const SharedArrayMode mode = handle.access == SharedAccess::kReadOnly
                                   ? SharedArrayMode::kImmutable
                                   : SharedArrayMode::kOutput;
  auto state = std::make_shared<BufferState>(
      handle.id, mode, handle.type_name, handle.element_size, std::move(region));
  LiveBuffers::Get().Add(state);
  return SharedBuffer(std::move(state));
}

bool SharedBuffer::IsLive(const BufferId& id) {
  return LiveBuffers::Get().Find(id) != nullptr;
}

bool SharedBuffer::ReleasedSince(uint64_t* cursor,
                                 std::vector<BufferId>* out) {
  return LiveBuffers::Get().ReleasedSince(cursor, out);
}

absl::StatusOr<SharedBuffer> SharedBuffer::FindLive(
    const SharedArrayHandle& handle) {
  std::shared_ptr<BufferState> live = LiveBuffers::Get().Find(handle.id);
  if (live == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "shared array ", handle.id.ToString(), " is not held here"));
  }
  const SharedAccess access = live->mode == SharedArrayMode::kImmutable
                                  ? SharedAccess::kReadOnly
                                  : SharedAccess::kReadWrite;
  if (live->byte_size != handle.byte_size ||
      live->element_size != handle.element_size ||
      live->type_name != handle.type_name || access != handle.access) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shared array ", handle.id.ToString(), " is held here as ",
        live->byte_size, " bytes of ", live->type_name, " (",
        SharedAccessName(access), "), but the handle says ", handle.byte_size,
        " bytes of ", handle.type_name, " (", SharedAccessName(handle.access),
        "): a forged or corrupted handle"));
  }
  bool sealed;
  {
    absl::MutexLock lock(&live->mu);
    sealed = live->region.sealed();
  }
  if (access == SharedAccess::kReadOnly && !sealed) {
    return absl::FailedPreconditionError(
        absl::StrCat("shared array ", handle.id.ToString(),
                     " came back as read-only but is not sealed here"));
  }
  return SharedBuffer(std::move(live));
}

void* SharedBuffer::address() const {
  return state_ ? state_->address : nullptr;
}
size_t SharedBuffer::byte_size() const {
  return state_ ? state_->byte_size : 0;
}
size_t SharedBuffer::element_size() const {
  return state_ ? state_->element_size : 0;
}
absl::string_view SharedBuffer::type_name() const {
  return state_ ? absl::string_view(state_->type_name) : absl::string_view();
}
const BufferId& SharedBuffer::id() const {
  static const BufferId kNone;
  return state_ ? state_->id : kNone;
}
SharedArrayMode SharedBuffer::mode() const {
  return state_ ? state_->mode : SharedArrayMode::kImmutable;
}

bool SharedBuffer::writable() const {
  if (!state_) return false;
  absl::MutexLock lock(&state_->mu);
  return state_->region.writable();
}

bool SharedBuffer::sealed() const {
  if (!state_) return false;
  absl::MutexLock lock(&state_->mu);
  return state_->region.sealed();
}

absl::Status SharedBuffer::Seal() const {
  if (!state_) {
    return absl::FailedPreconditionError(
        "shared array: a default-constructed array holds no memory; "
        "construct it with a size (0 is fine)");
  }
  if (state_->mode == SharedArrayMode::kOutput) {
    return absl::FailedPreconditionError(
        absl::StrCat("shared array ", state_->id.ToString(),
                     ": an output array stays writable and cannot be sealed"));
  }
  absl::MutexLock lock(&state_->mu);
  return state_->region.Seal();
}

absl::StatusOr<SharedArrayHandle> SharedBuffer::Share() const {
  if (!state_ || state_->mode == SharedArrayMode::kImmutable) {
    RETURN_IF_ERROR(Seal());
  }
  SharedArrayHandle h;
  h.id = state_->id;
  h.byte_size = state_->byte_size;
  h.element_size = static_cast<uint32_t>(state_->element_size);
  h.type_name = state_->type_name;
  h.access = state_->mode == SharedArrayMode::kImmutable
                 ? SharedAccess::kReadOnly
                 : SharedAccess::kReadWrite;
  return h;
}

int SharedBuffer::fd() const {
  if (!state_) return -1;
  absl::MutexLock lock(&state_->mu);
  return state_->region.fd();
}

}  // namespace procpool
