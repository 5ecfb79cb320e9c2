// Scheduler tests for donor priority and fairness (docs/architecture.md, "Queueing order"): under
// saturation a contributing account's task overtakes a free user's, the free user's task still
// starts within the aging bound, accounts take turns, contributions decay, and queued tasks report
// where they stand. Driven with a FakeClock through the fixture of scheduler_test_util.h.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "broker/scheduler_test_util.h"

namespace rma::broker::testing {
namespace {

using proto::TaskStatus;

class SchedulerFairTest : public SchedulerFixture {
 protected:
  // One CPU worker (tier 2: 1.5 weighted seconds a second) with one slot, for service "svc",
  // bound to `account` ("" = none).
  void RegisterWorker(const std::string& account) {
    Register("w", CpuCaps(), {"svc"}, 1, false, {}, account);
  }
  TaskId SubmitAs(const std::string& owner) {
    proto::Submit sub;
    sub.owner = owner;
    return Submit("svc", sub);
  }
  // The one task the worker was just given.
  proto::TaskAssignment Given() {
    auto tasks = Tasks("w");
    EXPECT_EQ(tasks.size(), 1u);
    return tasks.empty() ? proto::TaskAssignment{} : tasks[0];
  }
  // The worker's task runs for `d` and completes; returns the task it is given next.
  proto::TaskAssignment CompleteAfter(const proto::TaskAssignment& current, Duration d) {
    Advance(d);
    Result("w", current);
    return Given();
  }
  const Scheduler::Service& Svc() {
    for (const Scheduler::Service& svc : s().services()) {
      if (svc.in_use && svc.name == "svc") return svc;
    }
    ADD_FAILURE() << "no service 'svc'";
    return s().services().front();
  }
};

TEST_F(SchedulerFairTest, DonorsTaskOvertakesAFreeUsersUnderSaturation) {
  RegisterWorker("donor");
  SubmitAs("someone");
  proto::TaskAssignment running = Given();  // the pool's only worker is busy from now on
  const TaskId free_task = SubmitAs("free");
  const TaskId donor_task = SubmitAs("donor");  // queued later, while the donor is still class 0
  // The donor's worker completes 50 s of CPU work: 75 weighted seconds, class 1. Its account's
  // queued task moves ahead of the free user's.
  running = CompleteAfter(running, Seconds(50));
  EXPECT_DOUBLE_EQ(s().Contribution(now(), "donor"), 75.0);
  EXPECT_EQ(s().DonorClass("donor"), 1u);
  EXPECT_EQ(s().DonorClass("free"), 0u);
  EXPECT_EQ(running.task_id, donor_task);
  EXPECT_EQ(Status(free_task), TaskStatus::kQueued);
  running = CompleteAfter(running, Seconds(1));
  EXPECT_EQ(running.task_id, free_task);
}

TEST_F(SchedulerFairTest, FreeUsersTaskStartsWithinTheAgingBound) {
  ASSERT_EQ(config_.aging, Seconds(60));
  RegisterWorker("donor");
  SubmitAs("warm-up");
  Advance(Seconds(50));
  Result("w", Given());  // class 1, idle again
  ASSERT_EQ(s().DonorClass("donor"), 1u);
  SubmitAs("someone");
  proto::TaskAssignment running = Given();
  const Time submitted = now();
  const TaskId free_task = SubmitAs("free");
  SubmitAs("donor");
  // The donor always has a task waiting; each runs 10 s. Its tasks go first until the free task
  // has waited the aging time.
  std::optional<Time> started;
  int donors_first = 0;
  for (int i = 0; i < 30 && !started; ++i) {
    running = CompleteAfter(running, Seconds(10));
    if (running.task_id == free_task) {
      started = now();
    } else {
      ++donors_first;
      SubmitAs("donor");
    }
  }
  ASSERT_TRUE(started) << "the free user's task never started";
  EXPECT_GE(donors_first, 4);
  EXPECT_LE(*started - submitted, config_.aging + Seconds(10));  // aging + one task's run
}

TEST_F(SchedulerFairTest, AccountsTakeTurnsSoABacklogNeverBlocksAnotherAccount) {
  constexpr int kBacklog = 100000;
  config_.max_unfinished_tasks = kBacklog + 10;
  config_.max_unfinished_bytes = 64u << 20;
  RegisterWorker("");
  for (int i = 0; i < kBacklog; ++i) SubmitAs("bulk");
  proto::TaskAssignment running = Given();  // bulk's first
  const TaskId single = SubmitAs("single");
  EXPECT_EQ(s().View(now(), *s().FindTask(single), false).queue_position, 1u);
  running = CompleteAfter(running, Seconds(1));
  EXPECT_EQ(running.task_id, single);
  EXPECT_EQ(Svc().queued(), static_cast<size_t>(kBacklog - 1));
}

TEST_F(SchedulerFairTest, AccountsTakeTurns) {
  RegisterWorker("");
  SubmitAs("someone");
  proto::TaskAssignment running = Given();  // busy while both queue their tasks
  std::map<TaskId, std::string> owner;
  for (int i = 0; i < 3; ++i) owner[SubmitAs("a")] = "a";
  for (int i = 0; i < 3; ++i) owner[SubmitAs("b")] = "b";
  std::vector<std::string> order;
  for (int i = 0; i < 6; ++i) {
    running = CompleteAfter(running, Seconds(1));
    order.push_back(owner[running.task_id]);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "a", "b", "a", "b"}));
}

