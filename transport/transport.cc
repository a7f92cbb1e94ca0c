#include "transport/transport.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"

namespace procpool {

absl::Status Channel::SendParts(std::vector<absl::string_view> parts,
                                std::shared_ptr<const void> owner) {
  (void)owner;
  return Send(absl::StrJoin(parts, ""));
}

absl::Status Channel::SendBlockingParts(
    absl::Span<const absl::string_view> parts) {
  return SendBlocking(absl::StrJoin(parts, ""));
}

namespace {

absl::Status NoDescriptors() {
  return absl::UnimplementedError(
      "this transport's channels carry bytes only, not file descriptors "
      "(only the local unix and shm transports pass descriptors; over capnp "
      "the bytes must be copied)");
}

}  // namespace

absl::Status Channel::SendPartsWithDescriptors(
    std::vector<absl::string_view> parts, std::shared_ptr<const void> owner,
    absl::Span<const int> fds) {
  (void)parts;
  (void)owner;
  (void)fds;
  return NoDescriptors();
}

absl::Status Channel::SendBlockingPartsWithDescriptors(
    absl::Span<const absl::string_view> parts, absl::Span<const int> fds) {
  (void)parts;
  (void)fds;
  return NoDescriptors();
}

absl::StatusOr<std::vector<UniqueFd>> Channel::TakeDescriptors(size_t n) {
  if (n == 0) return std::vector<UniqueFd>();
  return NoDescriptors();
}

namespace {

struct Registry {
  absl::Mutex mu;
  std::map<std::string, Transport*, std::less<>> transports ABSL_GUARDED_BY(mu);
};

Registry& GetRegistry() {
  static Registry* registry = new Registry;
  return *registry;
}

}  // namespace

void RegisterTransport(Transport* transport) {
  Registry& r = GetRegistry();
  absl::MutexLock lock(&r.mu);
  r.transports[std::string(transport->name())] = transport;
}

absl::StatusOr<Transport*> GetTransport(absl::string_view name) {
  Registry& r = GetRegistry();
  {
    absl::MutexLock lock(&r.mu);
    auto it = r.transports.find(std::string(name));
    if (it != r.transports.end()) return it->second;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown transport \"", name, "\"; known transports: ",
                   absl::StrJoin(KnownTransports(), ", "),
                   " (set Options::transport or --procpool_transport)"));
}

std::vector<std::string> KnownTransports() {
  Registry& r = GetRegistry();
  absl::MutexLock lock(&r.mu);
  std::vector<std::string> names;
  for (const auto& [name, unused] : r.transports) names.push_back(name);
  return names;
}

}  // namespace procpool
