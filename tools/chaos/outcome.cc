#include "tools/chaos/outcome.h"

namespace procpool {
namespace chaos {

void WaveResult::Add(Outcome outcome) {
  switch (outcome) {
    case Outcome::kCompleted:
      ++completed;
      break;
    case Outcome::kBroken:
      ++failed_broken;
      break;
    case Outcome::kTaskError:
      ++failed_task_error;
      break;
    case Outcome::kOther:
      ++failed_other;
      break;
    case Outcome::kCancelled:
      ++cancelled;
      break;
    case Outcome::kWrong:
      ++wrong_results;
      break;
    case Outcome::kUnresolved:
      ++unresolved;
      break;
  }
}

int64_t WaveResult::submitted() const {
  return completed + failed_broken + failed_task_error + failed_other +
         cancelled + wrong_results + unresolved;
}

}  // namespace chaos
}  // namespace procpool
