// The scheduler's rules against untrusted peers (issue 12, docs/security.md), driven by a fake
// clock: only the lease holder ends an attempt, a worker id cannot be taken over, READY cannot
// claim a stranger's attempt, short sessions cannot dead-letter a task, tasks belong to their
// owner, task ids are unpredictable, and every budget refuses with a clear error instead of
// growing.
#include <gtest/gtest.h>

#include "broker/scheduler_test_util.h"

namespace rma::broker {
namespace {

using proto::Command;
using proto::Outcome;
using proto::TaskStatus;
using testing::CpuCaps;
using Refusal = Scheduler::Refusal;

class SchedulerSecurityTest : public testing::SchedulerFixture {
 protected:
  proto::Error LastErrorTo(const std::string& who, bool worker) {
    auto& list = worker ? out_.to_workers : out_.to_clients;
    auto errors = out_.Take<proto::Error>(list, who, Command::kError);
    EXPECT_FALSE(errors.empty());
    return errors.empty() ? proto::Error{} : errors.back();
  }
  proto::Get GetAs(TaskId id, const std::string& owner, bool admin = false) {
    proto::Get g;
    g.ref = ++ref_;
    g.task_id = id;
    g.owner = owner;
    g.admin = admin;
    return g;
  }
};

// ---- Leases ------------------------------------------------------------------------------------

TEST_F(SchedulerSecurityTest, AResultFromASessionThatNeverRegisteredChangesNothing) {
  TaskId id = Submit("echo");  // queued: nobody provides echo yet
  proto::TaskResult forged;
  forged.task_id = id;
  forged.attempt = 1;
  forged.result = "forged";
  s().OnWorkerResult(now(), "stranger", forged);
  EXPECT_EQ(Status(id), TaskStatus::kQueued);
  EXPECT_TRUE(s().FindTask(id)->result.empty());
  EXPECT_EQ(s().refusals(Refusal::kUnregistered), 1u);
  auto errors = out_.Take<proto::Error>(out_.to_workers, "stranger", proto::Command::kError);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].code, "unauthenticated");
  auto disconnects =
      out_.Take<proto::Disconnect>(out_.to_workers, "stranger", proto::Command::kDisconnect);
  ASSERT_EQ(disconnects.size(), 1u);
  EXPECT_TRUE(disconnects[0].reconnect);
}

TEST_F(SchedulerSecurityTest, AResultForAnotherWorkersAttemptIsRefusedAndChangesNothing) {
  Register("holder", CpuCaps(), {"echo"});
  TaskId id = Submit("echo");
  auto t = Tasks("holder");
  ASSERT_EQ(t.size(), 1u);
  Register("thief", CpuCaps(), {"echo"});
  Result("thief", t[0], Outcome::kOk, "stolen");
  EXPECT_EQ(Status(id), TaskStatus::kRunning);
  EXPECT_EQ(LastErrorTo(Ident("thief"), true).code, "permission_denied");
  EXPECT_EQ(s().refusals(Refusal::kNotLeaseHolder), 1u);
  // The holder's own result still counts.
  Result("holder", t[0], Outcome::kOk, "honest");
  EXPECT_EQ(Status(id), TaskStatus::kCompleted);
  EXPECT_EQ(s().FindTask(id)->result, "honest");
}

TEST_F(SchedulerSecurityTest, ProgressOnlyFromTheLeaseHolder) {
  Register("holder", CpuCaps(), {"echo"});
  TaskId id = Submit("echo");
  auto t = Tasks("holder");
  ASSERT_EQ(t.size(), 1u);
  Register("other", CpuCaps(), {"echo"});
  s().OnWorkerProgress(now(), Ident("other"), proto::Progress{id, 1, 0.5, "mine"});
  EXPECT_EQ(s().refusals(Refusal::kNotLeaseHolder), 1u);
  s().OnWorkerProgress(now(), Ident("holder"), proto::Progress{id, 1, 0.5, "half"});
  EXPECT_EQ(s().refusals(Refusal::kNotLeaseHolder), 1u);
}

