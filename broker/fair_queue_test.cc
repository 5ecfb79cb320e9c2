// Tests of FairQueue, the order queued tasks start in: priority, aging, donor class, round-robin
// across accounts, FIFO within one; the candidates dispatch may look past; the position estimate;
// and that no operation scans the queue. Time comes from a FakeClock.
#include "broker/fair_queue.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace rma::broker {
namespace {

class FairQueueTest : public ::testing::Test {
 protected:
  // Queues a task of `account` and returns its id (ids count up from 1).
  TaskId Push(const std::string& account, uint32_t donor_class = 0, uint32_t priority = 0,
              bool front = false) {
    const TaskId id(++next_id_);
    slots_[id.value()] = queue_.Push(clock_.Now(), id, account, donor_class, priority, front);
    owners_[id.value()] = account;
    return id;
  }
  // Takes the next task in fair order (nullopt when empty).
  std::optional<TaskId> Next() {
    return queue_.TakeFirst(clock_.Now(), 1, [](TaskId) { return true; });
  }
  // The accounts of the next n tasks, in order.
  std::vector<std::string> NextOwners(size_t n) {
    std::vector<std::string> out;
    for (size_t i = 0; i < n; ++i) {
      auto id = Next();
      if (!id) break;
      out.push_back(owners_[id->value()]);
    }
    return out;
  }
  FairQueue::Position PositionOf(TaskId id, double starts_per_s = 0) {
    return queue_.PositionOf(clock_.Now(), slots_[id.value()], starts_per_s);
  }

