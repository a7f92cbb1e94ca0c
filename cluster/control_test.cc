#include "cluster/control.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace procpool {
namespace cluster {
namespace {

constexpr char kKey[] = "0123456789abcdef0123456789abcdef";

TEST(ControlTest, RanksConnectProveAndHearTheGoodbye) {
  absl::StatusOr<ControlListener> listener = ListenForRanks();
  ASSERT_TRUE(listener.ok()) << listener.status();
  ASSERT_FALSE(listener->addresses.empty());
  // Loopback is last: ranks on other hosts try the routable ones first.
  EXPECT_EQ(listener->addresses.back().rfind("127.", 0), 0u)
      << listener->addresses.back();

  std::string ip1, ip2;
  absl::StatusOr<UniqueFd> r1 = ConnectToParent(
      listener->addresses, kKey, 1, absl::Seconds(5), &ip1);
  absl::StatusOr<UniqueFd> r2 = ConnectToParent(
      listener->addresses, kKey, 2, absl::Seconds(5), &ip2);
  ASSERT_TRUE(r1.ok()) << r1.status();
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_FALSE(ip1.empty());

  absl::StatusOr<std::vector<UniqueFd>> ranks = AcceptRanks(
      listener->fd.get(), kKey, 3, absl::Now() + absl::Seconds(10));
  ASSERT_TRUE(ranks.ok()) << ranks.status();
  ASSERT_EQ(ranks->size(), 3u);
  EXPECT_FALSE((*ranks)[0].valid());
  ASSERT_TRUE((*ranks)[1].valid());
  ASSERT_TRUE((*ranks)[2].valid());

  SendGoodbye({(*ranks)[1].get(), (*ranks)[2].get()}, 7);
  const ParentEnd end = ReadParentEnd(r1->get());
  EXPECT_TRUE(end.said_goodbye) << end.what;
  EXPECT_EQ(end.status, 7);
  EXPECT_EQ(ReadParentEnd(r2->get()).status, 7);
}

// HoldUntilExit's goodbye comes from the process that holds the connections
// at its exit(), with its status; a child forked from it that calls exit()
// says nothing.
TEST(ControlTest, GoodbyeAtExitComesFromTheHolderOnly) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  UniqueFd rank_end(fds[0]);
  const pid_t holder = fork();
  ASSERT_GE(holder, 0);
  if (holder == 0) {
    close(fds[0]);
    std::vector<UniqueFd> held;
    held.emplace_back(fds[1]);
    HoldUntilExit(std::move(held));
    const pid_t child = fork();
    if (child == 0) exit(9);  // inherits the handler: must not say goodbye
    waitpid(child, nullptr, 0);
    exit(5);
  }
  close(fds[1]);
  const ParentEnd end = ReadParentEnd(rank_end.get());
  EXPECT_TRUE(end.said_goodbye) << end.what;
  EXPECT_EQ(end.status, 5);
  int status = 0;
  waitpid(holder, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 5);
}

TEST(ControlTest, ARankThatVanishesIsNoGoodbye) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  UniqueFd rank_end(fds[0]);
  close(fds[1]);  // rank 0 died: no goodbye
  const ParentEnd end = ReadParentEnd(rank_end.get());
  EXPECT_FALSE(end.said_goodbye);
  EXPECT_NE(end.what.find("without a goodbye"), std::string::npos) << end.what;
}

TEST(ControlTest, WrongKeyAndStrangersAreNotCounted) {
  absl::StatusOr<ControlListener> listener = ListenForRanks();
  ASSERT_TRUE(listener.ok()) << listener.status();
  std::string ip;
  // A rank with another key, and one that claims rank 1 twice.
  absl::StatusOr<UniqueFd> wrong = ConnectToParent(
      listener->addresses, "another key", 1, absl::Seconds(5), &ip);
  ASSERT_TRUE(wrong.ok());
  absl::StatusOr<UniqueFd> good = ConnectToParent(
      listener->addresses, kKey, 1, absl::Seconds(5), &ip);
  ASSERT_TRUE(good.ok());
  absl::StatusOr<UniqueFd> again = ConnectToParent(
      listener->addresses, kKey, 1, absl::Seconds(5), &ip);
  ASSERT_TRUE(again.ok());
  const absl::Time start = absl::Now();
  absl::StatusOr<std::vector<UniqueFd>> ranks = AcceptRanks(
      listener->fd.get(), kKey, 3, absl::Now() + absl::Seconds(3));
  ASSERT_FALSE(ranks.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(ranks.status()));
  EXPECT_NE(ranks.status().message().find("rank(s) 2"), std::string::npos)
      << ranks.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(ControlTest, NoParentAnswersIsAClearError) {
  std::string ip;
  // A port nobody listens on (bind one, close it).
  absl::StatusOr<ControlListener> listener = ListenForRanks();
  ASSERT_TRUE(listener.ok());
  const std::vector<std::string> addresses = {listener->addresses.back()};
  listener->fd.reset();
  absl::StatusOr<UniqueFd> fd =
      ConnectToParent(addresses, kKey, 1, absl::Seconds(2), &ip);
  ASSERT_FALSE(fd.ok());
  EXPECT_NE(fd.status().message().find("cannot reach rank 0"),
            std::string::npos)
      << fd.status();
}

}  // namespace
}  // namespace cluster
}  // namespace procpool
