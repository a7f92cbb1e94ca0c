// Codecs for the standard library types: vector, array, map, unordered_map,
// set, unordered_set, pair, tuple, optional, variant, monostate.
//
// Part of the value codec: include codec.h, which includes this file, not
// this. The wire format and the guarantees on bad input are described there.
//
// Decoding a container never trusts its count: a count is checked against the
// bytes left (each element takes at least kMinWireSize bytes) before any memory
// is reserved, and memory reserved up front is capped at about twice the bytes
// left; elements that take zero bytes are charged to the Reader's budget.
//
// Example:
//   using Index = std::map<std::string, std::vector<int32_t>>;
//   std::string bytes = procpool::EncodeValue(Index{{"a", {1, 2}}});
//   absl::StatusOr<Index> index = procpool::DecodeValue<Index>(bytes);
#ifndef PROCPOOL_SERIALIZATION_CODEC_STD_H_
#define PROCPOOL_SERIALIZATION_CODEC_STD_H_

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "serialization/codec_core.h"

namespace procpool {
namespace internal {

absl::Status CountError(uint64_t count, size_t min_size, size_t left,
                        absl::string_view signature);
absl::Status DuplicateKeyError(absl::string_view signature);
absl::Status InvalidTagError(absl::string_view what, uint64_t tag,
                             uint64_t limit, absl::string_view signature);
absl::Status PaddingBitsError(absl::string_view signature);

// Rejects a count of elements of container C that cannot fit in the bytes
// left, when every element takes at least kMin bytes.
template <typename C, size_t kMin>
absl::Status CheckCount(uint64_t count, const Reader& r) {
  if constexpr (kMin > 0) {
    if (ABSL_PREDICT_FALSE(count > r.remaining() / kMin)) {
      return CountError(count, kMin, r.remaining(), TypeSignature<C>());
    }
  }
  return absl::OkStatus();
}

// How many elements of `element_size` bytes to reserve for `count` (already
// checked): all of them unless that is more than about twice the bytes left.
inline size_t ReserveCount(uint64_t count, size_t element_size, size_t left) {
  const size_t budget = std::max<size_t>(size_t{1} << 20, 2 * left);
  return static_cast<size_t>(std::min<uint64_t>(count, budget / element_size));
}

// Decodes one element of a counted container; one that took no bytes is
// charged to the reader's empty-element budget.
template <typename T>
absl::Status DecodeCounted(Reader& r, T* v) {
  if constexpr (kMinWireSize < T >> 0) {
    return DecodeNested(r, v);
  } else {
    const size_t before = r.remaining();
    RETURN_IF_ERROR(DecodeNested(r, v));
    if (r.remaining() == before) return r.ChargeEmptyElement(sizeof(T));
    return absl::OkStatus();
  }
}

// "a,b,c" for the signatures of Ts.
template <typename... Ts>
std::string JoinSignatures() {
  std::string out;
  ((out += Codec<Ts>::Signature(), out += ','), ...);
  if (!out.empty()) out.pop_back();
  return out;
}

template <typename C, typename = void>
struct HasReserve : std::false_type {};
template <typename C>
struct HasReserve<C,
                  std::void_t<decltype(std::declval<C&>().reserve(size_t{0}))>>
    : std::true_type {};

// set and unordered_set: varint count, then the elements; duplicates rejected.
template <typename S>
struct SetCodec {
  using Key = typename S::key_type;
  static constexpr size_t kMinWireSize = 1;

  static void Encode(Writer& w, const S& s) {
    w.WriteVarint(s.size());
    for (const Key& k : s) Codec<Key>::Encode(w, k);
  }

  static absl::Status Decode(Reader& r, S* s) {
    return CatchExceptions([&]() -> absl::Status {
      uint64_t n = 0;
      RETURN_IF_ERROR(r.ReadVarint(&n));
      RETURN_IF_ERROR((CheckCount<S, internal::kMinWireSize<Key>>(n, r)));
      s->clear();
      if constexpr (HasReserve<S>::value) {
        s->reserve(ReserveCount(n, sizeof(Key), r.remaining()));
      }
      for (uint64_t i = 0; i < n; ++i) {
        Key k{};
        RETURN_IF_ERROR(DecodeCounted(r, &k));
        const size_t size_before = s->size();
        s->emplace_hint(s->end(), std::move(k));
        if (ABSL_PREDICT_FALSE(s->size() == size_before)) {
          return DuplicateKeyError(TypeSignature<S>());
        }
      }
      return absl::OkStatus();
    });
  }
};

// map and unordered_map: varint count, then key, value, ...; duplicate keys
// rejected.
template <typename M>
struct MapCodec {
  using Key = typename M::key_type;
  using Value = typename M::mapped_type;
  static constexpr size_t kMinWireSize = 1;