TEST_F(SchedulerSecurityTest, ALiveWorkerIdCannotBeTakenOverWithoutItsSecret) {
  Register("victim", CpuCaps(), {"echo"});
  TaskId id = Submit("echo");
  ASSERT_EQ(Tasks("victim").size(), 1u);
  for (std::string secret : {"", "guess"}) {
    proto::Ready r;
    r.worker_id = "victim";
    r.worker_secret = secret;
    r.slots = 4;
    r.capabilities = CpuCaps();
    r.services = {{"echo", "builtin"}};
    r.running = {{id, 1}};
    s().OnWorkerReady(now(), "impostor", r);
    auto bye = out_.Take<proto::Disconnect>(out_.to_workers, "impostor", Command::kDisconnect);
    ASSERT_EQ(bye.size(), 1u);
    EXPECT_FALSE(bye[0].reconnect);
  }
  EXPECT_EQ(s().refusals(Refusal::kWorkerIdInUse), 2u);
  // The victim still holds its session and its lease.
  EXPECT_EQ(s().workers()[0].identity, Ident("victim"));
  Result("victim", proto::TaskAssignment{id, 1, "echo", "", "", 0, {}});
  EXPECT_EQ(Status(id), TaskStatus::kCompleted);
}

TEST_F(SchedulerSecurityTest, AWorkerWhoseKeyIsRevokedIsDisconnectedAndItsTaskRunsElsewhere) {
  auto register_with_key = [&](const std::string& id, const std::string& key) {
    proto::Ready r;
    r.worker_id = id;
    r.worker_secret = "curve:" + key;
    r.worker_key = key;
    r.slots = 1;
    r.capabilities = CpuCaps();
    r.services = {{"echo", "builtin"}};
    s().OnWorkerReady(now(), Ident(id), std::move(r));
    beating_.insert(id);
    out_.Take<proto::Welcome>(out_.to_workers, Ident(id), Command::kWelcome);
  };
  register_with_key("revoked", "KEY-R");
  TaskId id = Submit("echo");
  ASSERT_EQ(Tasks("revoked").size(), 1u);
  register_with_key("kept", "KEY-K");
  Register("plain", CpuCaps(), {"other"});  // no key (PLAIN or loopback): not affected

  EXPECT_EQ(s().RevokeWorkerKeys(now(), [](const std::string& k) { return k == "KEY-K"; }), 1u);
  auto bye = out_.Take<proto::Disconnect>(out_.to_workers, Ident("revoked"), Command::kDisconnect);
  ASSERT_EQ(bye.size(), 1u);
  EXPECT_FALSE(bye[0].reconnect);
  // Its task went to the worker that is still admitted; its late result changes nothing.
  auto moved = Tasks("kept");
  ASSERT_EQ(moved.size(), 1u);
  Result("revoked", proto::TaskAssignment{id, 1, "echo", "", "", 0, {}});
  EXPECT_EQ(Status(id), TaskStatus::kRunning);
  Result("kept", moved[0]);
  EXPECT_EQ(Status(id), TaskStatus::kCompleted);
  EXPECT_EQ(s().RevokeWorkerKeys(now(), [](const std::string& k) { return k == "KEY-K"; }), 0u)
      << "nobody else to revoke";
}

TEST_F(SchedulerSecurityTest, ReadyCannotClaimAnAttemptThatWasNeverItsOwn) {
  Register("a", CpuCaps(), {"echo"});
  TaskId id = Submit("echo");
  auto t = Tasks("a");
  ASSERT_EQ(t.size(), 1u);
  s().OnWorkerUnreachable(now(), Ident("a"));  // requeued
  ASSERT_EQ(Status(id), TaskStatus::kQueued);
  // Another worker lists the stranger's attempt as its own running one.
  Register("thief", CpuCaps(), {"other-service"}, 1, false, {{id, t[0].attempt}});
  EXPECT_EQ(Status(id), TaskStatus::kQueued) << "not leased to the thief";
  EXPECT_EQ(Cancels("thief").size(), 1u);
  EXPECT_EQ(s().refusals(Refusal::kForeignAttempt), 1u);
  // Its result is refused too.
  Result("thief", t[0], Outcome::kOk, "stolen");
  EXPECT_EQ(Status(id), TaskStatus::kQueued);
}

TEST_F(SchedulerSecurityTest, ShortSessionsCannotDeadLetterATask) {
  config_.max_requeues = 3;
  TaskId id = Submit("echo");
  // Twenty sessions each take the task and vanish at once.
  for (int i = 0; i < 20; ++i) {
    const std::string w = "hit-and-run-" + std::to_string(i);
    Register(w, CpuCaps(), {"echo"});
    ASSERT_EQ(Tasks(w).size(), 1u) << i;
    s().OnWorkerUnreachable(now(), Ident(w));
    beating_.erase(w);
  }
  EXPECT_EQ(Status(id), TaskStatus::kQueued);
  // Workers that lived a liveness window each and still lost it: a poison task is dead-lettered.
  for (int i = 0; i < 4; ++i) {
    const std::string w = "settled-" + std::to_string(i);
    Register(w, CpuCaps(), {"echo"});
    ASSERT_EQ(Tasks(w).size(), 1u);
    Advance(config_.heartbeat_interval * config_.liveness);
    s().OnWorkerUnreachable(now(), Ident(w));
    beating_.erase(w);
  }
  EXPECT_EQ(Status(id), TaskStatus::kDead);
}

