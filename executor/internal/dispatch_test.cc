#include "executor/internal/dispatch.h"

#include <deque>
#include <memory>
#include <vector>

#include "absl/time/clock.h"
#include "executor/internal/idle_channel_for_test.h"
#include "gtest/gtest.h"

namespace procpool {
namespace internal {
namespace {

class TestState : public StateBase {
 public:
  absl::Status Complete(CallOutcomes&&) override {
    FinishWith([] {});
    return absl::OkStatus();
  }
};

WorkItem Item(const std::string& task = "Noop") {
  WorkItem item;
  item.task = task;
  item.args = {"x"};
  item.state = std::make_shared<TestState>();
  return item;
}

std::deque<WorkItem> Items(int n) {
  std::deque<WorkItem> items;
  for (int i = 0; i < n; ++i) items.push_back(Item());
  return items;
}

Worker& AddReady(WorkerTable& table) {
  Worker& w = table.Add();
  w.channel = std::make_unique<IdleChannel>();
  table.Greet(w);
  return w;
}

// Picks and records, as Pool::HandOut does (without sending).
size_t HandOut(WorkerTable& table, std::deque<WorkItem>& pending,
               size_t max_in_flight, int max_tasks_per_child,
               uint64_t* next_id) {
  std::vector<HandOutPick> picks;
  const size_t left = PickHandOuts(table, pending, max_in_flight,
                                   max_tasks_per_child, &picks);
  for (HandOutPick& p : picks) {
    OutgoingCall out;
    RecordHandOut(*p.worker, std::move(p.item), (*next_id)++, &out);
    EXPECT_EQ(out.worker, p.worker);
    EXPECT_FALSE(out.frame.empty());
  }
  return left;
}

TEST(DispatchTest, IdleWorkersTakeOneItemEach) {
  WorkerTable table;
  Worker& a = AddReady(table);
  Worker& b = AddReady(table);
  std::deque<WorkItem> pending = Items(5);
  uint64_t next_id = 1;
  EXPECT_EQ(HandOut(table, pending, 0, 0, &next_id), 3u);
  ASSERT_EQ(a.assigned.size(), 1u);
  ASSERT_EQ(b.assigned.size(), 1u);
  EXPECT_EQ(a.assigned.front().work_id, 1u);
  EXPECT_EQ(b.assigned.front().work_id, 2u);
  EXPECT_TRUE(a.assigned.front().item.state->running());
  // The arguments stay with the record, to run the work again elsewhere.
  EXPECT_EQ(a.assigned.front().item.args, std::vector<std::string>{"x"});
  EXPECT_EQ(a.tasks_assigned, 1);
  // Busy now: nothing more with max_in_flight 0.
  EXPECT_EQ(HandOut(table, pending, 0, 0, &next_id), 3u);
}

// S16: once at full strength, one queued item beyond the running one.
TEST(DispatchTest, S16OneItemBeyondTheRunningOneAtFullStrength) {
  WorkerTable table;
  Worker& a = AddReady(table);
  Worker& b = AddReady(table);
  EXPECT_TRUE(AtFullStrength(table, /*max_workers=*/2));
  EXPECT_FALSE(AtFullStrength(table, /*max_workers=*/3));
  std::deque<WorkItem> pending = Items(10);
  uint64_t next_id = 1;
  HandOut(table, pending, 0, 0, &next_id);
  EXPECT_EQ(HandOut(table, pending, 1, 0, &next_id), 6u);
  EXPECT_EQ(a.assigned.size(), 2u);
  EXPECT_EQ(b.assigned.size(), 2u);
  // Never a third.
  EXPECT_EQ(HandOut(table, pending, 1, 0, &next_id), 6u);
  EXPECT_EQ(a.assigned.size(), 2u);
  // Only the running one has a deadline clock started: the queued one's
  // starts when it runs.
  EXPECT_EQ(a.assigned[1].deadline, absl::InfiniteFuture());
}

TEST(DispatchTest, NotAtFullStrengthWhileAWorkerStarts) {
  WorkerTable table;
  AddReady(table);
  Worker& starting = table.Add();
  starting.channel = std::make_unique<IdleChannel>();
  EXPECT_FALSE(AtFullStrength(table, /*max_workers=*/2));
  table.Greet(starting);
  EXPECT_TRUE(AtFullStrength(table, /*max_workers=*/2));
}

// S6: workers start on demand, for what idle and starting ones won't take.
TEST(DispatchTest, S6StartsWorkersOnDemand) {
  WorkerTable table;
  EXPECT_FALSE(ShouldStartWorker(table, 0, 4, 0));
  EXPECT_TRUE(ShouldStartWorker(table, 1, 4, 0));
  Worker& first = table.Add();  // starting: will take one
  first.channel = std::make_unique<IdleChannel>();
  EXPECT_FALSE(ShouldStartWorker(table, 1, 4, 0));
  EXPECT_TRUE(ShouldStartWorker(table, 2, 4, 0));
  table.Greet(first);  // idle now: still takes one
  EXPECT_FALSE(ShouldStartWorker(table, 1, 4, 0));
  EXPECT_TRUE(ShouldStartWorker(table, 2, 4, 0));
  first.assigned.push_back(Assigned{1, Item()});  // busy
  EXPECT_TRUE(ShouldStartWorker(table, 1, 4, 0));
  // Never beyond max_workers.
  EXPECT_FALSE(ShouldStartWorker(table, 100, 1, 0));
}

TEST(DispatchTest, MaxTasksPerChild) {
  WorkerTable table;
  Worker& w = AddReady(table);
  std::deque<WorkItem> pending = Items(3);
  uint64_t next_id = 1;
  HandOut(table, pending, 1, /*max_tasks_per_child=*/2, &next_id);
  HandOut(table, pending, 1, 2, &next_id);
  EXPECT_EQ(w.tasks_assigned, 2);
  // Its quota is spent: it takes no more, and is not counted as idle.
  EXPECT_EQ(HandOut(table, pending, 1, 2, &next_id), 1u);
  w.assigned.clear();
  EXPECT_EQ(HandOut(table, pending, 1, 2, &next_id), 1u);
  EXPECT_TRUE(ShouldStartWorker(table, 1, 2, 2));
}

TEST(DispatchTest, CancelledAndInterruptedItemsAreDropped) {
  WorkerTable table;
  Worker& w = AddReady(table);
  std::deque<WorkItem> pending = Items(4);
  ASSERT_TRUE(pending[0].state->Cancel());  // cancelled while pending
  pending[1].requeued = true;               // put back after a death...
  pending[1].state->SetRunningOrNotifyCancel();
  ASSERT_TRUE(pending[1].state->ForceCancel());  // ...then interrupted
  ASSERT_TRUE(pending[3].state->Cancel());
  uint64_t next_id = 1;
  // Item 2 goes out; the cancelled one behind it is dropped too.
  EXPECT_EQ(HandOut(table, pending, 0, 0, &next_id), 0u);
  ASSERT_EQ(w.assigned.size(), 1u);
  EXPECT_TRUE(pending.empty());
}

TEST(DispatchTest, RequeuedItemsGoOutWithoutANewTransition) {
  WorkerTable table;
  Worker& w = AddReady(table);
  std::deque<WorkItem> pending;
  pending.push_back(Item());
  pending[0].requeued = true;
  pending[0].state->SetRunningOrNotifyCancel();  // RUNNING already
  uint64_t next_id = 1;
  EXPECT_EQ(HandOut(table, pending, 0, 0, &next_id), 0u);
  EXPECT_EQ(w.assigned.size(), 1u);
}

TEST(DispatchTest, RecordHandOutStartsTheRunningItemsDeadline) {
  WorkerTable table;
  Worker& w = AddReady(table);
  WorkItem item = Item();
  item.timeout = absl::Seconds(30);
  item.state->SetRunningOrNotifyCancel();
  OutgoingCall out;
  const absl::Time before = absl::Now();
  RecordHandOut(w, std::move(item), 9, &out);
  ASSERT_EQ(w.assigned.size(), 1u);
  EXPECT_GE(w.assigned[0].deadline, before + absl::Seconds(30));
  EXPECT_EQ(w.idle_since, absl::InfiniteFuture());
  EXPECT_EQ(out.sent, nullptr);  // small: one frame
}

}  // namespace
}  // namespace internal
}  // namespace procpool
