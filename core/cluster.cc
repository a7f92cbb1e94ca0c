#include "core/cluster.h"

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/strip.h"

namespace procpool {
namespace internal {
namespace {

// Function-local statics: registration runs during static initialization, in
// an order we do not control.
std::map<std::string, ClusterBootstrap, std::less<>>& Bootstraps() {
  static auto* bootstraps =
      new std::map<std::string, ClusterBootstrap, std::less<>>();
  return *bootstraps;
}

std::unique_ptr<ClusterWorkers>& Workers() {
  static auto* workers = new std::unique_ptr<ClusterWorkers>();
  return *workers;
}

}  // namespace

void SetClusterWorkers(ClusterWorkers workers) {
  Workers() = std::make_unique<ClusterWorkers>(std::move(workers));
}

const ClusterWorkers* GetClusterWorkers() { return Workers().get(); }

bool RegisterClusterBootstrap(absl::string_view name,
                              ClusterBootstrap bootstrap) {
  Bootstraps()[std::string(name)] = bootstrap;
  return true;
}

ClusterBootstrap FindClusterBootstrap(absl::string_view name) {
  auto it = Bootstraps().find(name);
  return it == Bootstraps().end() ? nullptr : it->second;
}

const char* FindFlagValue(int argc, char** argv, absl::string_view name) {
  const char* value = nullptr;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (!absl::ConsumePrefix(&arg, "--") && !absl::ConsumePrefix(&arg, "-")) {
      continue;
    }
    if (!absl::ConsumePrefix(&arg, name)) continue;
    if (arg.empty() && i + 1 < argc) {
      value = argv[++i];
    } else if (absl::ConsumePrefix(&arg, "=")) {
      value = arg.data();
    }
  }
  return value;
}

}  // namespace internal
}  // namespace procpool
