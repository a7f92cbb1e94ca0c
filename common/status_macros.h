// Status-propagation macros with the names Abseil uses upstream.
//
// Debian's Abseil (20220623) ships no status macros, so these stand in; when the
// dependency is upgraded they become a rename.
//
// Example:
//   absl::StatusOr<int> ParsePort(std::string_view s);
//   absl::Status Listen(std::string_view s) {
//     ASSIGN_OR_RETURN(int port, ParsePort(s));
//     RETURN_IF_ERROR(Bind(port));
//     return absl::OkStatus();
//   }
#ifndef PROCPOOL_COMMON_STATUS_MACROS_H_
#define PROCPOOL_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns `expr`'s status from the enclosing function if it is not OK.
#define RETURN_IF_ERROR(expr)                                   \
  do {                                                          \
    ::absl::Status procpool_status_ = (expr);                   \
    if (!procpool_status_.ok()) return procpool_status_;        \
  } while (false)

#define PROCPOOL_STATUS_CONCAT_INNER_(a, b) a##b
#define PROCPOOL_STATUS_CONCAT_(a, b) PROCPOOL_STATUS_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (a StatusOr<T>); on error returns its status, otherwise
// assigns the value to `lhs` (which may be a declaration).
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  PROCPOOL_ASSIGN_OR_RETURN_IMPL_(   \
      PROCPOOL_STATUS_CONCAT_(procpool_statusor_, __LINE__), lhs, rexpr)

#define PROCPOOL_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                    \
  if (!statusor.ok()) return std::move(statusor).status();    \
  lhs = *std::move(statusor)

#endif  // PROCPOOL_COMMON_STATUS_MACROS_H_
