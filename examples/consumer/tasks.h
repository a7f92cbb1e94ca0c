// The consumer's tasks: plain functions registered with PROCPOOL_TASK in
// tasks.cc, linked into both the app (which submits them) and the worker
// binary (which runs them).
#ifndef PROCPOOL_CONSUMER_TASKS_H_
#define PROCPOOL_CONSUMER_TASKS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace consumer {

// How often each word (a run of ASCII letters, lowercased) occurs in `text`.
std::map<std::string, int64_t> CountWords(std::string text);

// The path of the executable serving this task (/proc/self/exe).
std::string WorkerExecutable();

// Throws std::invalid_argument("negative: <n>") for n < 0, else returns n.
int64_t RejectNegative(int64_t n);

}  // namespace consumer

#endif  // PROCPOOL_CONSUMER_TASKS_H_
