// The value codec: task arguments and results to bytes and back.
//
// EncodeValue(v) turns a value into a compact byte string;
// DecodeValue<T>(bytes) turns it back. The bytes carry no type information:
// both sides must agree on T, which the executor checks once per worker by
// comparing TypeSignature<T>() strings (stable names such as "vector<string>";
// identical in every binary built from the same code, independent of addresses
// and ASLR).
//
// The pieces: Writer and Reader, the bytes (byte_io.h, included here); this
// header, Codec<T> and the arithmetic and std::string codecs; codec_std.h, the
// standard containers (included at the end); task_value.h, how a task's
// argument tuple and result travel (a lone std::string is its bytes; decoding
// bytes the caller gives up).
//
// Encodable types, nested freely:
//   bool, char, signed/unsigned 8..64-bit integers, float, double
//       (long double is a compile error: its layout differs between platforms),
//   std::string, std::vector (incl. vector<bool>), std::array, std::map,
//   std::unordered_map, std::set, std::unordered_set, std::pair, std::tuple
//   (incl. tuple<>), std::optional, std::variant, std::monostate,
//   and user types that plug in (below).
// Decoding needs T to be default-constructible; values are decoded in place.
//
// Wire format (little-endian; "varint" is unsigned LEB128, at most 10 bytes and
// minimal, i.e. never ending in a 0x00 continuation byte):
//   bool                 1 byte, 0 or 1
//   char, [u]intN, float, double
//                        sizeof(T) bytes: two's complement / IEEE 754
//   std::string          varint length, then the bytes
//   vector<T>            varint count, then the elements (arithmetic T: one
//                        block; vector<bool>: bits packed LSB first, padding 0)
//   array<T, N>          the N elements, no count
//   map, unordered_map   varint count, then key, value, key, value, ...
//   set, unordered_set   varint count, then the elements
//   pair, tuple          the elements in order
//   optional<T>          1 byte 0 (empty) or 1 followed by the value
//   variant<Ts...>       varint index, then that alternative
//   monostate            nothing
//
// Bad input. Decoding never crashes, throws, reads out of bounds or allocates
// in proportion to a length prefix it has not yet seen the bytes for.
// Truncated or corrupted bytes give kDataLoss whose message says what was
// wrong ("truncated: need 8 bytes for f64, 3 left", "invalid bool byte 0x07",
// "duplicate key in map<string,i32>"), prefixed by DecodeValue with the type
// and the byte offset. A failed allocation is kResourceExhausted; an exception
// thrown by a user decoder becomes kInternal. Duplicate keys in maps and sets
// are rejected. Elements that encode to zero bytes (monostate, tuple<>) are
// limited to about a million per decode (Reader::kEmptyElementBudgetBytes),
// and user types may nest at most Reader::kMaxNestingDepth deep.
//
// Plugging in a user type, way (a): specialize procpool::Codec<T> with all
// three static members.
//   struct Point { int32_t x = 0, y = 0; };
//   namespace procpool {
//   template <>
//   struct Codec<Point> {
//     static void Encode(Writer& w, const Point& p) {
//       w.WriteFixed(p.x);
//       w.WriteFixed(p.y);
//     }
//     static absl::Status Decode(Reader& r, Point* p) {
//       RETURN_IF_ERROR(r.ReadFixed(&p->x));
//       return r.ReadFixed(&p->y);
//     }
//     static std::string Signature() { return "Point"; }
//   };
//   }  // namespace procpool
//
// Way (b): free functions found by argument-dependent lookup, declared in the
// type's own namespace. ProcpoolSignature is optional; without it the
// signature is the demangled type name ("shop::Order").
//   namespace shop {
//   struct Order { std::string item; std::vector<int64_t> quantities; };
//   void ProcpoolEncode(procpool::Writer& w, const Order& o) {
//     procpool::WriteValue(w, o.item);
//     procpool::WriteValue(w, o.quantities);
//   }
//   absl::Status ProcpoolDecode(procpool::Reader& r, Order* o) {
//     RETURN_IF_ERROR(procpool::ReadValue(r, &o->item));
//     return procpool::ReadValue(r, &o->quantities);
//   }
//   std::string ProcpoolSignature(const Order*) { return "shop.Order/v1"; }
//   }  // namespace shop
//
// A user decoder reads only through the Reader and returns its errors (an
// exception it throws becomes a Status). `*v` is default-constructed, except
// inside an object the caller reuses with DecodeValueInto: then it must set
// every field, not append. A recursive user type (struct Node {
// std::vector<Node> kids; }) reads its children with ReadValue or through a
// container, so that the depth limit applies.
//
// A type with no codec is a compile error that names it, e.g. for
// EncodeValue(Unknown{}) GCC prints:
//   error: static assertion failed: procpool: no Codec for this type. ...
//   note: 'procpool::internal::TypeHasNoProcpoolCodec<Unknown>::value'
//         evaluates to false
//
// Example:
//   using Args = std::tuple<int, std::string>;
//   std::string bytes = procpool::EncodeValue(Args(7, "x"));
//   ASSIGN_OR_RETURN(Args args, procpool::DecodeValue<Args>(bytes));
//   procpool::TypeSignature<Args>();  // "tuple<i32,string>"
//
// Thread safety: Writer and Reader are used by one thread at a time; the free
// functions are thread-safe.
#ifndef PROCPOOL_SERIALIZATION_CODEC_H_
#define PROCPOOL_SERIALIZATION_CODEC_H_

#include "serialization/byte_io.h"     // IWYU pragma: export
#include "serialization/codec_core.h"  // IWYU pragma: export
#include "serialization/codec_std.h"   // IWYU pragma: export

#endif  // PROCPOOL_SERIALIZATION_CODEC_H_