TEST_F(SchedulerFairTest, QueuedTasksReportPositionAndEstimatedStart) {
  RegisterWorker("");
  const TaskId first = SubmitAs("a");
  proto::TaskAssignment running = Given();
  const TaskId a2 = SubmitAs("a");
  // No start in a full second yet: the position is known, the time is not.
  proto::TaskView view = s().View(now(), *s().FindTask(a2), false);
  EXPECT_EQ(view.queue_position, 1u);
  EXPECT_EQ(view.estimated_start_s, 0);
  Advance(Seconds(1));  // one start in the last minute: 1/60 per second
  const TaskId a3 = SubmitAs("a");
  const TaskId b1 = SubmitAs("b");
  auto position = [&](TaskId id) { return s().View(now(), *s().FindTask(id), false); };
  // a just had its turn (its first task): b's comes before a's next.
  EXPECT_EQ(position(b1).queue_position, 1u);
  EXPECT_EQ(position(a2).queue_position, 2u);
  EXPECT_EQ(position(a3).queue_position, 3u);
  EXPECT_NEAR(position(b1).estimated_start_s, 60.0, 1e-6);
  EXPECT_NEAR(position(a2).estimated_start_s, 120.0, 1e-6);
  EXPECT_EQ(position(first).queue_position, 0u);  // running
  // ...and they start in that order.
  running = CompleteAfter(running, Seconds(1));
  EXPECT_EQ(running.task_id, b1);
  running = CompleteAfter(running, Seconds(1));
  EXPECT_EQ(running.task_id, a2);
  running = CompleteAfter(running, Seconds(1));
  EXPECT_EQ(running.task_id, a3);
}

TEST_F(SchedulerFairTest, ContributionsDecayAndTheClassFollows) {
  RegisterWorker("donor");
  SubmitAs("someone");
  Advance(Seconds(50));
  Result("w", Given());  // 75 weighted seconds: class 1
  ASSERT_EQ(s().DonorClass("donor"), 1u);
  Advance(config_.contribution_half_life);
  EXPECT_NEAR(s().Contribution(now(), "donor"), 37.5, 1e-6);
  EXPECT_EQ(s().DonorClass("donor"), 0u);  // the sweep saw it fall below 60
}

TEST_F(SchedulerFairTest, AGpuSecondWeighsMoreThanACpuSecond) {
  Register("gpu", GpuCaps(), {"svc"}, 1, false, {}, "gpu-donor");
  SubmitAs("someone");
  auto tasks = Tasks("gpu");
  ASSERT_EQ(tasks.size(), 1u);
  Advance(Seconds(20));
  Result("gpu", tasks[0]);
  EXPECT_DOUBLE_EQ(s().Contribution(now(), "gpu-donor"), 60.0);  // 20 s x 3.0
  EXPECT_EQ(s().DonorClass("gpu-donor"), 1u);
}

TEST_F(SchedulerFairTest, FailedResultsContributeNothing) {
  RegisterWorker("donor");
  SubmitAs("someone");
  proto::TaskAssignment t = Given();
  Advance(Seconds(50));
  Result("w", t, proto::Outcome::kError);
  EXPECT_EQ(s().Contribution(now(), "donor"), 0);
}

TEST_F(SchedulerFairTest, CancellingADelayedTaskKeepsTheCountsRight) {
  proto::Submit later;
  later.run_at_ms = ToUnixMs(now()) + 5000;
  const TaskId id = Submit("svc", later);
  EXPECT_EQ(Svc().delayed, 1u);
  ASSERT_TRUE(s().OnCancel(now(), "client", proto::CancelTask{1, id}));
  EXPECT_EQ(Status(id), TaskStatus::kCancelled);
  EXPECT_EQ(Svc().delayed, 0u);
  EXPECT_EQ(Svc().queued(), 0u);
  EXPECT_EQ(s().total_queued(), 0u);
}

