// Test support: a second "host" on this machine, for two-host tests. A
// network namespace of its own, joined to this one by a veth pair (here_ip on
// this side, there_ip in the namespace, a /30 of 10.0.0.0/8 chosen from the
// pid). Run a daemon there with {"ip", "netns", "exec", ns, binary, ...}.
//
// Needs root and iproute2 (`ip netns`): MakeTopology() says why not, for
// GTEST_SKIP(). Remove() deletes the namespace and the links; MakeTopology()
// also registers it to run at exit, so a test that fails or exits early
// leaves nothing behind. Every command is bounded (`timeout 20`).
//
// Example (a gtest fixture):
//   void SetUp() override {
//     const std::string why = netns_testing::MakeTopology(TheTopology());
//     if (!why.empty()) GTEST_SKIP() << "two-host test skipped: " << why;
//     made_ = true;
//     ...
//   }
//   void TearDown() override { if (made_) TheTopology().Remove(); }
#ifndef PROCPOOL_WORKER_TESTING_NETNS_H_
#define PROCPOOL_WORKER_TESTING_NETNS_H_

#include <sys/types.h>

#include <string>

namespace procpool {
namespace netns_testing {

// Runs `command` through the shell under `timeout 20`, stderr folded into
// stdout; returns its exit status (-1 if it did not exit) and puts its output
// in `*output`.
int Shell(const std::string& command, std::string* output = nullptr);

// The namespace, links and addresses of this test process (unique by pid).
struct Topology {
  Topology();
  std::string ns;        // the other host's network namespace
  std::string here;      // our end of the veth pair
  std::string there;     // its end, inside ns
  std::string here_ip;   // on `here`
  std::string there_ip;  // on `there`

  // Deletes the namespace (with `there` and whatever runs nothing there) and
  // `here`; harmless if they do not exist.
  void Remove() const;
  // `ip link set here up|down`; the command's exit status (0: done), its
  // output in `*output`. Down: packets to the other host are dropped, with
  // no FIN and no RST.
  int SetLink(bool up, std::string* output = nullptr) const;
};

// This process's topology (made once, never destroyed).
const Topology& TheTopology();

// Builds `t`: an empty string, or why it cannot (not root, no iproute2, a
// step failed: then whatever was made is removed).
std::string MakeTopology(const Topology& t);

// The network namespace of this process / of `pid` ("net:[4026531840]"), or
// "" if unreadable.
std::string OwnNetns();
std::string NetnsOf(pid_t pid);

}  // namespace netns_testing
}  // namespace procpool

#endif  // PROCPOOL_WORKER_TESTING_NETNS_H_
