#include "executor/internal/completion_queue.h"

#include <stdexcept>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

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

}  // namespace
}  // namespace internal
}  // namespace procpool