// Uptime credit (docs/accounts.md, "Uptime credit"): an enrolled worker's account earns
// --uptime-credit per hour its worker is online and healthy, paid every --uptime-period-s pro rata;
// not while an admin has it drained, not after it died, never for a worker without an account.
class SchedulerUptimeTest : public SchedulerFairTest {
 protected:
  SchedulerUptimeTest() {
    config_.credits.mode = CreditMode::kTrack;
    config_.credits.uptime_credit = 3;              // per hour
    config_.credits.uptime_period = Seconds(1200);  // paid every 20 minutes: 1 credit each
  }
  std::vector<LedgerEntry> Uptime(const std::string& account) {
    std::vector<LedgerEntry> rows;
    for (const LedgerEntry& e : out_.ledger) {
      if (e.kind == "uptime" && e.account == account) rows.push_back(e);
    }
    return rows;
  }
};

TEST_F(SchedulerUptimeTest, AnEnrolledWorkerEarnsPerHealthyPeriodOnline) {
  s().credits().Learn({{"vol", "member", 0}, {"other", "member", 0}});
  Register("w", CpuCaps(), {"svc"}, 1, false, {}, "vol");
  Register("anon", CpuCaps(), {"svc"}, 1, false, {}, "");
  AdvanceInSteps(Seconds(1199), Ms(250));
  EXPECT_TRUE(Uptime("vol").empty()) << "paid before a whole period";
  AdvanceInSteps(Seconds(1202), Ms(250));  // 40 min in all: two periods
  std::vector<LedgerEntry> rows = Uptime("vol");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_DOUBLE_EQ(rows[0].amount, 1.0);
  EXPECT_EQ(rows[0].worker_id, "w");
  EXPECT_EQ(rows[0].task_id, TaskId(0));
  EXPECT_DOUBLE_EQ(*s().credits().Balance("vol"), 2.0);
  EXPECT_EQ(out_.ledger.size(), 2u) << "a worker without an account earned uptime";

  // Drained by an admin: not healthy time. Undrained: it counts again, from where it was.
  ASSERT_TRUE(s().DrainWorker(now(), "w").ok());
  AdvanceInSteps(Seconds(1300), Ms(250));
  EXPECT_EQ(Uptime("vol").size(), 2u) << "paid while drained";
  ASSERT_TRUE(s().UndrainWorker(now(), "w").ok());
  AdvanceInSteps(Seconds(1200), Ms(250));
  EXPECT_EQ(Uptime("vol").size(), 3u);

  // Dead (no heartbeats): nothing more.
  beating_.erase("w");
  AdvanceInSteps(Seconds(2500), Ms(250));
  EXPECT_EQ(Uptime("vol").size(), 3u) << "paid after the worker died";
}

TEST_F(SchedulerUptimeTest, NothingWhenUptimeCreditIsZeroOrCreditsAreOff) {
  config_.credits.uptime_credit = 0;
  s().credits().Learn({{"vol", "member", 0}});
  Register("w", CpuCaps(), {"svc"}, 1, false, {}, "vol");
  AdvanceInSteps(Seconds(3000), Ms(500));
  EXPECT_TRUE(Uptime("vol").empty());
}

// After a restart the contributions come back from the ledger's recent earned rows (already
// decayed by the store): each service's earnings divided by its credit multiplier.
TEST_F(SchedulerFairTest, ContributionsAreSeededFromRecentEarningsAfterARestart) {
  config_.credits.mode = CreditMode::kTrack;
  config_.credits.multipliers["svc"] = 2;
  s().SeedContributions(now(), {{"donor", "svc", 300}, {"donor", "other", 30}, {"x", "other", 70}});
  EXPECT_DOUBLE_EQ(s().Contribution(now(), "donor"), 180.0);  // 300 / 2 + 30 / 1
  EXPECT_EQ(s().DonorClass("donor"), 2u);
  EXPECT_EQ(s().DonorClass("x"), 1u);
  // The seeded class orders the queue as an earned one does.
  RegisterWorker("");
  SubmitAs("someone");
  proto::TaskAssignment running = Given();
  const TaskId free_task = SubmitAs("free");
  const TaskId donor_task = SubmitAs("donor");
  running = CompleteAfter(running, Seconds(1));
  EXPECT_EQ(running.task_id, donor_task);
  EXPECT_EQ(Status(free_task), TaskStatus::kQueued);
}

}  // namespace
}  // namespace rma::broker::testing