  FakeClock clock_;
  FairQueue queue_{Seconds(60)};
  uint64_t next_id_ = 0;
  std::map<uint64_t, uint32_t> slots_;
  std::map<uint64_t, std::string> owners_;
};

TEST(DonorClassTest, ClassesDoubleFromOneWeightedMinute) {
  EXPECT_EQ(DonorClassOf(0), 0u);
  EXPECT_EQ(DonorClassOf(59.9), 0u);
  EXPECT_EQ(DonorClassOf(60), 1u);
  EXPECT_EQ(DonorClassOf(119), 1u);
  EXPECT_EQ(DonorClassOf(120), 2u);
  EXPECT_EQ(DonorClassOf(240), 3u);
  EXPECT_EQ(DonorClassOf(3840), 7u);
  EXPECT_EQ(DonorClassOf(1e12), kDonorClasses - 1);
  EXPECT_EQ(DonorClassOf(-5), 0u);
}

TEST_F(FairQueueTest, HigherPriorityAlwaysFirst) {
  Push("donor", /*donor_class=*/7, /*priority=*/1);
  const TaskId urgent = Push("free", 0, /*priority=*/5);
  clock_.Advance(Seconds(3600));  // aging works within a priority, never across them
  EXPECT_EQ(Next(), urgent);
}

TEST_F(FairQueueTest, AccountsOfOneClassTakeTurns) {
  for (int i = 0; i < 5; ++i) Push("a");
  Push("b");
  Push("c");
  // One account's backlog does not hold back the others' tasks: a, b, c, then a's rest.
  EXPECT_EQ(NextOwners(7), (std::vector<std::string>{"a", "b", "c", "a", "a", "a", "a"}));
  EXPECT_TRUE(queue_.empty());
}

TEST_F(FairQueueTest, EachAccountsTasksStartInOrder) {
  const TaskId a1 = Push("a");
  const TaskId a2 = Push("a");
  const TaskId retried = Push("a", 0, 0, /*front=*/true);
  EXPECT_EQ(Next(), retried);
  EXPECT_EQ(Next(), a1);
  EXPECT_EQ(Next(), a2);
}

TEST_F(FairQueueTest, HigherDonorClassFirst) {
  Push("free");
  Push("donor", /*donor_class=*/3);
  Push("donor", 3);
  Push("small-donor", /*donor_class=*/1);
  EXPECT_EQ(NextOwners(4), (std::vector<std::string>{"donor", "donor", "small-donor", "free"}));
}

TEST_F(FairQueueTest, AnAgedTaskGoesBeforeDonorsTasks) {
  const TaskId waiting = Push("free");
  // The donor submits a task every 10 s and one starts every 10 s: under saturation the donor's
  // class wins every turn until the free task has waited the aging time.
  for (int second = 0; second < 60; second += 10) {
    Push("donor", 5);
    EXPECT_EQ(NextOwners(1), std::vector<std::string>{"donor"}) << "at " << second << " s";
    clock_.Advance(Seconds(10));
  }
  Push("donor", 5);
  EXPECT_EQ(Next(), waiting);  // waited 60 s: aged
  EXPECT_EQ(NextOwners(1), std::vector<std::string>{"donor"});
}

TEST_F(FairQueueTest, AgedAccountsTakeTurnsSoAnOldBacklogDoesNotBlock) {
  for (int i = 0; i < 100; ++i) Push("backlog");
  clock_.Advance(Seconds(10));
  Push("single");
  clock_.Advance(Seconds(120));  // both have waited past the aging time
  EXPECT_EQ(NextOwners(2), (std::vector<std::string>{"backlog", "single"}));
}

TEST_F(FairQueueTest, AgingZeroMeansTurnsOnly) {
  FairQueue queue(Duration(0));
  queue.Push(clock_.Now(), TaskId(1), "free", 0, 0, false);
  queue.Push(clock_.Now(), TaskId(2), "donor", 7, 0, false);
  queue.Push(clock_.Now(), TaskId(3), "donor", 7, 0, false);
  auto take = [&] { return queue.TakeFirst(clock_.Now(), 1, [](TaskId) { return true; }); };
  EXPECT_EQ(take(), TaskId(1));
  EXPECT_EQ(take(), TaskId(2));
  EXPECT_EQ(take(), TaskId(3));
}

TEST_F(FairQueueTest, ReclassingReordersQueuedTasks) {
  Push("a");
  Push("b");
  queue_.SetDonorClass("b", 4);
  EXPECT_EQ(NextOwners(2), (std::vector<std::string>{"b", "a"}));
  Push("a");
  Push("b");
  queue_.SetDonorClass("b", 0);
  queue_.SetDonorClass("a", 2);
  EXPECT_EQ(NextOwners(2), (std::vector<std::string>{"a", "b"}));
}

TEST_F(FairQueueTest, RemovedTasksLeaveAndTheRestKeepTheirOrder) {
  const TaskId a1 = Push("a");
  const TaskId a2 = Push("a");
  const TaskId b1 = Push("b");
  queue_.Remove(clock_.Now(), slots_[a1.value()]);
  EXPECT_EQ(queue_.size(), 2u);
  EXPECT_EQ(Next(), a2);  // a kept its turn
  EXPECT_EQ(Next(), b1);
  EXPECT_EQ(Next(), std::nullopt);
  EXPECT_EQ(queue_.OldestSince(), std::nullopt);
}

TEST_F(FairQueueTest, DispatchLooksAtLaneHeadsFirstThenDeeper) {
  for (int i = 0; i < 3; ++i) Push("a");
  Push("b");
  Push("c");
  std::vector<std::string> seen;
  auto none = queue_.TakeFirst(clock_.Now(), 4, [&](TaskId id) {
    seen.push_back(owners_[id.value()]);
    return false;
  });
  EXPECT_EQ(none, std::nullopt);
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b", "c", "a"}));  // at most 4 looked at
  EXPECT_EQ(queue_.size(), 5u);
  // The first one accepted is taken: here b's, when a's need what nobody has.
  auto taken =
      queue_.TakeFirst(clock_.Now(), 16, [&](TaskId id) { return owners_[id.value()] != "a"; });
  ASSERT_TRUE(taken);
  EXPECT_EQ(owners_[taken->value()], "b");
}

TEST_F(FairQueueTest, PositionCountsWhatStartsBefore) {
  const TaskId a1 = Push("a");
  Push("a");
  const TaskId a3 = Push("a");
  const TaskId b1 = Push("b");
  const TaskId d1 = Push("donor", 3);
  Push("urgent", 0, /*priority=*/4);
  EXPECT_EQ(PositionOf(d1).ahead, 1u);    // the higher priority
  EXPECT_EQ(PositionOf(a1).ahead, 2u);    // urgent, donor, then a's turn (b's comes after)
  EXPECT_EQ(PositionOf(b1).ahead, 3u);    // urgent, donor, a1 (min(3, 0 + 1))
  EXPECT_EQ(PositionOf(a3).ahead, 5u);    // urgent, donor, a1, a2, b1
  EXPECT_EQ(PositionOf(b1).start_s, -1);  // no start rate: unknown
  EXPECT_DOUBLE_EQ(PositionOf(b1, /*starts_per_s=*/2).start_s, 2.0);  // 4 starts at 2/s
  // Checked against the real order: urgent, donor, a1, b1, a2, a3.
  EXPECT_EQ(NextOwners(6), (std::vector<std::string>{"urgent", "donor", "a", "b", "a", "a"}));
}

TEST_F(FairQueueTest, PositionIsCappedByAging) {
  for (int i = 0; i < 1000; ++i) Push("donor", 5);
  const TaskId waiting = Push("free");
  EXPECT_EQ(PositionOf(waiting).ahead, 1000u);  // without a rate: the order as it stands
  // At 1 start/s it ages after 60 starts, then goes next to the donor's turn.
  const FairQueue::Position pos = PositionOf(waiting, 1.0);
  EXPECT_EQ(pos.ahead, 61u);
  EXPECT_DOUBLE_EQ(pos.start_s, 62.0);
  clock_.Advance(Seconds(60));
  EXPECT_EQ(PositionOf(waiting, 1.0).ahead, 1u);  // aged: one round of the aged accounts
}

TEST_F(FairQueueTest, OneAccountsHugeBacklogDoesNotDelayAnothersTask) {
  constexpr int kBacklog = 100000;
  Push("bulk");
  EXPECT_EQ(NextOwners(1), std::vector<std::string>{"bulk"});  // started at once
  for (int i = 1; i < kBacklog; ++i) Push("bulk");
  const TaskId single = Push("single");
  EXPECT_EQ(PositionOf(single).ahead, 0u);
  const uint64_t before = queue_.work();
  EXPECT_EQ(Next(), single);  // bulk just had its turn
  EXPECT_LT(queue_.work() - before, 20u) << "taking a task must not scan the queue";
  EXPECT_EQ(NextOwners(2), (std::vector<std::string>{"bulk", "bulk"}));
}

TEST_F(FairQueueTest, AnAccountThatJustHadItsTurnWaitsForTheOthers) {
  Push("a");
  EXPECT_EQ(NextOwners(1), std::vector<std::string>{"a"});
  // a had nothing left queued and comes back before b arrives: b still goes first, as a has had
  // its turn (remembered while the ring's virtual time has not passed it).
  Push("a");
  Push("b");
  EXPECT_EQ(NextOwners(2), (std::vector<std::string>{"b", "a"}));
}

TEST_F(FairQueueTest, RememberedAccountsAreBounded) {
  // Each account queues one task that starts at once: the ring's virtual time never moves, so
  // nothing would ever be forgotten without a bound.
  for (int i = 0; i < 5000; ++i) {
    Push("acct" + std::to_string(i));
    ASSERT_TRUE(Next());
  }
  EXPECT_TRUE(queue_.empty());
  EXPECT_LE(queue_.accounts(), FairQueue::kMaxRemembered);
}

TEST_F(FairQueueTest, WorkPerOperationStaysBoundedAsTheQueueGrows) {
  // Many accounts, classes and priorities, with time moving so lanes age: the elementary steps
  // per operation must not grow with the number of queued tasks (O(log n) at most).
  constexpr int kAccounts = 500;
  constexpr int kTasks = 100000;
  for (int i = 0; i < kTasks; ++i) {
    const int account = (i * 7919) % kAccounts;
    Push("acct" + std::to_string(account), account % kDonorClasses, (i / 7) % 3);
    if (i % 100 == 0) clock_.Advance(Ms(100));
  }
  const uint64_t after_pushes = queue_.work();
  EXPECT_LT(after_pushes, 20u * kTasks);
  for (int i = 0; i < 1000; ++i)
    queue_.SetDonorClass("acct" + std::to_string(i % kAccounts), i % 5);
  size_t taken = 0;
  while (Next()) {
    ++taken;
    if (taken % 100 == 0) clock_.Advance(Ms(500));
  }
  EXPECT_EQ(taken, static_cast<size_t>(kTasks));
  EXPECT_LT(queue_.work() - after_pushes, 30u * kTasks);
}

}  // namespace
}  // namespace rma::broker
