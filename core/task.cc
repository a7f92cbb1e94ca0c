#include "core/task.h"

#include <algorithm>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "glog/logging.h"

namespace procpool {
namespace internal {
namespace {

// Written only during static initialization (single-threaded), read-only
// afterwards, so lookups take no lock. That matters for kFork: a child forked
// while another thread held a lock would inherit it held forever.
struct Registry {
  std::map<std::string, TaskInfo, std::less<>> by_name;
  absl::flat_hash_map<const void*, const TaskInfo*> by_fn;
};

Registry& GetRegistry() {
  static Registry* registry = new Registry;
  return *registry;
}

}  // namespace

void RegisterTask(const void* fn, TaskInfo info) {
  Registry& r = GetRegistry();
  auto [it, inserted] = r.by_name.emplace(info.name, info);
  if (!inserted) {
    // The same function registered twice (a header included twice) is fine.
    auto by_fn = r.by_fn.find(fn);
    CHECK(by_fn != r.by_fn.end() && by_fn->second == &it->second)
        << "procpool: two different tasks are registered as \"" << info.name
        << "\"; task names must be unique";
    return;
  }
  r.by_fn[fn] = &it->second;
}

const TaskInfo* FindTaskByName(absl::string_view name) {
  Registry& r = GetRegistry();
  auto it = r.by_name.find(name);
  return it == r.by_name.end() ? nullptr : &it->second;
}

const TaskInfo* FindTaskByFunction(const void* fn) {
  Registry& r = GetRegistry();
  auto it = r.by_fn.find(fn);
  return it == r.by_fn.end() ? nullptr : it->second;
}

std::vector<const TaskInfo*> AllTasks() {
  Registry& r = GetRegistry();
  std::vector<const TaskInfo*> out;
  for (const auto& [name, info] : r.by_name) out.push_back(&info);
  return out;
}

uint64_t TaskFingerprint() {
  // FNV-1a over "name\0signature\0" of every task in name order: stable
  // across processes and binaries (absl::Hash is seeded per process).
  uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&h](absl::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 0x100000001b3ULL;
    }
    h ^= 0;
    h *= 0x100000001b3ULL;
  };
  for (const TaskInfo* t : AllTasks()) {
    mix(t->name);
    mix(t->signature);
  }
  return h;
}

std::string NotRegisteredMessage() {
  return "this function is not registered as a procpool task; register it "
         "with PROCPOOL_TASK(FunctionName); at namespace scope in a .cc file "
         "linked into the program (a procpool_task_library() keeps it at link "
         "time)";
}

}  // namespace internal
}  // namespace procpool
