#include "tools/chaos/tracked.h"

#include <stdexcept>
#include <typeinfo>

namespace procpool {
namespace chaos {

void Events::NoteBroken() {
  const int64_t now = NowNs();
  int64_t seen = first_broken_ns.load();
  while (now < seen && !first_broken_ns.compare_exchange_weak(seen, now)) {
  }
}

bool IsBroken(const std::exception_ptr& e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const BrokenProcessPool&) {
    return true;
  } catch (...) {
    return false;
  }
}

Outcome ClassifyError(const std::exception_ptr& e, bool expect_error,
                      std::string* detail) {
  try {
    std::rethrow_exception(e);
  } catch (const BrokenProcessPool&) {
    return Outcome::kBroken;
  } catch (const CancelledError&) {
    return Outcome::kCancelled;
  } catch (const std::invalid_argument& err) {
    if (expect_error) return Outcome::kTaskError;
    *detail = absl::StrCat("unexpected std::invalid_argument: ", err.what());
  } catch (const std::exception& err) {
    *detail = absl::StrCat("unexpected ", typeid(err).name(), ": ", err.what());
  } catch (...) {
    *detail = "unexpected exception that is not a std::exception";
  }
  return Outcome::kOther;
}

}  // namespace chaos
}  // namespace procpool
