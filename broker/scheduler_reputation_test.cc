// Scheduler tests for reputation (docs/architecture.md, "Reputation"): outcomes move a worker's
// state; routing orders workers by tier, then reputation band (trusted, good, probation, suspect),
// then load; a quarantined worker gets no client tasks until an admin acts; a banned credential is
// disconnected and refused at READY; volunteers on probation get a capped share of work. Driven
// with a FakeClock through the fixture of scheduler_test_util.h.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "broker/scheduler_test_util.h"

namespace rma::broker::testing {
namespace {

using proto::Command;
using proto::TaskStatus;

class SchedulerReputationTest : public SchedulerFixture {
 protected:
  std::string_view StateOf(const std::string& worker_id) {
    for (const Scheduler::Worker& w : s().workers()) {
      if (w.in_use && w.worker_id == worker_id)
        return StateName(s().reputation().State(w.reputation_key));
    }
    return "unknown";
  }
  // Runs `n` tasks of "svc" on `worker` (the only one free), answering each with `outcome`.
  void Run(const std::string& worker, int n, proto::Outcome outcome = proto::Outcome::kOk) {
    for (int i = 0; i < n; ++i) {
      proto::Submit sub;
      sub.max_attempts = 100;
      Submit("svc", sub);
      auto given = Tasks(worker);
      ASSERT_EQ(given.size(), 1u) << "task " << i;
      Result(worker, given[0], outcome);
      // A failed attempt is retried after a back-off: let it expire from the queue instead.
      Tasks(worker);
    }
  }
  TaskId QueuedTask() {
    proto::Submit sub;
    sub.max_attempts = 1;
    return Submit("svc", sub);
  }
};

TEST_F(SchedulerReputationTest, AWorkerThatFailsEveryTaskIsQuarantinedUntilAnAdminRestoresIt) {
  Register("bad", CpuCaps(), {"svc"}, 1);
  EXPECT_EQ(StateOf("bad"), "probation");
  Run("bad", 4, proto::Outcome::kError);
  EXPECT_EQ(StateOf("bad"), "probation") << "a few failures do not quarantine";
  Run("bad", 1, proto::Outcome::kError);
  EXPECT_EQ(StateOf("bad"), "quarantined");
  EXPECT_EQ(s().reputation_transitions()[static_cast<size_t>(WorkerState::kQuarantined)], 1u);
  // No more client tasks: the next one waits.
  const TaskId waiting = QueuedTask();
  EXPECT_TRUE(Tasks("bad").empty());
  EXPECT_EQ(Status(waiting), TaskStatus::kQueued);
  // An admin gives it a fresh start: it takes the waiting task at once.
  auto change = s().SetWorkerTrust(now(), "bad", Trust::kNormal);
  ASSERT_TRUE(change.ok()) << change.status().ToString();
  EXPECT_EQ(change->from, WorkerState::kQuarantined);
  EXPECT_EQ(change->to, WorkerState::kProbation);
  auto given = Tasks("bad");
  ASSERT_EQ(given.size(), 1u);
  EXPECT_EQ(given[0].task_id, waiting);
  EXPECT_EQ(s().SetWorkerTrust(now(), "nobody", Trust::kNormal).status().code(),
            StatusCode::kNotFound);
}

TEST_F(SchedulerReputationTest, ErrorsThatBlameTheTaskDoNotCount) {
  Register("w", CpuCaps(), {"svc"}, 1);
  for (int i = 0; i < 10; ++i) {
    proto::Submit sub;
    sub.max_attempts = 1;
    Submit("svc", sub);
    auto given = Tasks("w");
    ASSERT_EQ(given.size(), 1u);
    // Not retryable: the payload was bad, whoever ran it.
    Result("w", given[0], proto::Outcome::kError, "", /*retryable=*/false);
  }
  EXPECT_EQ(StateOf("w"), "probation");
}

TEST_F(SchedulerReputationTest, WithinATierTrustedThenGoodThenProbationWorkersGoFirst) {
  Register("veteran", CpuCaps(), {"svc"}, 4);
  Run("veteran", 20);  // leaves probation
  ASSERT_EQ(StateOf("veteran"), "good");
  Register("newcomer", CpuCaps(), {"svc"}, 4);
  // The veteran already runs one task; the idle newcomer still comes after it.
  QueuedTask();
  ASSERT_EQ(Tasks("veteran").size(), 1u);
  QueuedTask();
  EXPECT_EQ(Tasks("veteran").size(), 1u) << "a good worker goes before one on probation";
  EXPECT_TRUE(Tasks("newcomer").empty());
  // An admin vouches for the newcomer: it goes first from now on.
  ASSERT_TRUE(s().SetWorkerTrust(now(), "newcomer", Trust::kTrusted).ok());
  QueuedTask();
  EXPECT_EQ(Tasks("newcomer").size(), 1u);
  EXPECT_TRUE(Tasks("veteran").empty());
  // But the tier comes first: a GPU worker on probation beats them both.
  Register("gpu", GpuCaps(), {"svc"}, 4);
  QueuedTask();
  EXPECT_EQ(Tasks("gpu").size(), 1u);
}

TEST_F(SchedulerReputationTest, AVolunteerOnProbationRunsAtMostProbationSlotsAtOnce) {
  ASSERT_EQ(config_.probation_slots, 2u);
  Register("volunteer", CpuCaps(), {"svc"}, 8, false, {}, "alice");
  Register("own", SmallCaps(), {"svc"}, 8);  // the operator's own (no account): not capped
  std::vector<TaskId> ids;
  for (int i = 0; i < 12; ++i) ids.push_back(QueuedTask());
  EXPECT_EQ(Tasks("volunteer").size(), 2u);
  EXPECT_EQ(Tasks("own").size(), 8u);
}

TEST_F(SchedulerReputationTest, ABannedWorkerIsDisconnectedAndRefusedAtReady) {
  Register("w", CpuCaps(), {"svc"}, 1);
  const TaskId running = QueuedTask();
  ASSERT_EQ(Tasks("w").size(), 1u);
  Register("other", CpuCaps(), {"svc"}, 1);
  Tasks("other");
  ASSERT_TRUE(s().SetWorkerTrust(now(), "w", Trust::kBanned).ok());
  auto bye = out_.Take<proto::Disconnect>(out_.to_workers, Ident("w"), Command::kDisconnect);
  ASSERT_EQ(bye.size(), 1u);
  EXPECT_FALSE(bye[0].reconnect);
  // Its task runs elsewhere.
  auto moved = Tasks("other");
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].task_id, running);
  // It comes back: refused, counted.
  Register("w", CpuCaps(), {"svc"}, 1);
  bye = out_.Take<proto::Disconnect>(out_.to_workers, Ident("w"), Command::kDisconnect);
  ASSERT_EQ(bye.size(), 1u);
  EXPECT_FALSE(bye[0].reconnect);
  EXPECT_EQ(s().refusals(Scheduler::Refusal::kBanned), 1u);
}

