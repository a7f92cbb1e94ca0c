#include "executor/internal/completion_queue.h"

#include <stdexcept>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "shared_array/output_writes.h"
#include "shared_array/shared_array.h"
#include "shared_array/transfer.h"

namespace procpool {
namespace internal {
namespace {

// A state whose Complete() succeeds or fails as told.
class FakeState : public StateBase {
 public:
  explicit FakeState(absl::Status decode = absl::OkStatus())
      : decode_(std::move(decode)) {}
  absl::Status Complete(CallOutcomes&& outcomes) override {
    if (!decode_.ok()) return decode_;
    completed_with = outcomes.size();
    FinishWith([] {});
    return absl::OkStatus();
  }
  size_t completed_with = 0;

 private:
  absl::Status decode_;
};

std::shared_ptr<FakeState> Running(absl::Status decode = absl::OkStatus()) {
  auto state = std::make_shared<FakeState>(std::move(decode));
  EXPECT_TRUE(state->SetRunningOrNotifyCancel());
  return state;
}

TEST(CompletionQueueTest, QueuingCompletesNothingUntilRun) {
  absl::Mutex mu;
  CompletionQueue queue;
  auto failed = Running();
  auto cancelled = Running();
  auto finished = Running();
  // A done callback that takes the lock the queue was filled under: it must
  // not run while that lock is held.
  int callbacks = 0;
  for (auto* s : {failed.get(), cancelled.get(), finished.get()}) {
    s->AddDoneCallback([&] {
      absl::MutexLock lock(&mu);
      ++callbacks;
    });
  }
  mu.Lock();
  queue.Error(failed, std::make_exception_ptr(std::runtime_error("boom")));
  queue.Cancel(cancelled);
  Completion c{Completion::Kind::kOutcomes, finished};
  c.outcomes.elements.resize(3);
  queue.Push(std::move(c));
  EXPECT_EQ(queue.size(), 3u);
  EXPECT_FALSE(failed->done());
  EXPECT_FALSE(cancelled->done());
  EXPECT_FALSE(finished->done());
  std::vector<Completion> done;
  queue.TakeAll(&done);
  EXPECT_TRUE(queue.empty());
  mu.Unlock();

  ASSERT_EQ(done.size(), 3u);
  EXPECT_EQ(done[0].kind, Completion::Kind::kError);
  EXPECT_EQ(done[1].kind, Completion::Kind::kCancel);
  EXPECT_EQ(done[2].kind, Completion::Kind::kOutcomes);
  for (Completion& d : done) EXPECT_TRUE(RunCompletion(d).ok());
  EXPECT_EQ(callbacks, 3);
  EXPECT_TRUE(failed->failed());
  EXPECT_TRUE(cancelled->cancelled());
  EXPECT_TRUE(finished->done());
  EXPECT_FALSE(finished->failed());
  EXPECT_EQ(finished->completed_with, 3u);
}

TEST(CompletionQueueTest, ErrorOnADoneStateIsANoOp) {
  CompletionQueue queue;
  auto state = Running();
  Completion c{Completion::Kind::kOutcomes, state};
  queue.Push(std::move(c));
  queue.Error(state, std::make_exception_ptr(std::runtime_error("late")));
  std::vector<Completion> done;
  queue.TakeAll(&done);
  for (Completion& d : done) EXPECT_TRUE(RunCompletion(d).ok());
  EXPECT_TRUE(state->done());
  EXPECT_FALSE(state->failed());
}

TEST(CompletionQueueTest, UndecodableOutcomesLeaveTheStateAndDescribeTheCrash) {
  auto state = Running(absl::DataLossError("truncated value"));
  Completion c{Completion::Kind::kOutcomes, state};
  c.pid = 4242;
  c.task = "Square";
  c.work_id = 17;
  const absl::Status status = RunCompletion(c);
  ASSERT_FALSE(status.ok());
  EXPECT_FALSE(state->done());
  const WorkerCrash crash = UndecodableResultCrash(c, status);
  EXPECT_EQ(crash.pid, 4242);
  EXPECT_EQ(crash.task_name, "Square");
  EXPECT_EQ(crash.work_id, 17);
  EXPECT_EQ(crash.cause, "could not decode the result: truncated value");
}

// The changes a worker sent for the call's output arrays land before the
// future completes; changes that do not fit fail that future (with
// procpool::Error naming the task), write nothing, and are no crash.
TEST(CompletionQueueTest, OutputWritesLandBeforeTheFutureOrFailIt) {
  SharedArray<uint8_t> out(8, SharedArrayMode::kOutput);
  const std::string before(8, '\0');
  std::string now = before;
  now[5] = 42;
  OutputWrites writes;
  writes.AddChanges(0, before, now.data());
  const std::string good = writes.Release();

  auto state = Running();
  Completion c{Completion::Kind::kOutcomes, state};
  c.task = "Fill";
  c.outcomes.arrays = std::make_shared<ArrayTransfer>(ArrayTransfer::Way::kByValue);
  c.outcomes.arrays->SetOutputWrites(good, {out.buffer()});
  ASSERT_TRUE(RunCompletion(c).ok());
  EXPECT_EQ(state->completed_with, 0u);
  EXPECT_TRUE(state->done());
  EXPECT_FALSE(state->failed());
  EXPECT_EQ(out[5], 42);

  out[5] = 0;
  auto lied = Running();
  Completion d{Completion::Kind::kOutcomes, lied};
  d.task = "Fill";
  d.outcomes.arrays = std::make_shared<ArrayTransfer>(ArrayTransfer::Way::kByValue);
  // Changes for an array the call did not send.
  d.outcomes.arrays->SetOutputWrites(good, {});
  ASSERT_TRUE(RunCompletion(d).ok());
  EXPECT_TRUE(lied->done());
  EXPECT_TRUE(lied->failed());
  EXPECT_EQ(out[5], 0);
}

}  // namespace
}  // namespace internal
}  // namespace procpool