// ---- Task ids and owners
// -------------------------------------------------------------------------

TEST_F(SchedulerSecurityTest, TaskIdsComeFromTheUnpredictableSource) {
  std::vector<uint64_t> given = {0, 0x9e3779b97f4a7c15ULL, 0x9e3779b97f4a7c15ULL, 42};
  size_t next = 0;
  scheduler_ = std::make_unique<Scheduler>(config_, &out_, false, 1,
                                           [&] { return given[next++ % given.size()]; });
  TaskId a = Submit("echo");
  TaskId b = Submit("echo");
  EXPECT_EQ(a, TaskId(0x9e3779b97f4a7c15ULL)) << "0 is never an id";
  EXPECT_EQ(b, TaskId(42)) << "an id already in use is drawn again";
}

TEST_F(SchedulerSecurityTest, ATaskBelongsToItsOwner) {
  proto::Submit mine;
  mine.owner = "alice";
  mine.idempotency_key = "order-1";
  TaskId id = Submit("echo", mine, "gw");
  // Bob cannot read, cancel or list it.
  ASSERT_TRUE(s().OnGet(now(), "gw", GetAs(id, "bob")));
  EXPECT_EQ(LastErrorTo("gw", false).code, "not_found");
  proto::CancelTask cancel{++ref_, id, "bob", false};
  ASSERT_TRUE(s().OnCancel(now(), "gw", cancel));
  EXPECT_EQ(LastErrorTo("gw", false).code, "not_found");
  EXPECT_EQ(Status(id), TaskStatus::kQueued);
  proto::List list;
  list.ref = ++ref_;
  list.owner = "bob";
  s().OnList(now(), "gw", list);
  auto listed = out_.Take<proto::TaskList>(out_.to_clients, "gw", Command::kTaskList);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_TRUE(listed[0].tasks.empty());
  // Bob's use of Alice's idempotency key makes Bob his own task.
  proto::Submit bobs;
  bobs.owner = "bob";
  bobs.idempotency_key = "order-1";
  TaskId other = Submit("echo", bobs, "gw");
  EXPECT_NE(other, id);
  // Alice, and an admin, see Alice's task.
  ASSERT_TRUE(s().OnGet(now(), "gw", GetAs(id, "alice")));
  ASSERT_TRUE(s().OnGet(now(), "gw", GetAs(id, "", /*admin=*/true)));
  auto infos = out_.Take<proto::TaskInfo>(out_.to_clients, "gw", Command::kTaskInfo);
  ASSERT_EQ(infos.size(), 2u);
  EXPECT_EQ(infos[0].task.owner, "alice");
  list.owner = "";
  list.admin = true;
  s().OnList(now(), "gw", list);
  listed = out_.Take<proto::TaskList>(out_.to_clients, "gw", Command::kTaskList);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].tasks.size(), 2u);
}

// ---- Budgets
// -------------------------------------------------------------------------------------

TEST_F(SchedulerSecurityTest, UnfinishedTasksAndBytesAreBounded) {
  config_.max_unfinished_tasks = 3;
  config_.max_unfinished_bytes = 1000;
  for (int i = 0; i < 3; ++i) Submit("echo");
  proto::Submit more;
  more.service = "echo";
  more.ref = 99;
  s().OnSubmit(now(), "client", more);
  EXPECT_EQ(LastErrorTo("client", false).code, "queue_full");
  EXPECT_EQ(s().unfinished_tasks(), 3u);
  // Bytes: a fresh scheduler with room for tasks but not for a large payload.
  scheduler_.reset();
  config_.max_unfinished_tasks = 100;
  proto::Submit big;
  big.service = "echo";
  big.payload = std::string(600, 'x');
  Submit("echo", big);
  big.ref = 100;
  s().OnSubmit(now(), "client", big);
  EXPECT_EQ(LastErrorTo("client", false).code, "queue_full");
  EXPECT_EQ(s().unfinished_bytes(), 600u);
  EXPECT_EQ(s().refusals(Refusal::kQueueFull), 1u);
  // Finishing a task gives its room back.
  Register("w", CpuCaps(), {"echo"});
  Result("w", Tasks("w")[0]);
  EXPECT_EQ(s().unfinished_bytes(), 0u);
  EXPECT_EQ(s().unfinished_tasks(), 0u);
}