  static void Encode(Writer& w, const M& m) {
    w.WriteVarint(m.size());
    for (const auto& kv : m) {
      Codec<Key>::Encode(w, kv.first);
      Codec<Value>::Encode(w, kv.second);
    }
  }

  static absl::Status Decode(Reader& r, M* m) {
    constexpr size_t kMinEntry =
        internal::kMinWireSize<Key> + internal::kMinWireSize<Value>;
    return CatchExceptions([&]() -> absl::Status {
      uint64_t n = 0;
      RETURN_IF_ERROR(r.ReadVarint(&n));
      RETURN_IF_ERROR((CheckCount<M, kMinEntry>(n, r)));
      m->clear();
      if constexpr (HasReserve<M>::value) {
        m->reserve(
            ReserveCount(n, sizeof(typename M::value_type), r.remaining()));
      }
      for (uint64_t i = 0; i < n; ++i) {
        const size_t before = r.remaining();
        Key k{};
        RETURN_IF_ERROR(DecodeNested(r, &k));
        const size_t size_before = m->size();
        auto it = m->emplace_hint(m->end(), std::piecewise_construct,
                                  std::forward_as_tuple(std::move(k)),
                                  std::tuple<>());
        if (ABSL_PREDICT_FALSE(m->size() == size_before)) {
          return DuplicateKeyError(TypeSignature<M>());
        }
        RETURN_IF_ERROR(DecodeNested(r, &it->second));
        if constexpr (kMinEntry == 0) {
          if (r.remaining() == before) {
            RETURN_IF_ERROR(
                r.ChargeEmptyElement(sizeof(typename M::value_type)));
          }
        }
      }
      return absl::OkStatus();
    });
  }
};

}  // namespace internal

// vector<T>: varint count, then the elements; arithmetic T as one block.
template <typename T, typename A>
struct Codec<std::vector<T, A>> {
  using Vector = std::vector<T, A>;
  static constexpr size_t kMinWireSize = 1;

  static void Encode(Writer& w, const Vector& v) {
    w.WriteVarint(v.size());
    if constexpr (internal::kIsBlockCopyable<T>) {
      w.WriteBytes(v.data(), v.size() * sizeof(T));
    } else {
      for (const T& e : v) Codec<T>::Encode(w, e);
    }
  }

  static absl::Status Decode(Reader& r, Vector* v) {
    return internal::CatchExceptions([&]() -> absl::Status {
      uint64_t n = 0;
      RETURN_IF_ERROR(r.ReadVarint(&n));
      if constexpr (internal::kIsBlockCopyable<T>) {
        RETURN_IF_ERROR((internal::CheckCount<Vector, sizeof(T)>(n, r)));
        v->resize(n);
        return r.ReadBytes(v->data(), n * sizeof(T));
      } else {
        RETURN_IF_ERROR(
            (internal::CheckCount<Vector, internal::kMinWireSize<T>>(n, r)));
        v->clear();
        v->reserve(internal::ReserveCount(n, sizeof(T), r.remaining()));
        for (uint64_t i = 0; i < n; ++i) {
          RETURN_IF_ERROR(internal::DecodeCounted(r, &v->emplace_back()));
        }
        return absl::OkStatus();
      }
    });
  }

  static std::string Signature() {
    return "vector<" + Codec<T>::Signature() + ">";
  }
};

// vector<bool>: varint count, then the bits packed 8 to a byte, LSB first;
// the unused high bits of the last byte must be 0.
template <typename A>
struct Codec<std::vector<bool, A>> {
  using Vector = std::vector<bool, A>;
  static constexpr size_t kMinWireSize = 1;

