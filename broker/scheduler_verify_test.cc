// Scheduler tests for verification by replication (docs/architecture.md, "Verification"): a
// sampled result is returned only once a worker of another credential and account agreed; a
// disagreement brings a third result and the loser is penalised; three different results end the
// task dead; only agreeing results earn credits; a replica that cannot run in time or keeps failing
// lets the first result go back unverified; a verified service's chunks are not relayed. And the
// issue's pool: 3 honest workers and a liar wrong on 30% of its results, sampled at 0.2, over 2,000
// tasks. Driven with a FakeClock through the fixture of scheduler_test_util.h.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "broker/scheduler_test_util.h"

namespace rma::broker::testing {
namespace {

using proto::TaskStatus;
using VerifyOutcome = Scheduler::VerifyOutcome;

class SchedulerVerifyTest : public SchedulerFixture {
 protected:
  explicit SchedulerVerifyTest(double sample_rate = 1.0) {
    CatalogEntry e;
    e.service = "sum";
    e.verify = VerifySpec{sample_rate, VerifySpec::Compare::kJson, kDefaultNumericTolerance};
    config_.catalog.push_back(e);
    config_.credits.mode = CreditMode::kTrack;
    config_.verify_wait = Seconds(5);
  }
  void SetUp() override {
    s().credits().Learn({{"alice", "member", 0},
                         {"bob", "member", 0},
                         {"carol", "member", 0},
                         {"dave", "member", 0},
                         {"client", "member", 100}});
  }
  TaskId SubmitSum(const std::string& payload = "1+2") {
    proto::Submit sub;
    sub.payload = payload;
    sub.max_attempts = 3;
    sub.owner = "client";
    return Submit("sum", sub);
  }
  const Scheduler::Task& TaskOf(TaskId id) { return *s().FindTask(id); }
  OutcomeCounts Counts(const std::string& worker_id) {
    auto snap = s().reputation().Snapshot(now(), "id:" + worker_id);
    return snap ? snap->counts : OutcomeCounts{};
  }
  uint64_t Outcomes(VerifyOutcome o) { return s().verifications(o); }
  std::vector<LedgerEntry> Ledger(TaskId id, const std::string& kind) {
    std::vector<LedgerEntry> rows;
    for (const LedgerEntry& e : out_.ledger) {
      if (e.task_id == id && e.kind == kind) rows.push_back(e);
    }
    return rows;
  }
  // The one TASK sent to `worker` since the last call.
  proto::TaskAssignment OneTask(const std::string& worker) {
    auto given = Tasks(worker);
    EXPECT_EQ(given.size(), 1u) << worker;
    return given.empty() ? proto::TaskAssignment{} : given[0];
  }
};

TEST_F(SchedulerVerifyTest, ASampledResultReturnsOnlyOnceAWorkerOfAnotherAccountAgrees) {
  Register("a1", CpuCaps(), {"sum"}, 1, false, {}, "alice");
  const TaskId id = SubmitSum();
  const proto::TaskAssignment first = OneTask("a1");
  // alice's second machine and bob's arrive; only bob's may check alice's result.
  Register("a2", CpuCaps(), {"sum"}, 1, false, {}, "alice");
  Register("b1", CpuCaps(), {"sum"}, 1, false, {}, "bob");
  const size_t bytes_before = s().unfinished_bytes();
  Result("a1", first, proto::Outcome::kOk, R"({"sum": 3})");
  EXPECT_EQ(Status(id), TaskStatus::kRunning) << "a sampled result was returned unchecked";
  EXPECT_EQ(s().unfinished_bytes(), bytes_before + 10) << "the held result is not in the budget";
  EXPECT_TRUE(Tasks("a2").empty()) << "the replica went to the same account";
  const proto::TaskAssignment replica = OneTask("b1");
  EXPECT_EQ(replica.attempt, 2u);
  EXPECT_EQ(replica.payload, "1+2");
  EXPECT_TRUE(Ledger(id, "earned").empty()) << "paid before verification";
  // The same JSON value, spelled differently: they agree.
  Result("b1", replica, proto::Outcome::kOk, R"({ "sum" : 3.0 })");
  EXPECT_EQ(Status(id), TaskStatus::kCompleted);
  EXPECT_TRUE(TaskOf(id).verified);
  EXPECT_EQ(TaskOf(id).result, R"({"sum": 3})") << "the first agreeing result is returned";
  EXPECT_EQ(s().unfinished_bytes(), 0u);
  EXPECT_EQ(Outcomes(VerifyOutcome::kSampled), 1u);
  EXPECT_EQ(Outcomes(VerifyOutcome::kAgreed), 1u);
  EXPECT_DOUBLE_EQ(Counts("a1").agreements, 1);
  EXPECT_DOUBLE_EQ(Counts("b1").agreements, 1);
  // Both agreeing workers earn for their attempt; the submitter pays once.
  auto earned = Ledger(id, "earned");
  ASSERT_EQ(earned.size(), 2u);
  EXPECT_EQ(earned[0].account, "alice");
  EXPECT_EQ(earned[0].attempt, 1u);
  EXPECT_EQ(earned[1].account, "bob");
  EXPECT_EQ(earned[1].attempt, 2u);
  EXPECT_EQ(Ledger(id, "spent").size(), 1u);
}

TEST_F(SchedulerVerifyTest, ADisagreementBringsAThirdWorkerAndTheLoserEarnsNothing) {
  Register("liar", CpuCaps(), {"sum"}, 1, false, {}, "alice");
  const TaskId id = SubmitSum();
  const proto::TaskAssignment first = OneTask("liar");
  Register("b1", CpuCaps(), {"sum"}, 1, false, {}, "bob");
  Register("c1", CpuCaps(), {"sum"}, 1, false, {}, "carol");
  Result("liar", first, proto::Outcome::kOk, "4");
  // Whichever of bob and carol is first in line takes the replica; the other the tie-break.
  std::vector<proto::TaskAssignment> b = Tasks("b1"), c = Tasks("c1");
  ASSERT_EQ(b.size() + c.size(), 1u);
  const std::string second = b.empty() ? "c1" : "b1";
  const std::string third = b.empty() ? "b1" : "c1";
  Result(second, b.empty() ? c[0] : b[0], proto::Outcome::kOk, "3");
  EXPECT_EQ(Status(id), TaskStatus::kRunning) << "two different results settled nothing";
  EXPECT_TRUE(Tasks("liar").empty()) << "the tie-break went to a worker that already answered";
  const proto::TaskAssignment tie = OneTask(third);
  EXPECT_EQ(tie.attempt, 3u);
  Result(third, tie, proto::Outcome::kOk, "3");
  EXPECT_EQ(Status(id), TaskStatus::kCompleted);
  EXPECT_EQ(TaskOf(id).result, "3") << "the liar's answer won";
  EXPECT_TRUE(TaskOf(id).verified);
  EXPECT_EQ(Outcomes(VerifyOutcome::kTieBroken), 1u);
  EXPECT_DOUBLE_EQ(Counts("liar").disagreements, 1);
  EXPECT_DOUBLE_EQ(Counts("liar").agreements, 0);
  EXPECT_DOUBLE_EQ(Counts(second).agreements, 1);
  EXPECT_DOUBLE_EQ(Counts(third).agreements, 1);
  for (const LedgerEntry& e : Ledger(id, "earned")) {
    EXPECT_NE(e.account, "alice") << "a losing result earned credits";
  }
  EXPECT_EQ(Ledger(id, "earned").size(), 2u);
  EXPECT_EQ(Ledger(id, "spent").size(), 1u);
}

TEST_F(SchedulerVerifyTest, ThreeDifferentResultsEndTheTaskDeadAndNobodyEarns) {
  Register("a1", CpuCaps(), {"sum"}, 1, false, {}, "alice");
  const TaskId id = SubmitSum();
  const proto::TaskAssignment first = OneTask("a1");
  Register("b1", CpuCaps(), {"sum"}, 1, false, {}, "bob");
  Result("a1", first, proto::Outcome::kOk, "1");
  Result("b1", OneTask("b1"), proto::Outcome::kOk, "2");
  Register("c1", CpuCaps(), {"sum"}, 1, false, {}, "carol");
  Result("c1", OneTask("c1"), proto::Outcome::kOk, "3");
  EXPECT_EQ(Status(id), TaskStatus::kDead);
  EXPECT_EQ(TaskOf(id).error_code, "verification_failed");
  EXPECT_FALSE(TaskOf(id).verified);
  EXPECT_EQ(Outcomes(VerifyOutcome::kNoMajority), 1u);
  EXPECT_TRUE(Ledger(id, "earned").empty());
  EXPECT_TRUE(Ledger(id, "spent").empty());
  EXPECT_TRUE(Tasks("a1").empty() && Tasks("b1").empty()) << "a fourth attempt ran";
}

TEST_F(SchedulerVerifyTest, WithNoWorkerOfAnotherAccountNothingIsSampled) {
  Register("a1", CpuCaps(), {"sum"}, 1, false, {}, "alice");
  Register("a2", CpuCaps(), {"sum"}, 1, false, {}, "alice");
  const TaskId id = SubmitSum();
  std::vector<proto::TaskAssignment> given = Tasks("a1");
  const std::string worker = given.empty() ? "a2" : "a1";
  if (given.empty()) given = Tasks("a2");
  ASSERT_EQ(given.size(), 1u);
  Result(worker, given[0], proto::Outcome::kOk, "3");
  EXPECT_EQ(Status(id), TaskStatus::kCompleted) << "waited for a check nobody can make";
  EXPECT_FALSE(TaskOf(id).verified);
  EXPECT_EQ(Outcomes(VerifyOutcome::kSampled), 0u);
  EXPECT_EQ(Ledger(id, "earned").size(), 1u);
}

TEST_F(SchedulerVerifyTest, AReplicaThatCannotStartInTimeLetsTheFirstResultGoUnverified) {
  Register("b1", CpuCaps(), {"sum"}, 1, false, {}, "bob");
  const TaskId busy = SubmitSum("long");
  (void)OneTask("b1");  // bob's only slot is taken for now
  Register("a1", CpuCaps(), {"sum"}, 1, false, {}, "alice");
  const TaskId id = SubmitSum();
  Result("a1", OneTask("a1"), proto::Outcome::kOk, "3");
  EXPECT_EQ(Status(id), TaskStatus::kQueued) << "not waiting for its replica";
  AdvanceInSteps(Seconds(4), Ms(500));
  EXPECT_EQ(Status(id), TaskStatus::kQueued);
  AdvanceInSteps(Seconds(2), Ms(500));
  EXPECT_EQ(Status(id), TaskStatus::kCompleted);
  EXPECT_FALSE(TaskOf(id).verified);
  EXPECT_EQ(TaskOf(id).result, "3");
  EXPECT_EQ(Outcomes(VerifyOutcome::kUnverified), 1u);
  EXPECT_EQ(Ledger(id, "earned").size(), 1u) << "an unchecked result earns as an unsampled one";
  EXPECT_EQ(Status(busy), TaskStatus::kRunning);
}

TEST_F(SchedulerVerifyTest, FailingReplicasAreNotAskedAgainAndTheFirstResultStands) {
  Register("a1", CpuCaps(), {"sum"}, 1, false, {}, "alice");
  const TaskId id = SubmitSum();
  const proto::TaskAssignment first = OneTask("a1");
  Register("b1", CpuCaps(), {"sum"}, 1, false, {}, "bob");
  Result("a1", first, proto::Outcome::kOk, "3");
  Result("b1", OneTask("b1"), proto::Outcome::kError);
  EXPECT_EQ(Status(id), TaskStatus::kQueued);
  EXPECT_TRUE(Tasks("b1").empty()) << "a failed replica's worker was asked again";
  Register("c1", CpuCaps(), {"sum"}, 1, false, {}, "carol");
  Result("c1", OneTask("c1"), proto::Outcome::kError);
  // Two replicas failed: the task's own result stands, unverified; its failures did not count
  // against the task.
  EXPECT_EQ(Status(id), TaskStatus::kCompleted);
  EXPECT_FALSE(TaskOf(id).verified);
  EXPECT_EQ(TaskOf(id).failures, 0u);
  EXPECT_EQ(Outcomes(VerifyOutcome::kUnverified), 1u);
}

// A quarantined worker gets no client task, but a replica nobody else is free for: its answer is
// checked like any other, and its agreements are the evidence an admin restores it on.
TEST_F(SchedulerVerifyTest, AQuarantinedWorkerRunsOnlyReplicasNobodyElseIsFreeFor) {
  Register("q1", CpuCaps(), {"sum"}, 1, false, {}, "carol");
  ASSERT_TRUE(s().SetWorkerTrust(now(), "q1", Trust::kQuarantined).ok());
  Register("a1", CpuCaps(), {"sum"}, 1, false, {}, "alice");
  Register("b1", CpuCaps(), {"sum"}, 1, false, {}, "bob");
  // Two client tasks: alice's and bob's machines take them; the quarantined one takes none.
  const TaskId t1 = SubmitSum("1");
  const TaskId t2 = SubmitSum("2");
  EXPECT_TRUE(Tasks("q1").empty()) << "a quarantined worker got a client task";
  const proto::TaskAssignment on_a = OneTask("a1");
  const proto::TaskAssignment on_b = OneTask("b1");
  const TaskId third = SubmitSum("3");  // waits: nobody but the quarantined worker is free
  EXPECT_TRUE(Tasks("q1").empty()) << "a quarantined worker got a client task";
  // alice's result is sampled; bob is busy, so its replica goes to the quarantined worker.
  Result("a1", on_a, proto::Outcome::kOk, "1");
  const proto::TaskAssignment probe = OneTask("q1");
  EXPECT_EQ(probe.task_id, on_a.task_id);
  EXPECT_EQ(probe.attempt, 2u);
  Result("q1", probe, proto::Outcome::kOk, "1");
  EXPECT_EQ(Status(on_a.task_id), TaskStatus::kCompleted);
  EXPECT_TRUE(TaskOf(on_a.task_id).verified);
  EXPECT_DOUBLE_EQ(Counts("q1").agreements, 1);
  EXPECT_EQ(s().reputation().State("id:q1"), WorkerState::kQuarantined) << "only an admin lifts it";
  // The waiting client task went to alice's machine, never to the quarantined one.
  EXPECT_EQ(OneTask("a1").task_id, third);
  EXPECT_TRUE(Tasks("q1").empty());
  (void)t1;
  (void)t2;
  (void)on_b;
}

TEST_F(SchedulerVerifyTest, AVerifiedServicesChunksAreNotRelayedToASynchronousCaller) {
  Register("a1", CpuCaps(), {"sum"}, 1, false, {}, "alice");
  Register("b1", CpuCaps(), {"sum"}, 1, false, {}, "bob");
  proto::Submit sub;
  sub.service = "sum";
  sub.payload = "1+2";
  sub.mode = proto::SubmitMode::kSync;
  sub.ref = 7;
  s().OnSubmit(now(), "caller", sub);
  std::vector<proto::TaskAssignment> a = Tasks("a1"), b = Tasks("b1");
  ASSERT_EQ(a.size() + b.size(), 1u);
  const std::string worker = a.empty() ? "b1" : "a1";
  const proto::TaskAssignment t = a.empty() ? b[0] : a[0];
  proto::Partial chunk;
  chunk.task_id = t.task_id;
  chunk.attempt = t.attempt;
  chunk.seq = 0;
  chunk.data = "wrong";
  s().OnWorkerPartial(now(), Ident(worker), chunk);
  EXPECT_EQ(out_.Count(out_.to_clients, "caller", proto::Command::kCallPartial), 0u)
      << "a verified service's output reached its caller before its result";
  Result(worker, t, proto::Outcome::kOk, "3");
  const std::string other = worker == "a1" ? "b1" : "a1";
  Result(other, OneTask(other), proto::Outcome::kOk, "3");
  auto infos = out_.Take<proto::TaskInfo>(out_.to_clients, "caller", proto::Command::kTaskInfo);
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(infos[0].task.result, "3");
  EXPECT_TRUE(infos[0].task.verified);
}

// The issue's pool, in the scheduler with a fake clock: 3 honest workers and 1 liar that returns a
// wrong result for 30% of its tasks, each of its own account, on a deterministic service sampled at
// 0.2. Over 2,000 tasks the liar is quarantined within the first 200, no verified task returns a
// wrong answer, and no honest worker is ever quarantined.
class SchedulerLiarPoolTest : public SchedulerVerifyTest {
 protected:
  SchedulerLiarPoolTest() : SchedulerVerifyTest(0.2) {}
};

TEST_F(SchedulerLiarPoolTest, TheLiarIsQuarantinedAndNoVerifiedTaskReturnsItsAnswer) {
  const std::vector<std::string> names = {"honest1", "honest2", "honest3", "liar"};
  const std::vector<std::string> accounts = {"alice", "bob", "carol", "dave"};
  for (size_t i = 0; i < names.size(); ++i) {
    Register(names[i], CpuCaps(), {"sum"}, 1, false, {}, accounts[i]);
  }
  std::mt19937_64 lies(7);
  std::bernoulli_distribution lie(0.3);
  std::map<TaskId, std::string> truth;
  int quarantined_at = -1;
  uint64_t wrong_returned = 0;  // unsampled lies that went through (sampling's known cost)
  // Tasks come in batches of 8, so that every worker has work (as under load: one task at a time
  // would all go to the best-ranked worker), and each batch is answered until it has ended.
  constexpr int kTasks = 2000;
  constexpr int kBatch = 8;
  for (int n = 0; n < kTasks; n += kBatch) {
    std::vector<TaskId> batch;
    for (int i = 0; i < kBatch; ++i) {
      const std::string payload = std::to_string(n + i);
      batch.push_back(SubmitSum(payload));
      truth[batch.back()] = "\"" + payload + "\"";
    }
    auto all_ended = [&] {
      return std::all_of(batch.begin(), batch.end(),
                         [&](TaskId id) { return proto::IsTerminal(Status(id)); });
    };
    for (int round = 0; round < 50 && !all_ended(); ++round) {
      for (const std::string& w : names) {
        for (const proto::TaskAssignment& t : Tasks(w)) {
          const bool lying = w == "liar" && lie(lies);
          Result(w, t, proto::Outcome::kOk, lying ? "\"wrong\"" : "\"" + t.payload.str() + "\"");
        }
      }
    }
    for (TaskId id : batch) {
      ASSERT_EQ(Status(id), TaskStatus::kCompleted) << "task " << ToString(id);
      const Scheduler::Task& t = TaskOf(id);
      if (t.verified) {
        ASSERT_EQ(t.result, truth[id]) << "a verified task returned a wrong answer";
      } else if (t.result != truth[id]) {
        ++wrong_returned;
      }
    }
    for (const char* w : {"honest1", "honest2", "honest3"}) {
      ASSERT_NE(s().reputation().State(std::string("id:") + w), WorkerState::kQuarantined)
          << w << " was quarantined after " << n + kBatch << " tasks";
    }
    if (quarantined_at < 0 && s().reputation().State("id:liar") == WorkerState::kQuarantined) {
      quarantined_at = n + kBatch;
    }
    Advance(Ms(10));
  }
  auto liar = s().reputation().Snapshot(now(), "id:liar");
  ASSERT_TRUE(liar.has_value());
  ASSERT_GT(quarantined_at, 0) << "the liar was never quarantined: " << StateName(liar->state)
                               << " score " << liar->score << " honesty " << liar->honesty
                               << " agreements " << liar->counts.agreements << " disagreements "
                               << liar->counts.disagreements << " accepted "
                               << liar->counts.accepted << " tasks " << liar->tasks;
  EXPECT_LE(quarantined_at, 200);
  EXPECT_GT(Outcomes(VerifyOutcome::kSampled), 0u);
  std::printf(
      "liar quarantined after %d tasks; %llu sampled, %llu tie-breaks, %llu unsampled lies "
      "returned\n",
      quarantined_at, static_cast<unsigned long long>(Outcomes(VerifyOutcome::kSampled)),
      static_cast<unsigned long long>(Outcomes(VerifyOutcome::kTieBroken)),
      static_cast<unsigned long long>(wrong_returned));
}

}  // namespace
}  // namespace rma::broker::testing
