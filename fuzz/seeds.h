// Seed inputs for the fuzz targets: valid encodings, built from code so that
// they follow the formats as they change (nothing binary is checked in).
//
// tools/fuzz.sh writes them to files (write_seeds.cc) as libFuzzer's starting
// corpus; the replay tests of fuzz/BUILD run every seed through the target.
//
// Example:
//   for (const std::string& frame : procpool::fuzz::WireSeeds()) ...
#ifndef PROCPOOL_FUZZ_SEEDS_H_
#define PROCPOOL_FUZZ_SEEDS_H_

#include <string>
#include <vector>

namespace procpool {
namespace fuzz {

// One frame of each message kind (and variants of them), as wire_fuzzer
// takes them.
std::vector<std::string> WireSeeds();

// Each sample value of codec_fuzz_types.h, behind its selector byte, as
// codec_fuzzer takes them.
std::vector<std::string> CodecSeeds();

// A mode byte, then a peer's raw bytes (mode 0) or masks over a real
// parent's handshake bytes (mode 1), as handshake_fuzzer takes them.
std::vector<std::string> HandshakeSeeds();

// Shared-array handles (read-only and read-write, several element types), as
// handle_fuzzer takes them.
std::vector<std::string> HandleSeeds();

// The seeds of the target named "wire", "codec", "handshake" or "handle";
// empty for another name.
std::vector<std::string> SeedsFor(const std::string& target);

}  // namespace fuzz
}  // namespace procpool

#endif  // PROCPOOL_FUZZ_SEEDS_H_
