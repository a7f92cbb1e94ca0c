// Prints what a channel costs, shm next to unix: the round trip of a tiny
// frame and the echo throughput of large ones, with the parent driving its end
// through Send()/Pump()/epoll exactly as the pool's manager thread does, and a
// forked child echoing with ReceiveBlocking()/SendBlocking().
//
//   bazel run -c opt //transport/shm:shm_bench -- [--variants] [--rtt_only]
//       [--transport=NAME]
//
// --variants adds shm with other spin times and ring sizes; --rtt_only skips
// the echoes; --transport measures only that registered transport (for a
// profiler). The numbers are for reading, not for asserting: they depend on
// the machine and its load (on a shared 2-core machine, `chrt -f 10` keeps
// other processes off the measured ones for a short run).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "transport/shm/shm_transport.h"
#include "transport/testing/harness.h"
#include "transport/transport.h"

namespace procpool {
namespace {

using transport_testing::ChannelDriver;
using transport_testing::CloseEndpoint;
using transport_testing::EchoLoop;
using transport_testing::ForkedChild;

constexpr absl::Duration kTimeout = absl::Seconds(60);

void Ok(const absl::Status& status) { CHECK(status.ok()) << status; }

struct Result {
  double round_trip_us = 0;
  double echo_1mib_mb_per_s = 0;
  double echo_64mib_mb_per_s = 0;
};

// Bytes both ways over time, in MB/s, for `reps` echoes of `size` bytes.
double EchoThroughput(ChannelDriver& driver, size_t size, int reps) {
  const std::string payload(size, 'x');
  driver.frames().clear();
  Ok(driver.Send(payload));  // warm-up: page faults, buffers
  Ok(driver.PumpUntilFrames(1, kTimeout));
  const absl::Time start = absl::Now();
  for (int i = 0; i < reps; ++i) {
    driver.frames().clear();
    Ok(driver.Send(payload));
    Ok(driver.PumpUntilFrames(1, kTimeout));
    CHECK_EQ(driver.frames()[0].size(), size);
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return 2.0 * size * reps / seconds / 1e6;
}

bool rtt_only = false;

Result Measure(Transport* transport) {
  absl::StatusOr<ChannelPair> pair = transport->CreatePair();
  Ok(pair.status());
  absl::StatusOr<ForkedChild> child =
      ForkedChild::StartWithChannel(transport, pair->child, EchoLoop);
  Ok(child.status());
  CloseEndpoint(&pair->child);
  Result result;
  {
    ChannelDriver driver(pair->parent.get());
    constexpr int kWarmup = 2000;
    constexpr int kRounds = 20000;
    auto round_trip = [&driver] {
      driver.frames().clear();
      Ok(driver.Send("12345678"));
      Ok(driver.PumpUntilFrames(1, kTimeout));
    };
    for (int i = 0; i < kWarmup; ++i) round_trip();
    const absl::Time start = absl::Now();
    for (int i = 0; i < kRounds; ++i) round_trip();
    result.round_trip_us =
        absl::ToDoubleMicroseconds(absl::Now() - start) / kRounds;
    if (!rtt_only) {
      result.echo_1mib_mb_per_s = EchoThroughput(driver, 1 << 20, 200);
      result.echo_64mib_mb_per_s = EchoThroughput(driver, 64 << 20, 5);
    }
  }
  pair->parent.reset();
  Ok(child->Wait(kTimeout).status());
  return result;
}

void Print(const std::string& name, const Result& r) {
  std::printf("%-28s %10.2f %14.0f %15.0f\n", name.c_str(), r.round_trip_us,
              r.echo_1mib_mb_per_s, r.echo_64mib_mb_per_s);
  std::fflush(stdout);
}

int Main(int argc, char** argv) {
  bool variants = false;
  std::vector<std::string> transports = {"unix", "shm"};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--variants") {
      variants = true;
    } else if (arg == "--rtt_only") {
      rtt_only = true;
    } else if (arg.rfind("--transport=", 0) == 0) {
      transports = {arg.substr(sizeof("--transport=") - 1)};
    } else {
      std::fprintf(stderr,
                   "usage: %s [--variants] [--rtt_only] [--transport=NAME]\n",
                   argv[0]);
      return 2;
    }
  }
  std::printf("%-28s %10s %14s %15s\n", "transport", "rtt_us",
              "echo_1MiB_MB/s", "echo_64MiB_MB/s");
  for (const std::string& name : transports) {
    absl::StatusOr<Transport*> t = GetTransport(name);
    Ok(t.status());
    Print(name, Measure(*t));
  }
  if (transports.size() == 1) return 0;
  {
    // What spinning buys when the machine has a CPU to spare (the registered
    // transport spins only then; on a busy machine it sleeps at once).
    ShmTransportOptions options;
    options.spin_only_with_idle_cpu = false;
    std::unique_ptr<Transport> t = NewShmTransport(options);
    Print("shm spin ungated", Measure(t.get()));
  }
  if (!variants) return 0;
  for (int64_t spin_us : {0, 10, 30, 50, 100}) {
    ShmTransportOptions options;
    options.spin_ns = spin_us * 1000;
    options.spin_only_with_idle_cpu = false;
    std::unique_ptr<Transport> t = NewShmTransport(options);
    Print(absl::StrCat("shm spin=", spin_us, "us"), Measure(t.get()));
  }
  for (size_t ring_kib : {64, 256, 4096, 16384}) {
    ShmTransportOptions options;
    options.ring_bytes = ring_kib << 10;
    std::unique_ptr<Transport> t = NewShmTransport(options);
    Print(absl::StrCat("shm ring=", ring_kib, "KiB"), Measure(t.get()));
  }
  return 0;
}

}  // namespace
}  // namespace procpool

int main(int argc, char** argv) { return procpool::Main(argc, argv); }
