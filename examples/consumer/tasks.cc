#include "tasks.h"

#include <unistd.h>

#include <cctype>
#include <climits>
#include <stdexcept>

#include "executor/process_pool_executor.h"

namespace consumer {

std::map<std::string, int64_t> CountWords(std::string text) {
  std::map<std::string, int64_t> counts;
  std::string word;
  for (char c : text + " ") {
    if (std::isalpha(static_cast<unsigned char>(c))) {
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!word.empty()) {
      ++counts[word];
      word.clear();
    }
  }
  return counts;
}
PROCPOOL_TASK(CountWords);

std::string WorkerExecutable() {
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  return n < 0 ? std::string("?") : std::string(path, n);
}
PROCPOOL_TASK(WorkerExecutable);

int64_t RejectNegative(int64_t n) {
  if (n < 0) throw std::invalid_argument("negative: " + std::to_string(n));
  return n;
}
PROCPOOL_TASK(RejectNegative);

}  // namespace consumer