  static void Encode(Writer& w, const Vector& v) {
    w.WriteVarint(v.size());
    uint8_t byte = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i]) byte |= static_cast<uint8_t>(1u << (i % 8));
      if (i % 8 == 7) {
        w.WriteFixed(byte);
        byte = 0;
      }
    }
    if (v.size() % 8 != 0) w.WriteFixed(byte);
  }

  static absl::Status Decode(Reader& r, Vector* v) {
    return internal::CatchExceptions([&]() -> absl::Status {
      uint64_t n = 0;
      RETURN_IF_ERROR(r.ReadVarint(&n));
      const uint64_t num_bytes = n / 8 + (n % 8 != 0);
      if (ABSL_PREDICT_FALSE(num_bytes > r.remaining())) {
        return internal::TruncatedError(num_bytes, r.remaining(),
                                        "vector<bool>");
      }
      ASSIGN_OR_RETURN(absl::string_view bits, r.ReadView(num_bytes));
      if (n % 8 != 0 && (static_cast<uint8_t>(bits.back()) >> (n % 8)) != 0) {
        return internal::PaddingBitsError("vector<bool>");
      }
      v->assign(n, false);
      for (size_t i = 0; i < n; ++i) {
        (*v)[i] = (static_cast<uint8_t>(bits[i / 8]) >> (i % 8)) & 1;
      }
      return absl::OkStatus();
    });
  }

  static std::string Signature() { return "vector<bool>"; }
};

// array<T, N>: the N elements, no count.
template <typename T, size_t N>
struct Codec<std::array<T, N>> {
  using Array = std::array<T, N>;
  static constexpr size_t kMinWireSize = N * internal::kMinWireSize<T>;

  static void Encode(Writer& w, const Array& a) {
    if constexpr (internal::kIsBlockCopyable<T>) {
      w.WriteBytes(a.data(), N * sizeof(T));
    } else {
      for (const T& e : a) Codec<T>::Encode(w, e);
    }
  }

  static absl::Status Decode(Reader& r, Array* a) {
    if constexpr (internal::kIsBlockCopyable<T>) {
      if (ABSL_PREDICT_FALSE(r.remaining() < N * sizeof(T))) {
        return internal::TruncatedError(N * sizeof(T), r.remaining(),
                                        TypeSignature<Array>());
      }
      return r.ReadBytes(a->data(), N * sizeof(T));
    } else {
      for (T& e : *a) RETURN_IF_ERROR(internal::DecodeNested(r, &e));
      return absl::OkStatus();
    }
  }

  static std::string Signature() {
    return "array<" + Codec<T>::Signature() + "," + std::to_string(N) + ">";
  }
};

template <typename K, typename V, typename C, typename A>
struct Codec<std::map<K, V, C, A>> : internal::MapCodec<std::map<K, V, C, A>> {
  static std::string Signature() {
    return "map<" + internal::JoinSignatures<K, V>() + ">";
  }
};

template <typename K, typename V, typename H, typename E, typename A>
struct Codec<std::unordered_map<K, V, H, E, A>>
    : internal::MapCodec<std::unordered_map<K, V, H, E, A>> {
  static std::string Signature() {
    return "unordered_map<" + internal::JoinSignatures<K, V>() + ">";
  }
};

template <typename K, typename C, typename A>
struct Codec<std::set<K, C, A>> : internal::SetCodec<std::set<K, C, A>> {
  static std::string Signature() {
    return "set<" + Codec<K>::Signature() + ">";
  }
};

template <typename K, typename H, typename E, typename A>
struct Codec<std::unordered_set<K, H, E, A>>
    : internal::SetCodec<std::unordered_set<K, H, E, A>> {
  static std::string Signature() {
    return "unordered_set<" + Codec<K>::Signature() + ">";
  }
};

// pair<A, B>: first, then second.
template <typename A, typename B>
struct Codec<std::pair<A, B>> {
  static constexpr size_t kMinWireSize =
      internal::kMinWireSize<A> + internal::kMinWireSize<B>;
  static void Encode(Writer& w, const std::pair<A, B>& p) {
    Codec<A>::Encode(w, p.first);
    Codec<B>::Encode(w, p.second);
  }
  static absl::Status Decode(Reader& r, std::pair<A, B>* p) {
    RETURN_IF_ERROR(internal::DecodeNested(r, &p->first));
    return internal::DecodeNested(r, &p->second);
  }
  static std::string Signature() {
    return "pair<" + internal::JoinSignatures<A, B>() + ">";
  }
};

// tuple<Ts...>: the elements in order; tuple<> is zero bytes.
template <typename... Ts>
struct Codec<std::tuple<Ts...>> {
  using Tuple = std::tuple<Ts...>;
  static constexpr size_t kMinWireSize =
      (size_t{0} + ... + internal::kMinWireSize<Ts>);

  static void Encode(Writer& w, const Tuple& t) {
    std::apply([&w](const Ts&... e) { (Codec<Ts>::Encode(w, e), ...); }, t);
  }
  static absl::Status Decode(Reader& r, Tuple* t) {
    return DecodeElements(r, t, std::index_sequence_for<Ts...>());
  }
  static std::string Signature() {
    return "tuple<" + internal::JoinSignatures<Ts...>() + ">";
  }

