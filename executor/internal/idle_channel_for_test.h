// A Channel that carries nothing, for tests of the pool's parts: a worker
// record needs an open channel to take work. Sent frames are counted.
#ifndef PROCPOOL_EXECUTOR_INTERNAL_IDLE_CHANNEL_FOR_TEST_H_
#define PROCPOOL_EXECUTOR_INTERNAL_IDLE_CHANNEL_FOR_TEST_H_

#include <string>
#include <vector>

#include "transport/transport.h"

namespace procpool {
namespace internal {

class IdleChannel : public Channel {
 public:
  absl::Status Send(std::string) override {
    ++sent;
    return absl::OkStatus();
  }
  absl::Status Pump(std::vector<std::string>*) override {
    return absl::OkStatus();
  }
  int PollFd() const override { return -1; }
  uint32_t PollEvents() const override { return 0; }
  absl::Status SendBlocking(absl::string_view) override {
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> ReceiveBlocking() override {
    return absl::UnavailableError("an idle channel receives nothing");
  }

  int sent = 0;
};

}  // namespace internal
}  // namespace procpool

#endif  // PROCPOOL_EXECUTOR_INTERNAL_IDLE_CHANNEL_FOR_TEST_H_
