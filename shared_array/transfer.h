// ArrayTransfer: how the shared arrays inside one frame's values travel, and
// the scope that makes it the current thread's while its values are encoded
// or decoded.
//
// A shared array goes by reference where the channel carries descriptors
// (unix, shm: transport.h's CarriesDescriptors): the frame holds its handle
// and the index of its memfd among the descriptors sent beside the frame
// (SCM_RIGHTS). Elsewhere (capnp, to another host), or with no transfer in
// scope (a value encoded outside the pool), it goes by value: its bytes are
// in the frame and the receiver makes a new array of them, so task code is
// the same everywhere; what a task writes into an output array's copy comes
// back with its result (CopyOutputsBack, below).
//
// The codec (shared_array_codec.h) asks CurrentArrayTransfer() because the
// value codec's Encode/Decode take no context; whoever encodes or decodes a
// frame's values (the pool, the worker loop) opens an ArrayTransferScope
// around that, on the same thread.
//
// Example (the sending side):
//   ArrayTransfer transfer(ArrayTransfer::Way::kByReference);
//   std::string blob;
//   {
//     ArrayTransferScope scope(&transfer);
//     blob = EncodeValue(args);
//   }
//   channel->SendPartsWithDescriptors({blob}, owner, transfer.OutgoingFds());
//   // keep `transfer` (it holds the buffers) until the frame is sent
//
// A descriptor crosses once per receiver: the arrays a receiver holds
// already go as a handle only, and the frame lists their indices
// (Call/Result::held_arrays); the descriptors beside it are the other
// arrays', in index order. The pool decides that per worker when it hands a
// call out (peer_arrays.h); a worker sends an array that came in the same
// call back without its descriptor (the parent holds the call's arrays
// until the result is decoded: Keep()).
//
// Example (the receiving side, a worker):
//   ArrayTransfer transfer(ArrayTransfer::Way::kByReference);
//   ASSIGN_OR_RETURN(auto fds, channel->TakeDescriptors(call.descriptors));
//   transfer.SetIncoming(std::move(fds), call.held_arrays, &worker_cache);
//   ArrayTransferScope scope(&transfer);
//   ASSIGN_OR_RETURN(auto args, DecodeValue<Args>(blob));
//
// Thread safety: an ArrayTransfer is used by one thread at a time; the scope
// is per thread and nests (the inner one wins until it ends).
#ifndef PROCPOOL_SHARED_ARRAY_TRANSFER_H_
#define PROCPOOL_SHARED_ARRAY_TRANSFER_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/unique_fd.h"
#include "shared_array/handle.h"
#include "shared_array/shared_buffer.h"

namespace procpool {

class MappingCache;

class ArrayTransfer {
 public:
  enum class Way { kByValue, kByReference };

  explicit ArrayTransfer(Way way) : way_(way) {}
  ArrayTransfer(const ArrayTransfer&) = delete;
  ArrayTransfer& operator=(const ArrayTransfer&) = delete;

  Way way() const { return way_; }

  // Sending. Records `buffer` to go beside the frame and returns its index
  // there; a buffer already recorded (the same array twice in one frame)
  // keeps its index. The transfer holds a copy of each buffer, so their
  // descriptors stay open until it is destroyed.
  size_t Add(const SharedBuffer& buffer);
  // The descriptors to send, in index order, of the recorded buffers that
  // are not held_outgoing() (the buffers' own: a channel sends duplicates).
  std::vector<int> OutgoingFds() const;
  // The indices (increasing) of the recorded buffers that go without their
  // descriptor: they came in with this frame's incoming ones (Resolve), so
  // the other side holds them.
  const std::vector<uint32_t>& held_outgoing() const { return held_outgoing_; }
  size_t outgoing_count() const { return outgoing_.size(); }
  // The recorded buffers, in index order, taken out of the transfer (whose
  // owner then keeps them open until the frame is sent).
  std::vector<SharedBuffer> TakeOutgoing() {
    std::vector<SharedBuffer> out;
    out.swap(outgoing_);
    return out;
  }

  // Receiving. The descriptors that came with the frame, in index order;
  // the indices (increasing) of the frame's arrays that came without one
  // (the frame's held_arrays); and the receiver's mapping cache (a
  // worker's), or null to map each buffer afresh (the parent).
  void SetIncoming(std::vector<UniqueFd> fds, std::vector<uint32_t> held,
                   MappingCache* cache);

  // Keeps `buffers` open until the transfer goes (the parent: the call's
  // arrays, which its result may name as held).
  void Keep(std::vector<SharedBuffer> buffers) { kept_ = std::move(buffers); }

