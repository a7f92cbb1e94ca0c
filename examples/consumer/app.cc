// A program outside procpool that uses it: its tasks live in a
// procpool_task_library (:tasks), its workers are a separate
// procpool_worker_binary (:worker), and the transport is chosen on the
// command line with --procpool_transport.
//
//   bazel run //:app -- --list_transports          # one name per line
//   bazel run //:app -- --procpool_transport=unix
//   bazel run //:app -- --procpool_transport=unix --procpool_start_method=spawn
//
// It counts words in a few texts with Map, checks which executable served the
// tasks, and checks that a task's exception arrives as itself; it prints
// "ok" and exits 0 when everything held, 1 otherwise.
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "executor/process_pool_executor.h"
#include "tasks.h"
#include "tools/cpp/runfiles/runfiles.h"
#include "transport/transport.h"

ABSL_FLAG(bool, list_transports, false,
          "Print the transports linked into this program, one per line, and "
          "exit.");

namespace {

using bazel::tools::cpp::runfiles::Runfiles;

int failures = 0;

void Check(bool ok, const std::string& what) {
  std::cout << (ok ? "  pass: " : "  FAIL: ") << what << "\n";
  if (!ok) ++failures;
}

}  // namespace

int main(int argc, char** argv) {
  procpool::Init(argc, argv);  // harmless here; needed if this binary serves
  absl::ParseCommandLine(argc, argv);

  if (absl::GetFlag(FLAGS_list_transports)) {
    for (const std::string& name : procpool::KnownTransports()) {
      std::cout << name << "\n";
    }
    return 0;
  }

  // The worker binary is a data dependency: find it in this program's
  // runfiles (works under `bazel run`, `bazel test` and from bazel-bin/).
  std::string error;
  std::unique_ptr<Runfiles> runfiles(Runfiles::Create(argv[0], &error));
  if (runfiles == nullptr) {
    std::cerr << "runfiles: " << error << "\n";
    return 1;
  }
  procpool::Options options;
  options.worker_binary = runfiles->Rlocation("procpool_consumer/worker");
  options.max_workers = 2;
  // options.transport stays empty: --procpool_transport decides.

  std::cout << "transport " << absl::GetFlag(FLAGS_procpool_transport)
            << ", start method " << absl::GetFlag(FLAGS_procpool_start_method)
            << std::endl;  // flushed: a kFork child inherits unflushed stdio
  try {
    procpool::ProcessPoolExecutor pool(options);

    const std::vector<std::string> texts = {
        "the quick brown fox", "jumps over the lazy dog", "The end. THE END!"};
    std::map<std::string, int64_t> total;
    for (const auto& counts : pool.Map(consumer::CountWords, texts)) {
      for (const auto& [word, n] : counts) total[word] += n;
    }
    Check(total["the"] == 4 && total["end"] == 2 && total.size() == 9,
          "Map(CountWords): 'the' x4, 'end' x2, 9 distinct words");

    // kFork children are copies of this program; otherwise the worker binary.
    const std::string exe = pool.Submit(consumer::WorkerExecutable).Get();
    const bool fork = absl::GetFlag(FLAGS_procpool_start_method) == "fork";
    Check(fork || (exe.size() >= 7 && exe.substr(exe.size() - 7) == "/worker"),
          "tasks ran in " + exe);

    try {
      pool.Submit(consumer::RejectNegative, int64_t{-3}).Get();
      Check(false, "RejectNegative(-3) threw");
    } catch (const std::invalid_argument& e) {
      Check(std::string(e.what()) == "negative: -3",
            std::string("std::invalid_argument arrived: ") + e.what());
    }
  } catch (const std::exception& e) {
    Check(false, std::string("unexpected exception: ") + e.what());
  }
  std::cout << (failures == 0 ? "ok" : "FAILED") << "\n";
  return failures == 0 ? 0 : 1;
}