 private:
  template <size_t... I>
  static absl::Status DecodeElements([[maybe_unused]] Reader& r,
                                     [[maybe_unused]] Tuple* t,
                                     std::index_sequence<I...>) {
    absl::Status status;
    // Stops at the first error.
    (void)((status = internal::DecodeNested(r, &std::get<I>(*t)),
            status.ok()) &&
           ...);
    return status;
  }
};

// optional<T>: a byte 0 (empty) or 1 followed by the value.
template <typename T>
struct Codec<std::optional<T>> {
  static constexpr size_t kMinWireSize = 1;

  static void Encode(Writer& w, const std::optional<T>& o) {
    w.WriteFixed<uint8_t>(o.has_value() ? 1 : 0);
    if (o.has_value()) Codec<T>::Encode(w, *o);
  }
  static absl::Status Decode(Reader& r, std::optional<T>* o) {
    uint8_t tag = 0;
    RETURN_IF_ERROR(r.ReadBytes(&tag, 1, "optional tag"));
    if (tag == 0) {
      o->reset();
      return absl::OkStatus();
    }
    if (ABSL_PREDICT_FALSE(tag != 1)) {
      return internal::InvalidTagError("optional tag", tag, 2,
                                       TypeSignature<std::optional<T>>());
    }
    return internal::CatchExceptions(
        [&] { return internal::DecodeNested(r, &o->emplace()); });
  }
  static std::string Signature() {
    return "optional<" + Codec<T>::Signature() + ">";
  }
};

// variant<Ts...>: varint index, then that alternative. A variant that is
// valueless_by_exception encodes as index sizeof...(Ts), which no decoder
// accepts.
template <typename... Ts>
struct Codec<std::variant<Ts...>> {
  using Variant = std::variant<Ts...>;
  static constexpr size_t kMinWireSize = 1;

  static void Encode(Writer& w, const Variant& v) {
    if (ABSL_PREDICT_FALSE(v.valueless_by_exception())) {
      w.WriteVarint(sizeof...(Ts));
      return;
    }
    w.WriteVarint(v.index());
    kEncoders[v.index()](w, v);
  }
  static absl::Status Decode(Reader& r, Variant* v) {
    uint64_t index = 0;
    RETURN_IF_ERROR(r.ReadVarint(&index));
    if (ABSL_PREDICT_FALSE(index >= sizeof...(Ts))) {
      return internal::InvalidTagError("variant index", index, sizeof...(Ts),
                                       TypeSignature<Variant>());
    }
    return internal::CatchExceptions([&] { return kDecoders[index](r, v); });
  }
  static std::string Signature() {
    return "variant<" + internal::JoinSignatures<Ts...>() + ">";
  }

 private:
  using EncodeFn = void (*)(Writer&, const Variant&);
  using DecodeFn = absl::Status (*)(Reader&, Variant*);

  template <size_t I>
  static void EncodeAlternative(Writer& w, const Variant& v) {
    Codec<std::variant_alternative_t<I, Variant>>::Encode(w,
                                                          *std::get_if<I>(&v));
  }
  template <size_t I>
  static absl::Status DecodeAlternative(Reader& r, Variant* v) {
    return internal::DecodeNested(r, &v->template emplace<I>());
  }
  template <size_t... I>
  static constexpr std::array<EncodeFn, sizeof...(Ts)> Encoders(
      std::index_sequence<I...>) {
    return {{&EncodeAlternative<I>...}};
  }
  template <size_t... I>
  static constexpr std::array<DecodeFn, sizeof...(Ts)> Decoders(
      std::index_sequence<I...>) {
    return {{&DecodeAlternative<I>...}};
  }
  static constexpr std::array<EncodeFn, sizeof...(Ts)> kEncoders =
      Encoders(std::index_sequence_for<Ts...>());
  static constexpr std::array<DecodeFn, sizeof...(Ts)> kDecoders =
      Decoders(std::index_sequence_for<Ts...>());
};

// monostate: zero bytes.
template <>
struct Codec<std::monostate> {
  static constexpr size_t kMinWireSize = 0;
  static void Encode(Writer&, const std::monostate&) {}
  static absl::Status Decode(Reader&, std::monostate*) {
    return absl::OkStatus();
  }
  static std::string Signature() { return "monostate"; }
};

}  // namespace procpool

#endif  // PROCPOOL_SERIALIZATION_CODEC_STD_H_
