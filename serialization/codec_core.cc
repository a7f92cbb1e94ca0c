#include "serialization/codec_core.h"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <typeinfo>

#include "absl/strings/str_cat.h"

namespace procpool {

absl::Status Codec<std::string>::Decode(Reader& r, std::string* s) {
  uint64_t n = 0;
  RETURN_IF_ERROR(r.ReadVarint(&n));
  if (ABSL_PREDICT_FALSE(n > r.remaining())) {
    return internal::TruncatedError(n, r.remaining(), "string");
  }
  ASSIGN_OR_RETURN(absl::string_view bytes, r.ReadView(n));
  return internal::CatchExceptions([&] {
    internal::ReserveBig(s, bytes.size());
    s->assign(bytes.data(), bytes.size());
    return absl::OkStatus();
  });
}

namespace internal {

absl::Status ExceptionError(const std::exception* e) {
  if (e == nullptr)
    return absl::InternalError("decoder threw a non-std::exception");
  if (dynamic_cast<const std::bad_alloc*>(e) != nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory while decoding: ", e->what()));
  }
  return absl::InternalError(absl::StrCat(
      "decoder threw ", DemangledTypeName(typeid(*e)), ": ", e->what()));
}

absl::Status AnnotateDecodeError(const absl::Status& status,
                                 absl::string_view signature, size_t position,
                                 size_t size) {
  return absl::Status(
      status.code(), absl::StrCat("decoding ", signature, " at byte ", position,
                                  " of ", size, ": ", status.message()));
}

absl::Status TrailingBytesError(absl::string_view signature, size_t left,
                                size_t size) {
  return absl::DataLossError(
      absl::StrCat("decoding ", signature, ": ", left,
                   " bytes left over after the value (of ", size, ")"));
}

std::string DemangledTypeName(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), &std::free);
  if (status != 0 || name == nullptr) return type.name();
  return name.get();
}

}  // namespace internal
}  // namespace procpool
