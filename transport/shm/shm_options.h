// The shm transport's options, and the constants of its endpoint spec, its
// frames and its shared memory layout (shm_transport.h describes them).
// Included by shm_transport.h; the transport's parts (shm_segment.h,
// shm_channel.h) use it without depending on the transport.
//
// Thread safety: constants and a value type.
#ifndef PROCPOOL_TRANSPORT_SHM_SHM_OPTIONS_H_
#define PROCPOOL_TRANSPORT_SHM_SHM_OPTIONS_H_

#include <cstddef>
#include <cstdint>

namespace procpool {

// The spec's prefix; the full spec is "shm/1;ring=<bytes>".
inline constexpr char kShmEndpointSpecPrefix[] = "shm/1";

// Frame layout (shm_transport.h, transport/frame_header.h).
inline constexpr char kShmFrameMagic[4] = {'P', 'P', 'S', '1'};
inline constexpr size_t kShmFrameHeaderSize = 16;

// Longest payload accepted on the wire (1 TiB); a longer length is treated as
// corruption.
inline constexpr uint64_t kShmMaxFrameLength = uint64_t{1} << 40;

// Size of the control page at the start of the memfd.
inline constexpr size_t kShmControlBytes = 4096;

// Ring sizes accepted: powers of two in this range.
inline constexpr size_t kShmMinRingBytes = 4096;
inline constexpr size_t kShmMaxRingBytes = size_t{1} << 30;

// Bytes of each ring in the registered transport.
inline constexpr size_t kShmDefaultRingBytes = size_t{1} << 20;

// How long the child spins before it sleeps.
inline constexpr int64_t kShmDefaultSpinNs = 30'000;

// Bytes one Pump() reads at most.
inline constexpr size_t kShmMaxReadPerPump = size_t{32} << 20;

struct ShmTransportOptions {
  // Bytes of each of the two rings: a power of two in
  // [kShmMinRingBytes, kShmMaxRingBytes].
  size_t ring_bytes = kShmDefaultRingBytes;
  // How long a child's blocking call spins before it sleeps (0: never spins).
  // Only the side that calls OpenChild() uses it.
  int64_t spin_ns = kShmDefaultSpinNs;
  // Spin only while the machine has a CPU to spare: at most one runnable
  // thread more than CPUs (spin_gate.h; "Waiting" in shm_transport.h). false
  // spins whatever the load (tests of the wake-up protocol; measuring what
  // spinning buys on a busy machine).
  bool spin_only_with_idle_cpu = true;
};

}  // namespace procpool

#endif  // PROCPOOL_TRANSPORT_SHM_SHM_OPTIONS_H_
