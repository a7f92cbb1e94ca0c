#include "worker/testing/netns.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace procpool {
namespace netns_testing {

int Shell(const std::string& command, std::string* output) {
  const std::string full = absl::StrCat("timeout 20 ", command, " 2>&1");
  FILE* pipe = popen(full.c_str(), "r");
  if (pipe == nullptr) return -1;
  std::string out;
  char buffer[512];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  const int status = pclose(pipe);
  if (output != nullptr) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Topology::Topology() {
  const pid_t pid = getpid();
  ns = absl::StrCat("procpool-test-", pid);
  here = absl::StrCat("ppv", pid % 100000, "a");
  there = absl::StrCat("ppv", pid % 100000, "b");
  const std::string subnet =
      absl::StrCat("10.", 200 + pid % 50, ".", (pid / 50) % 250, ".");
  here_ip = subnet + "1";
  there_ip = subnet + "2";
}

void Topology::Remove() const {
  Shell(absl::StrCat("ip netns del ", ns));
  Shell(absl::StrCat("ip link del ", here));
}

int Topology::SetLink(bool up, std::string* output) const {
  return Shell(absl::StrCat("ip link set ", here, up ? " up" : " down"),
               output);
}

const Topology& TheTopology() {
  static const Topology* t = new Topology();
  return *t;
}

std::string MakeTopology(const Topology& t) {
  if (geteuid() != 0) return "needs root (ip netns, veth)";
  std::string out;
  if (Shell("ip -V", &out) != 0) return "iproute2's ip is not installed: " + out;
  static const bool cleanup_registered = [] {
    return atexit([] { TheTopology().Remove(); }) == 0;
  }();
  (void)cleanup_registered;
  const std::string steps[] = {
      absl::StrCat("ip netns add ", t.ns),
      absl::StrCat("ip link add ", t.here, " type veth peer name ", t.there),
      absl::StrCat("ip link set ", t.there, " netns ", t.ns),
      absl::StrCat("ip addr add ", t.here_ip, "/30 dev ", t.here),
      absl::StrCat("ip link set ", t.here, " up"),
      absl::StrCat("ip netns exec ", t.ns, " ip addr add ", t.there_ip,
                   "/30 dev ", t.there),
      absl::StrCat("ip netns exec ", t.ns, " ip link set ", t.there, " up"),
      absl::StrCat("ip netns exec ", t.ns, " ip link set lo up"),
  };
  for (const std::string& step : steps) {
    if (Shell(step, &out) != 0) {
      t.Remove();
      return absl::StrCat("cannot make the second host: `", step,
                          "` failed: ", out);
    }
  }
  return "";
}

namespace {

std::string ReadLink(const std::string& path) {
  char target[256] = {};
  const ssize_t n = readlink(path.c_str(), target, sizeof(target) - 1);
  return n > 0 ? std::string(target, static_cast<size_t>(n)) : "";
}

}  // namespace

std::string OwnNetns() { return ReadLink("/proc/self/ns/net"); }

std::string NetnsOf(pid_t pid) {
  return ReadLink(absl::StrCat("/proc/", pid, "/ns/net"));
}

}  // namespace netns_testing
}  // namespace procpool