// Trusted-only work: such a task waits while only untrusted workers are ready and goes to a
// trusted one as soon as an admin vouches for it; a synchronous trusted-only call with no trusted
// provider is refused at once; a catalog entry can make a whole service trusted-only.
TEST_F(SchedulerReputationTest, TrustedOnlyTasksRunOnlyOnTrustedWorkers) {
  Register("stranger", GpuCaps(), {"svc"}, 4);
  proto::Submit sub;
  sub.trusted_only = true;
  const TaskId task = Submit("svc", sub);
  EXPECT_TRUE(Tasks("stranger").empty());
  EXPECT_EQ(Status(task), TaskStatus::kQueued);
  EXPECT_TRUE(s().FindTask(task)->trusted_only);
  // Ordinary tasks still go to the stranger.
  QueuedTask();
  EXPECT_EQ(Tasks("stranger").size(), 1u);
  // A synchronous trusted-only call: nobody trusted provides it, so it is refused now.
  proto::Submit call;
  call.service = "svc";
  call.ref = 99;
  call.mode = proto::SubmitMode::kSync;
  call.trusted_only = true;
  s().OnSubmit(now(), "caller", call);
  auto refused = out_.Take<proto::Error>(out_.to_clients, "caller", Command::kError);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].code, "unavailable");
  // A trusted worker arrives: it takes the waiting task, though the GPU stranger ranks higher.
  Register("known", CpuCaps(), {"svc"}, 4);
  EXPECT_TRUE(Tasks("known").empty()) << "not trusted yet";
  ASSERT_TRUE(s().SetWorkerTrust(now(), "known", Trust::kTrusted).ok());
  auto given = Tasks("known");
  ASSERT_EQ(given.size(), 1u);
  EXPECT_EQ(given[0].task_id, task);
}

