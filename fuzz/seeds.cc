#include "fuzz/seeds.h"

#include <cstddef>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "fuzz/codec_fuzz_types.h"
#include "serialization/codec.h"
#include "serialization/wire.h"
#include "shared_array/handle.h"

namespace procpool {
namespace fuzz {
namespace {

template <size_t I>
void AddCodecSeeds(std::vector<std::string>* seeds) {
  using T = std::tuple_element_t<I, FuzzTypes>;
  for (const T& value : Samples<T>()) {
    seeds->push_back(std::string(1, static_cast<char>(I)) + EncodeValue(value));
  }
}

template <size_t... I>
std::vector<std::string> AllCodecSeeds(std::index_sequence<I...>) {
  std::vector<std::string> seeds;
  (AddCodecSeeds<I>(&seeds), ...);
  return seeds;
}

}  // namespace

std::vector<std::string> WireSeeds() {
  using namespace ::procpool::wire;  // NOLINT: the message structs
  const std::string args = EncodeValue(std::tuple<int32_t, std::string>(7, "x"));
  const std::vector<Message> messages = {
      Config{},
      Config{kProtocolVersion, CallSpec{"Init", args}, 100, 250, 1 << 30},
      Hello{kProtocolVersion, 4242, 0x0123456789abcdefULL,
            {{"Square", "i32(i32)"}, {"Concat", "string(string,string)"}}},
      Call{7, "Square", {args}},
      Call{8, "Map", {args, args, ""}},
      Result{7, {Outcome{true, args, {}}}},
      Result{8,
             {Outcome{true, "", {}},
              Outcome{false, "", {"std::runtime_error", "boom", "at f()"}}}},
      InitFailed{{"std::invalid_argument", "bad", ""}},
      Shutdown{},
      Fatal{{"procpool::ProtocolError", "undecodable call", ""}},
      // Frames that decode but lie (the fault harness's lying modes,
      // testing/fault_injection/fault_injection.h; the pool must break on
      // each, executor/internal/pool_frames.cc): a Hello with another
      // protocol version, Results for a work id never sent, with no outcome
      // or more outcomes than the Call's elements, with more descriptors
      // than a frame may carry, and kinds only the parent sends.
      Hello{kProtocolVersion + 1, 4242, 0, {}},
      Hello{0, -1, ~0ULL, {{"Square", "i32(string)"}}},
      Result{uint64_t{1} << 48, {Outcome{true, "", {}}}},
      Result{0, {}},
      Result{7, {Outcome{true, args, {}}, Outcome{true, args, {}}}},
      Result{7, {Outcome{true, args, {}}}, {}, {}, 65},
      Config{kProtocolVersion + 1, std::nullopt, -1, 0, -1},
      Call{~0ULL, "", {}},
      Call{7, "Square", {args}, {}, 65},
      // Protocol 5: arrays that come without a descriptor, and ones to drop.
      Call{7, "Sum", {args}, {}, 1, {0, 2, 9}, {ArrayId{1, 2, 3}}},
      Result{7, {Outcome{true, args, {}}}, {}, {}, 0, {0, 1}},
      // Protocol 6: the bytes a task changed in an output array's copy.
      Result{7,
             {Outcome{true, args, {}}},
             {},
             {},
             0,
             {},
             std::string("\x00\x10\x00\x01\x07\x00\x00", 7)},
  };
  std::vector<std::string> seeds;
  for (const Message& m : messages) seeds.push_back(EncodeMessage(m));
  // Protocol 7: strings in pieces (tails), with 16-byte pieces here.
  SetPieceBytesForTesting(16);
  Result pieces{7, {Outcome{true, std::string(40, 'v'), {}}}};
  pieces.output_writes = std::string(20, 'w');
  seeds.push_back(EncodeMessage(pieces));
  seeds.push_back(EncodeMessage(Call{7, "Square", {std::string(33, 'a'), "b"}}));
  SetPieceBytesForTesting(0);
  return seeds;
}

std::vector<std::string> CodecSeeds() {
  return AllCodecSeeds(std::make_index_sequence<kNumTypes>());
}

std::vector<std::string> HandshakeSeeds() {
  const std::string hello = "PPAUTH01" + std::string(32, 'n');
  const std::string proof(32, 'p');
  const std::string frame = EncodeMessage(wire::Config{});
  const std::string zeros(8 + 32 + 32 + 1, '\0');
  std::string nonce_changed = zeros, proof_changed = zeros,
              verdict_changed = zeros;
  nonce_changed[8] = 1;
  proof_changed[40] = 1;
  verdict_changed[72] = 'Y' ^ 'N';
  return {
      // Mode 0: a peer's raw bytes.
      std::string(1, '\0') + hello + proof + "Y" + frame,
      std::string(1, '\0') + hello + proof,
      std::string(1, '\0') + "GET / HTTP/1.1\r\nHost: procpool\r\n\r\n",
      std::string(1, '\0') + "PPAUTH01",
      // Mode 1: masks over a real parent's Hello, Proof and Verdict.
      std::string(1, '\1'),
      std::string(1, '\1') + zeros,
      std::string(1, '\1') + nonce_changed,
      std::string(1, '\1') + proof_changed,
      std::string(1, '\1') + verdict_changed,
  };
}

std::vector<std::string> HandleSeeds() {
  std::vector<std::string> seeds;
  SharedArrayHandle h;
  h.id = BufferId{4242, 7, 0x0123456789abcdefULL};
  h.byte_size = 8 << 20;
  h.element_size = 8;
  h.type_name = "f64";
  h.access = SharedAccess::kReadOnly;
  seeds.push_back(EncodeHandle(h));
  h.access = SharedAccess::kReadWrite;
  h.byte_size = 0;
  seeds.push_back(EncodeHandle(h));
  h.element_size = 12;
  h.byte_size = 36;
  h.type_name = "N8procpool5PointE";
  seeds.push_back(EncodeHandle(h));
  // The same target reads output arrays' changes (shared_array/
  // output_writes.h) for two arrays of 16 and 64 bytes: runs in each.
  seeds.push_back(std::string("\x00\x10\x00\x01\x07\x03\x02\x08\x09\x00\x00"
                              "\x01\x40\x3f\x01\x05\x00\x00",
                              18));
  return seeds;
}

std::vector<std::string> SeedsFor(const std::string& target) {
  if (target == "wire") return WireSeeds();
  if (target == "codec") return CodecSeeds();
  if (target == "handshake") return HandshakeSeeds();
  if (target == "handle") return HandleSeeds();
  return {};
}

}  // namespace fuzz
}  // namespace procpool
