#include "transport/capnp/capnp_transport.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "gtest/gtest.h"
#include "transport/testing/conformance.h"
#include "transport/testing/harness.h"
#include "transport/transport.h"

INSTANTIATE_TRANSPORT_CONFORMANCE(capnp);

namespace procpool {
namespace {

TEST(CapnpTransportTest, IsRegistered) {
  absl::StatusOr<Transport*> transport = GetTransport("capnp");
  ASSERT_TRUE(transport.ok()) << transport.status();
  EXPECT_EQ((*transport)->name(), "capnp");
  const std::vector<std::string> names = KnownTransports();
  EXPECT_NE(std::find(names.begin(), names.end(), "capnp"), names.end());
}

}  // namespace
}  // namespace procpool
