// The conformance suite every transport passes: the contract of
// transport/transport.h, checked against a real forked child.
//
// A transport's test instantiates it with one line, at file scope:
//
//   #include "transport/testing/conformance.h"
//   INSTANTIATE_TRANSPORT_CONFORMANCE(unix);
//
// and links //transport/testing:conformance (alwayslink, so the TEST_Ps in it
// are registered) and the transport's own library (which registers the
// transport under that name). Tests are named
// "<name>/TransportConformanceTest.<Case>/<name>".
//
// What it checks: frames of every size (empty, small, 10k in order, 256 MiB
// and more) arrive intact both ways; the parent's Send() never blocks, so
// parent and child sending large frames at once do not deadlock; a child that
// is killed or exits is kUnavailable on the parent's Pump() within a bound,
// after the frames that arrived before; the parent closing is kUnavailable in
// the child, with no SIGPIPE; PollFd() is readable when a frame arrives and
// not when idle; all descriptors are close-on-exec and none leak. It also
// reports the round-trip time of a tiny frame. The parent drives its end only
// through the non-blocking API with epoll, every wait bounded. The whole suite
// takes a few seconds for a healthy transport.
//
// Descriptors with frames (where CarriesDescriptors(); skipped elsewhere,
// where the calls must be kUnimplemented): a memfd crosses both ways and
// names the same file (same inode, shared writes); frames with and without
// descriptors stay in order with TakeDescriptors() matching; frames of
// several MiB carry them too; kMaxDescriptorsPerFrame works and one more is
// kInvalidArgument on both sides without harm; taking more than came is
// kDataLoss; descriptors never taken, or of a frame cut short by the
// sender's death, leak in neither process.
//
// Children are made with fork() (no exec): the child closes every descriptor
// except its endpoint's, then calls Transport::OpenChild(). A transport
// therefore must not need anything from the parent's Channel object in the
// child.
#ifndef PROCPOOL_TRANSPORT_TESTING_CONFORMANCE_H_
#define PROCPOOL_TRANSPORT_TESTING_CONFORMANCE_H_

#include <string>

#include "gtest/gtest.h"
#include "transport/transport.h"

namespace procpool {
namespace transport_testing {

// The suite's fixture; the parameter is the transport's registered name.
class TransportConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override;

  // The transport under test (owned by the registry).
  Transport* transport_ = nullptr;
};

// Names each instantiation after its transport.
std::string TransportParamName(
    const ::testing::TestParamInfo<std::string>& info);

}  // namespace transport_testing
}  // namespace procpool

// Instantiates the conformance suite for the transport registered as `name`
// (an identifier: unix, shm, capnp). Use at file scope. (Under GNU dialects,
// -std=gnu++17, `unix` is a predefined macro; this tree builds with
// -std=c++17, where it is not.)
#define INSTANTIATE_TRANSPORT_CONFORMANCE(name)                   \
  using ::procpool::transport_testing::TransportConformanceTest;  \
  INSTANTIATE_TEST_SUITE_P(name, TransportConformanceTest,        \
                           ::testing::Values(std::string(#name)), \
                           ::procpool::transport_testing::TransportParamName)

#endif  // PROCPOOL_TRANSPORT_TESTING_CONFORMANCE_H_