TEST_F(SchedulerReputationTest, ACatalogEntryMakesAServiceTrustedOnly) {
  CatalogEntry secret;
  secret.service = "secret";
  secret.trusted_only = true;
  config_.catalog.push_back(secret);
  Register("stranger", CpuCaps(), {"secret", "svc"}, 4);
  const TaskId task = Submit("secret");
  EXPECT_TRUE(s().FindTask(task)->trusted_only);
  EXPECT_TRUE(Tasks("stranger").empty());
  EXPECT_FALSE(s().FindTask(QueuedTask())->trusted_only);
}

// Lasting states are recorded for the store (a quarantine, every admin word; "normal" removes the
// record) and restored at start: a restarted broker still refuses a banned credential and keeps a
// quarantined one from client tasks.
TEST_F(SchedulerReputationTest, QuarantinesAndAdminWordsAreRecordedAndRestored) {
  Register("bad", CpuCaps(), {"svc"}, 1);
  Run("bad", 5, proto::Outcome::kError);
  ASSERT_EQ(StateOf("bad"), "quarantined");
  ASSERT_EQ(out_.trust.size(), 1u);
  EXPECT_EQ(out_.trust[0].credential, "id:bad");
  EXPECT_EQ(out_.trust[0].state, "quarantined");
  ASSERT_TRUE(s().SetWorkerTrust(now(), "bad", Trust::kNormal).ok());
  ASSERT_EQ(out_.trust.size(), 2u);
  EXPECT_EQ(out_.trust[1].state, "") << "back to normal: the record goes";
  Register("other", CpuCaps(), {"svc"}, 1);
  ASSERT_TRUE(s().SetWorkerTrust(now(), "other", Trust::kBanned).ok());
  EXPECT_EQ(out_.trust.back().state, "banned");

  // A new broker with what the store kept.
  Scheduler restarted(config_, &out_, durable_, /*seed=*/7);
  restarted.RestoreTrust(now(), {{"id:q", "", "quarantined", "", now()},
                                 {"id:b", "", "banned", "", now()},
                                 {"id:t", "", "trusted", "", now()}});
  EXPECT_EQ(restarted.reputation().State("id:q"), WorkerState::kQuarantined);
  EXPECT_EQ(restarted.reputation().State("id:b"), WorkerState::kBanned);
  EXPECT_TRUE(restarted.reputation().Trusted("id:t"));
  proto::Ready ready;
  ready.worker_id = "b";
  ready.name = "b";
  ready.slots = 1;
  ready.capabilities = CpuCaps();
  restarted.OnWorkerReady(now(), "b/ident", std::move(ready));
  auto bye = out_.Take<proto::Disconnect>(out_.to_workers, "b/ident", Command::kDisconnect);
  ASSERT_EQ(bye.size(), 1u);
  EXPECT_FALSE(bye[0].reconnect);
}

// A lost session counts as one abandonment however many attempts it held, and timeouts count.
TEST_F(SchedulerReputationTest, ALostSessionIsOneAbandonmentAndATimeoutCounts) {
  Register("slow", CpuCaps(), {"svc"}, 1);
  proto::Submit sub;
  sub.timeout_ms = 1000;
  sub.max_attempts = 1;
  Submit("svc", sub);
  ASSERT_EQ(Tasks("slow").size(), 1u);
  AdvanceInSteps(Seconds(2), Ms(250));
  auto snap = s().reputation().Snapshot(now(), "id:slow");
  ASSERT_TRUE(snap.has_value());
  EXPECT_NEAR(snap->counts.timeouts, 1.0, 0.01);

  Register("w", CpuCaps(), {"svc"}, 4);
  for (int i = 0; i < 4; ++i) QueuedTask();
  ASSERT_EQ(Tasks("w").size(), 4u);
  beating_.erase("w");
  AdvanceInSteps(Seconds(5), Ms(250));  // missed heartbeats: lost with its four attempts
  snap = s().reputation().Snapshot(now(), "id:w");
  ASSERT_TRUE(snap.has_value());
  EXPECT_NEAR(snap->counts.abandoned, 1.0, 0.01);
  EXPECT_EQ(StateOf("w"), "probation");
}

}  // namespace
}  // namespace rma::broker::testing