TEST_F(SchedulerSecurityTest, WaitersAreBoundedPerTaskAndPerClientAndFoundInConstantTime) {
  config_.max_waiters_per_task = 3;
  config_.max_waiters_per_client = 4;
  TaskId id = Submit("echo");
  proto::Get g = GetAs(id, "");
  g.wait_ms = 1000;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s().OnGet(now(), "gw", g));
  EXPECT_EQ(s().waiters(), 3u);
  ASSERT_TRUE(s().OnGet(now(), "gw", g));
  EXPECT_EQ(LastErrorTo("gw", false).code, "resource_exhausted");
  TaskId other = Submit("echo");
  g.task_id = other;
  ASSERT_TRUE(s().OnGet(now(), "gw", g));  // the client's fourth
  ASSERT_TRUE(s().OnGet(now(), "gw", g));
  EXPECT_EQ(LastErrorTo("gw", false).code, "resource_exhausted");
  EXPECT_EQ(s().refusals(Refusal::kTooManyWaiters), 2u);
  // Every waiter is answered once at its deadline, and the budgets are given back.
  Advance(Ms(1100));
  EXPECT_EQ(out_.Take<proto::TaskInfo>(out_.to_clients, "gw", Command::kTaskInfo).size(), 4u);
  EXPECT_EQ(s().waiters(), 0u);
  ASSERT_TRUE(s().OnGet(now(), "gw", g));
  EXPECT_EQ(s().waiters(), 1u);
}

TEST_F(SchedulerSecurityTest, ManyWaitersOnOneTaskTimeOutInLinearTime) {
  config_.max_waiters_per_task = 200000;
  config_.max_waiters_per_client = 200000;
  TaskId id = Submit("echo");
  for (int i = 0; i < 100000; ++i) {
    proto::Get g = GetAs(id, "");
    g.wait_ms = 1000 + static_cast<uint32_t>(i % 1000);
    ASSERT_TRUE(s().OnGet(now(), "gw" + std::to_string(i % 7), g));
  }
  // Quadratic bookkeeping would take minutes here; linear takes well under a second.
  Advance(Ms(2100));
  EXPECT_EQ(s().waiters(), 0u);
  size_t answered = 0;
  for (int c = 0; c < 7; ++c) {
    answered +=
        out_.Take<proto::TaskInfo>(out_.to_clients, "gw" + std::to_string(c), Command::kTaskInfo)
            .size();
  }
  EXPECT_EQ(answered, 100000u);
}

TEST_F(SchedulerSecurityTest, ServicesPerWorkerAndInTotalAreBounded) {
  config_.max_services_per_worker = 8;
  config_.max_services = 32;
  std::vector<std::string> many;
  for (int i = 0; i < 9; ++i) many.push_back("s" + std::to_string(i));
  Register("greedy", CpuCaps(), many);
  auto bye = out_.Take<proto::Disconnect>(out_.to_workers, Ident("greedy"), Command::kDisconnect);
  ASSERT_EQ(bye.size(), 1u);
  EXPECT_FALSE(bye[0].reconnect);
  // Submissions of made-up names fill the table up to its bound; then idle ones are forgotten.
  for (int i = 0; i < 100; ++i) {
    proto::Submit junk;
    junk.service = "junk-" + std::to_string(i);
    junk.ref = 1000 + static_cast<uint64_t>(i);
    s().OnSubmit(now(), "c", junk);
  }
  EXPECT_LE(s().services_in_use(), 32u);
  // Queued tasks keep their services; the rest were refused with a clear error.
  auto errors = out_.Take<proto::Error>(out_.to_clients, "c", Command::kError);
  EXPECT_FALSE(errors.empty());
  EXPECT_EQ(errors.back().code, "resource_exhausted");
}

TEST_F(SchedulerSecurityTest, FinishedResultsInMemoryAreBoundedInBytes) {
  config_.max_result_bytes_in_memory = 10000;
  Register("w", CpuCaps(), {"echo"});
  std::vector<TaskId> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(Submit("echo"));
    Result("w", Tasks("w")[0], Outcome::kOk, std::string(4000, 'r'));
  }
  EXPECT_LE(s().finished_result_bytes(), 10000u);
  EXPECT_EQ(s().FindTask(ids.front()), nullptr) << "the oldest went first";
  EXPECT_NE(s().FindTask(ids.back()), nullptr);
}

}  // namespace
}  // namespace rma::broker