  // The buffer that `handle` names, the frame's array `index`. Held (no
  // descriptor came): the cache's entry, or, without a cache, the live
  // buffer of this process; kDataLoss if there is none. Else its memfd is
  // the next incoming descriptor: kDataLoss if none came; what
  // SharedBuffer::Attach or MappingCache::Insert say of a forged, stale or
  // mismatched handle. With a cache, a buffer it holds is taken from it
  // without the descriptor.
  absl::StatusOr<SharedBuffer> Resolve(const SharedArrayHandle& handle,
                                       size_t index);

  // Output arrays by value (a pool whose workers get copies: the capnp
  // transport, remote workers). With CopyOutputsBack() (the pool's Submit
  // and Map), an output array (kOutput) encoded by value goes with its index
  // among the frame's output arrays (AddOutputCopy); the receiver keeps its
  // copy (KeepOutputCopy) and sends back the bytes its task changed
  // (TakeOutputWrites, output_writes.h), which the sender writes into the
  // array itself before the call's futures complete (SetOutputWrites, then
  // ApplyOutputWrites). Without it (a task's result), such an array goes as
  // a plain copy.
  void CopyOutputsBack() { copy_outputs_back_ = true; }
  bool copies_outputs_back() const { return copy_outputs_back_; }
  // Sending: records output array `buffer` and returns its index; `*first`
  // says whether it is new to this frame (then its bytes go with it; the same
  // array again is its index alone).
  size_t AddOutputCopy(const SharedBuffer& buffer, bool* first);
  // The recorded output arrays, by index, taken out of the transfer: the
  // targets of the writes that come back.
  std::vector<SharedBuffer> TakeOutputCopies() {
    std::vector<SharedBuffer> out;
    out.swap(output_copies_);
    return out;
  }
  // Receiving: `copy` is the frame's output array `index`, as it came (its
  // bytes now are what its changes are measured against); OutputCopy(index)
  // is it again for a later mention in the frame (kDataLoss if it never
  // came). TakeOutputWrites: the encoded changes to every kept copy
  // (OutputWrites; empty if none), and the copies are let go.
  void KeepOutputCopy(size_t index, SharedBuffer copy);
  absl::StatusOr<SharedBuffer> OutputCopy(size_t index) const;
  std::string TakeOutputWrites();
  // Receiving the answer: `writes` (its TakeOutputWrites) for `targets`
  // (the sender's TakeOutputCopies), applied by ApplyOutputWrites (once:
  // what OutputWrites::Apply says; OK when there were none).
  void SetOutputWrites(std::string writes, std::vector<SharedBuffer> targets) {
    output_writes_ = std::move(writes);
    output_copies_ = std::move(targets);
  }
  absl::Status ApplyOutputWrites();

  // Decoding: why a shared array the frame names by reference could not be
  // used (a forged or stale handle, another element type, a descriptor that
  // is not its memfd, no memory to map it), as the codec noted it; such an
  // error fails the one task that was given the array, not the whole
  // conversation. Taken: the next call returns OK until another is noted.
  void NoteArrayError(const absl::Status& status) {
    if (array_error_.ok()) array_error_ = status;
  }
  absl::Status TakeArrayError() {
    absl::Status error = std::move(array_error_);
    array_error_ = absl::OkStatus();
    return error;
  }

 private:
  const Way way_;
  std::vector<SharedBuffer> outgoing_;
  std::vector<UniqueFd> incoming_;
  // The buffer each incoming descriptor became (without a cache, so that the
  // same array twice in a frame is mapped once).
  std::vector<std::optional<SharedBuffer>> resolved_;
  std::vector<uint32_t> held_incoming_;  // SetIncoming's `held`
  // The ids Resolve gave out: the other side holds them while this frame is
  // answered, so Add() records them as held.
  std::vector<BufferId> came_;
  std::vector<uint32_t> held_outgoing_;
  std::vector<SharedBuffer> kept_;
  MappingCache* cache_ = nullptr;
  absl::Status array_error_;
  bool copy_outputs_back_ = false;
  // Sending, and receiving the answer: the output arrays by index.
  std::vector<SharedBuffer> output_copies_;
  std::string output_writes_;
  // Receiving: the copies and the bytes each came with.
  struct KeptCopy {
    size_t index;
    SharedBuffer copy;
    std::string original;
  };
  std::vector<KeptCopy> kept_copies_;
};

// The transfer of the frame this thread is encoding or decoding, or null.
ArrayTransfer* CurrentArrayTransfer();

// Makes `transfer` the current thread's until the scope ends.
class ArrayTransferScope {
 public:
  explicit ArrayTransferScope(ArrayTransfer* transfer);
  ~ArrayTransferScope();
  ArrayTransferScope(const ArrayTransferScope&) = delete;
  ArrayTransferScope& operator=(const ArrayTransferScope&) = delete;

 private:
  ArrayTransfer* const previous_;
};

}  // namespace procpool

#endif  // PROCPOOL_SHARED_ARRAY_TRANSFER_H_
