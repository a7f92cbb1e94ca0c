#include "executor/internal/worker_table.h"

#include <memory>
#include <string>
#include <vector>

#include "executor/internal/idle_channel_for_test.h"
#include "gtest/gtest.h"

namespace procpool {
namespace internal {
namespace {

Worker& AddOpen(WorkerTable& table) {
  Worker& w = table.Add();
  w.channel = std::make_unique<IdleChannel>();
  return w;
}

TEST(WorkerTableTest, AddCountsStartingUntilHello) {
  WorkerTable table;
  Worker& a = AddOpen(table);
  Worker& b = AddOpen(table);
  EXPECT_EQ(a.id, 1);
  EXPECT_EQ(b.id, 2);
  EXPECT_EQ(a.state, WorkerState::kStarting);
  EXPECT_EQ(table.starting(), 2);
  EXPECT_FALSE(CanTakeWork(a, 0));
  table.Greet(a);
  EXPECT_EQ(a.state, WorkerState::kReady);
  EXPECT_TRUE(a.greeted());
  EXPECT_EQ(table.starting(), 1);
  EXPECT_TRUE(CanTakeWork(a, 0));
  table.Greet(a);  // a second Hello changes nothing
  EXPECT_EQ(table.starting(), 1);
  EXPECT_TRUE(table.TakeChanged());
  EXPECT_FALSE(table.TakeChanged());
  table.Erase(a.id);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_TRUE(table.TakeChanged());
  EXPECT_EQ(table.Add().id, 3);  // ids are never reused
}

TEST(WorkerTableTest, ShutdownBeforeHelloStillCountsAsStarting) {
  WorkerTable table;
  Worker& w = AddOpen(table);
  table.SendingShutdown(w);
  EXPECT_EQ(w.state, WorkerState::kShuttingDownBeforeHello);
  EXPECT_TRUE(w.shutdown_sent());
  EXPECT_FALSE(w.greeted());
  EXPECT_EQ(table.starting(), 1);
  table.Greet(w);
  EXPECT_EQ(w.state, WorkerState::kShuttingDown);
  EXPECT_TRUE(w.greeted());
  EXPECT_TRUE(w.shutdown_sent());
  EXPECT_EQ(table.starting(), 0);
  EXPECT_FALSE(CanTakeWork(w, 0));
}

TEST(WorkerTableTest, ShutdownOfAReadyWorker) {
  WorkerTable table;
  Worker& w = AddOpen(table);
  table.Greet(w);
  table.SendingShutdown(w);
  EXPECT_EQ(w.state, WorkerState::kShuttingDown);
  EXPECT_FALSE(CanTakeWork(w, 0));
  table.SendingShutdown(w);
  EXPECT_EQ(w.state, WorkerState::kShuttingDown);
  EXPECT_EQ(table.starting(), 0);
}

TEST(WorkerTableTest, ClosingTheChannelEndsStartingOnce) {
  WorkerTable table;
  Worker& starting = AddOpen(table);
  Worker& ready = AddOpen(table);
  table.Greet(ready);
  ASSERT_EQ(table.starting(), 1);
  starting.channel.reset();
  table.ChannelClosed(starting);
  EXPECT_EQ(table.starting(), 0);
  ready.channel.reset();
  table.ChannelClosed(ready);  // was not counted
  EXPECT_EQ(table.starting(), 0);
  EXPECT_FALSE(CanTakeWork(ready, 0));  // no channel
}

TEST(WorkerTableTest, KilledIsTheSignalSent) {
  WorkerTable table;
  Worker& w = AddOpen(table);
  table.Greet(w);
  EXPECT_FALSE(w.killed());
  w.signal_sent = 15;
  EXPECT_TRUE(w.killed());
  EXPECT_FALSE(CanTakeWork(w, 0));
  // Told to shut down after the signal: both stay true.
  table.SendingShutdown(w);
  EXPECT_TRUE(w.killed());
  EXPECT_TRUE(w.shutdown_sent());
}

TEST(WorkerTableTest, MaxTasksPerChildLimitsCanTakeWork) {
  WorkerTable table;
  Worker& w = AddOpen(table);
  table.Greet(w);
  w.tasks_assigned = 2;
  EXPECT_TRUE(CanTakeWork(w, 0));
  EXPECT_TRUE(CanTakeWork(w, 3));
  EXPECT_FALSE(CanTakeWork(w, 2));
}

TEST(WorkerTableTest, CrashOfNamesTheWorkerAndItsTask) {
  WorkerTable table;
  Worker& w = AddOpen(table);
  w.process.pid = 321;
  WorkerCrash idle = CrashOf(w, /*with_task=*/true);
  EXPECT_EQ(idle.pid, 321);
  EXPECT_FALSE(idle.task_name.has_value());
  Assigned a{7, WorkItem{}};
  a.item.task = "Square";
  w.assigned.push_back(std::move(a));
  WorkerCrash busy = CrashOf(w, /*with_task=*/true);
  EXPECT_EQ(busy.task_name, "Square");
  EXPECT_EQ(busy.work_id, 7);
  EXPECT_FALSE(CrashOf(w, /*with_task=*/false).task_name.has_value());

  Worker& remote = AddOpen(table);
  remote.process.pid = 0;  // before its Hello
  remote.remote = "10.0.0.2:7000";
  WorkerCrash r = CrashOf(remote, /*with_task=*/false);
  EXPECT_EQ(r.pid, -1);
  EXPECT_EQ(r.host, "10.0.0.2:7000");
}

TEST(WorkerTableTest, TakeBackArgsCopiesWhileTheTransportHoldsThem) {
  Assigned a{1, WorkItem{}};
  a.sent = std::make_shared<SentCall>();
  a.sent->call.args = {"big"};
  std::shared_ptr<SentCall> transport = a.sent;  // the transport's hold
  EXPECT_EQ(ReleasedArgs(a), nullptr);
  TakeBackArgs(a);
  EXPECT_EQ(a.item.args, std::vector<std::string>{"big"});
  EXPECT_EQ(transport->call.args, std::vector<std::string>{"big"});
  EXPECT_EQ(a.sent, nullptr);

  Assigned b{2, WorkItem{}};
  b.sent = std::make_shared<SentCall>();
  b.sent->call.args = {"mine"};
  ASSERT_NE(ReleasedArgs(b), nullptr);
  TakeBackArgs(b);
  EXPECT_EQ(b.item.args, std::vector<std::string>{"mine"});
}

}  // namespace
}  // namespace internal
}  // namespace procpool
