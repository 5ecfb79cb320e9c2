// Unit tests of every scheduling rule, on the pure Scheduler with a fake clock: tiers, routing,
// slots, priorities, idempotency, leases, requeue on death, retries, dead letters, cancellation,
// drain, expiry, limits, recommendations, synchronous calls and recovery.
#include "broker/scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "broker/scheduler_test_util.h"

namespace rma::broker::testing {
namespace {

using proto::Command;
using proto::Outcome;
using proto::TaskStatus;

// ---- Tiers
// ----------------------------------------------------------------------------------------

TEST(TierTest, FollowsTheHardware) {
  TierThresholds t;
  EXPECT_EQ(AssignTier(GpuCaps(), t), 1u);
  EXPECT_EQ(AssignTier(CpuCaps(), t), 2u);
  EXPECT_EQ(AssignTier(SmallCaps(), t), 3u);
  proto::Capabilities edge = CpuCaps();
  edge.cpu_cores = 4;
  edge.ram_gb = 8;
  EXPECT_EQ(AssignTier(edge, t), 2u) << "the thresholds are inclusive";
  edge.ram_gb = 7.9;
  EXPECT_EQ(AssignTier(edge, t), 3u);
}

TEST(TierTest, DeclaringATypeNeverRaisesTheTier) {
  TierThresholds t;
  proto::Capabilities small = SmallCaps();
  small.worker_type = "gpu";
  EXPECT_EQ(AssignTier(small, t), 3u) << "no GPU, no tier 1";
  proto::Capabilities gpu = GpuCaps();
  gpu.worker_type = "storage";
  EXPECT_EQ(AssignTier(gpu, t), 3u) << "a worker may declare itself storage";
  gpu.worker_type = "cpu";
  EXPECT_EQ(AssignTier(gpu, t), 2u) << "a GPU machine may offer itself as a CPU worker";
}

TEST(TierTest, ThresholdsAreConfiguration) {
  TierThresholds t;
  t.cpu_min_cores = 16;
  t.cpu_min_ram_gb = 64;
  EXPECT_EQ(AssignTier(CpuCaps(), t), 3u);
}

class SchedulerTest : public SchedulerFixture {};

TEST_F(SchedulerTest, WelcomeCarriesTierHeartbeatAndRecommendations) {
  proto::Welcome w = Register("gpu1", GpuCaps(), {"rag"});
  EXPECT_EQ(w.worker_id, "gpu1");
  EXPECT_EQ(w.tier, 1u);
  EXPECT_EQ(w.heartbeat_ms, 1000u);
  EXPECT_EQ(w.liveness, 3u);
  ASSERT_FALSE(w.recommendations.empty());
  for (const proto::Recommendation& r : w.recommendations)
    EXPECT_NE(r.service, "rag") << "it already runs rag";
}

TEST_F(SchedulerTest, SimulatedWorkersNeedTheBrokerFlag) {
  Register("sim", GpuCaps(), {"rag"}, 1, /*simulated=*/true);
  auto bye = out_.Take<proto::Disconnect>(out_.to_workers, Ident("sim"), Command::kDisconnect);
  ASSERT_EQ(bye.size(), 1u);
  EXPECT_FALSE(bye[0].reconnect);
  EXPECT_TRUE(s().workers().empty() || !s().workers()[0].in_use);
}

TEST_F(SchedulerTest, SimulatedWorkersAreMarkedWhenAllowed) {
  config_.allow_simulated = true;
  proto::Welcome w = Register("sim", GpuCaps(), {"rag"}, 1, /*simulated=*/true);
  EXPECT_EQ(w.tier, 1u);
  ASSERT_EQ(s().workers().size(), 1u);
  EXPECT_TRUE(s().workers()[0].simulated);
}

// ---- Routing
// --------------------------------------------------------------------------------------

TEST_F(SchedulerTest, PrefersTheHigherTier) {
  Register("cpu1", CpuCaps(), {"rag"});
  Register("gpu1", GpuCaps(), {"rag"});
  Register("cpu2", CpuCaps(), {"rag"});
  Submit("rag");
  EXPECT_EQ(Tasks("gpu1").size(), 1u);
  EXPECT_TRUE(Tasks("cpu1").empty());
  EXPECT_TRUE(Tasks("cpu2").empty());
}

TEST_F(SchedulerTest, FallsBackToLowerTiersWhenTheHigherIsFull) {
  Register("gpu1", GpuCaps(), {"chromadb"}, 1);
  Register("store", SmallCaps(), {"chromadb"}, 1);
  Submit("chromadb");
  Submit("chromadb");
  EXPECT_EQ(Tasks("gpu1").size(), 1u);
  EXPECT_EQ(Tasks("store").size(), 1u);
}

TEST_F(SchedulerTest, GenericWorkGoesDownNeverUp) {
  Register("store", SmallCaps(), {});
  Submit("cpu-worker");
  Submit("gpu-worker");
  EXPECT_TRUE(Tasks("store").empty()) << "tier 3 never takes generic tier-1/2 work";
  Register("cpu1", CpuCaps(), {});
  auto got = Tasks("cpu1");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].service, "cpu-worker") << "tier 2 takes cpu-worker but not gpu-worker";
  Register("gpu1", GpuCaps(), {});
  got = Tasks("gpu1");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].service, "gpu-worker");
}

TEST_F(SchedulerTest, GenericWorkPrefersTheGpuTier) {
  Register("cpu1", CpuCaps(), {}, 4);
  Register("gpu1", GpuCaps(), {}, 4);
  Submit("processing");
  EXPECT_EQ(Tasks("gpu1").size(), 1u);
  EXPECT_TRUE(Tasks("cpu1").empty());
}

TEST_F(SchedulerTest, BalancesTheLeastLoaded) {
  Register("a", CpuCaps(), {"echo"}, 4);
  Register("b", CpuCaps(), {"echo"}, 4);
  for (int i = 0; i < 6; ++i) Submit("echo");
  EXPECT_EQ(Tasks("a").size(), 3u);
  EXPECT_EQ(Tasks("b").size(), 3u);
}

TEST_F(SchedulerTest, LoadIsMeasuredAgainstSlots) {
  Register("big", CpuCaps(), {"echo"}, 8);
  Register("small", CpuCaps(), {"echo"}, 2);
  for (int i = 0; i < 10; ++i) Submit("echo");
  EXPECT_EQ(Tasks("big").size(), 8u);
  EXPECT_EQ(Tasks("small").size(), 2u);
}

TEST_F(SchedulerTest, ReportedLoadBreaksTies) {
  Register("busy", CpuCaps(), {"echo"}, 4);
  Register("calm", CpuCaps(), {"echo"}, 4);
  Heartbeat("busy", 0.9);
  Heartbeat("calm", 0.1);
  Submit("echo");
  EXPECT_EQ(Tasks("calm").size(), 1u);
  EXPECT_TRUE(Tasks("busy").empty());
}

TEST_F(SchedulerTest, RoundRobinAmongEqualWorkers) {
  Register("a", CpuCaps(), {"echo"}, 1);
  Register("b", CpuCaps(), {"echo"}, 1);
  std::map<std::string, int> counts;
  for (int i = 0; i < 10; ++i) {
    Submit("echo");
    for (const char* w : {"a", "b"}) {
      for (auto& t : Tasks(w)) {
        ++counts[w];
        Result(w, t);
      }
    }
  }
  EXPECT_EQ(counts["a"], 5);
  EXPECT_EQ(counts["b"], 5);
}

TEST_F(SchedulerTest, SlotsAreNeverExceeded) {
  std::mt19937 rng(7);
  Register("a", CpuCaps(), {"echo"}, 3);
  Register("b", SmallCaps(), {"echo"}, 2);
  std::map<std::string, std::vector<proto::TaskAssignment>> running;
  int submitted = 0;
  int completed = 0;
  for (int step = 0; step < 2000; ++step) {
    if (rng() % 2 == 0) {
      Submit("echo");
      ++submitted;
    } else {
      std::string w = rng() % 2 == 0 ? "a" : "b";
      if (!running[w].empty()) {
        size_t k = rng() % running[w].size();
        Result(w, running[w][k]);
        running[w].erase(running[w].begin() + static_cast<long>(k));
        ++completed;
      }
    }
    for (const char* w : {"a", "b"}) {
      for (auto& t : Tasks(w)) running[w].push_back(t);
    }
    ASSERT_LE(running["a"].size(), 3u);
    ASSERT_LE(running["b"].size(), 2u);
  }
  EXPECT_EQ(static_cast<size_t>(submitted - completed), s().total_queued() + s().total_in_flight());
}

TEST_F(SchedulerTest, MinimumTierIsHonoured) {
  Register("cpu1", CpuCaps(), {"embeddings"});
  proto::Submit req;
  req.min_tier = 1;
  TaskId id = Submit("embeddings", req);
  EXPECT_TRUE(Tasks("cpu1").empty());
  EXPECT_EQ(Status(id), TaskStatus::kQueued);
  Register("gpu1", GpuCaps(), {"embeddings"});
  EXPECT_EQ(Tasks("gpu1").size(), 1u);
}

TEST_F(SchedulerTest, GpuMemoryRequirementSkipsSmallGpusAndDoesNotBlockOthers) {
  Register("small-gpu", GpuCaps(8), {"vllm"}, 2);
  proto::Submit big;
  big.min_gpu_memory_gb = 16;
  TaskId needs_big = Submit("vllm", big);
  TaskId plain = Submit("vllm");
  auto got = Tasks("small-gpu");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].task_id, plain) << "the head needing 16 GB must not block the one behind it";
  EXPECT_EQ(Status(needs_big), TaskStatus::kQueued);
  Register("big-gpu", GpuCaps(24), {"vllm"});
  got = Tasks("big-gpu");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].task_id, needs_big);
}

TEST_F(SchedulerTest, ManifestUpdatesTheIndexAtOnce) {
  Register("w", CpuCaps(), {"echo"}, 2);
  TaskId ocr = Submit("ocr");
  EXPECT_TRUE(Tasks("w").empty());
  proto::Manifest m;
  m.services = {{"echo", "builtin"}, {"ocr", "http"}};
  s().OnWorkerManifest(now(), Ident("w"), m);
  auto got = Tasks("w");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].task_id, ocr);
  m.services = {{"echo", "builtin"}};
  s().OnWorkerManifest(now(), Ident("w"), m);
  Submit("ocr");
  EXPECT_TRUE(Tasks("w").empty()) << "ocr was withdrawn";
}

// ---- Priorities and idempotency
// -------------------------------------------------------------------

TEST_F(SchedulerTest, HigherPriorityFirstFifoWithin) {
  std::vector<TaskId> order;
  proto::Submit p;
  p.priority = 1;
  TaskId low1 = Submit("echo", p);
  p.priority = 9;
  TaskId high1 = Submit("echo", p);
  p.priority = 1;
  TaskId low2 = Submit("echo", p);
  p.priority = 9;
  TaskId high2 = Submit("echo", p);
  p.priority = 5;
  TaskId mid = Submit("echo", p);
  Register("w", CpuCaps(), {"echo"}, 1);
  for (int i = 0; i < 5; ++i) {
    auto got = Tasks("w");
    ASSERT_EQ(got.size(), 1u);
    order.push_back(got[0].task_id);
    Result("w", got[0]);
  }
  EXPECT_EQ(order, (std::vector<TaskId>{high1, high2, mid, low1, low2}));
}

TEST_F(SchedulerTest, IdempotencyKeyReturnsTheFirstTask) {
  proto::Submit req;
  req.idempotency_key = "order-17";
  TaskId first = Submit("echo", req);
  req.ref = 0;
  req.idempotency_key = "order-17";
  req.service = "echo";
  s().OnSubmit(now(), "client", req);
  auto acc = out_.Take<proto::Accepted>(out_.to_clients, "client", Command::kAccepted);
  ASSERT_EQ(acc.size(), 1u);
  EXPECT_EQ(acc[0].task_id, first);
  EXPECT_TRUE(acc[0].duplicate);
  EXPECT_EQ(s().counters().submitted, 1u);
}

// ---- Leases, death, requeue
// -----------------------------------------------------------------------

TEST_F(SchedulerTest, LongTasksAreNotDuplicatedWhileTheWorkerHeartbeats) {
  Register("w", CpuCaps(), {"echo"});
  Register("other", CpuCaps(), {"echo"});
  TaskId id = Submit("echo");
  auto first = Tasks("w");
  auto first_other = Tasks("other");
  std::string holder = first.empty() ? "other" : "w";
  std::string idle = first.empty() ? "w" : "other";
  for (int i = 0; i < 50; ++i) {  // 50 heartbeat intervals, far beyond liveness
    Heartbeat(holder);
    Heartbeat(idle);
    Advance(Ms(1000));
  }
  EXPECT_EQ(Status(id), TaskStatus::kRunning);
  EXPECT_TRUE(Tasks(idle).empty());
}

TEST_F(SchedulerTest, ProgressRenewsTheLease) {
  config_.default_timeout = Seconds(600);
  Register("w", CpuCaps(), {"echo"});
  TaskId id = Submit("echo");
  ASSERT_EQ(Tasks("w").size(), 1u);
  for (int i = 0; i < 20; ++i) {
    Advance(Ms(1000));
    proto::Progress p;
    p.task_id = id;
    p.attempt = 1;
    s().OnWorkerProgress(now(), Ident("w"), p);
  }
  EXPECT_EQ(Status(id), TaskStatus::kRunning);
}

TEST_F(SchedulerTest, DeadWorkerGivesItsTasksBackToTheFrontAtOnce) {
  Register("doomed", GpuCaps(), {"echo"}, 2);
  TaskId a = Submit("echo");
  TaskId b = Submit("echo");
  ASSERT_EQ(Tasks("doomed").size(), 2u);
  Register("spare", CpuCaps(), {"echo"}, 1);
  TaskId queued = Submit("echo");
  auto spare_first = Tasks("spare");
  ASSERT_EQ(spare_first.size(), 1u);
  EXPECT_EQ(spare_first[0].task_id, queued);
  // The doomed worker stops heartbeating; the spare keeps going.
  beating_.erase("doomed");
  for (int i = 0; i < 4; ++i) Advance(Ms(1000));
  EXPECT_EQ(s().counters().requeued, 2u);
  Result("spare", spare_first[0]);
  auto next = Tasks("spare");
  ASSERT_EQ(next.size(), 1u);
  EXPECT_TRUE(next[0].task_id == a || next[0].task_id == b)
      << "requeued tasks go to the front of the queue";
  EXPECT_EQ(next[0].attempt, 2u);
}

TEST_F(SchedulerTest, DisconnectRequeuesImmediately) {
  Register("w1", CpuCaps(), {"echo"});
  Register("w2", CpuCaps(), {"echo"});
  TaskId id = Submit("echo");
  std::string holder = Tasks("w1").empty() ? "w2" : "w1";
  std::string other = holder == "w1" ? "w2" : "w1";
  Tasks(other);
  s().OnWorkerUnreachable(now(), Ident(holder));
  auto got = Tasks(other);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].task_id, id);
}

TEST_F(SchedulerTest, ReconnectingWorkerKeepsItsLeases) {
  Register("w", CpuCaps(), {"echo"}, 2);
  Register("other", CpuCaps(), {"echo"}, 2);
  TaskId id = Submit("echo");
  auto on_w = Tasks("w");
  std::string holder = on_w.empty() ? "other" : "w";
  std::string bystander = holder == "w" ? "other" : "w";
  if (on_w.empty()) on_w = Tasks("other");
  ASSERT_EQ(on_w.size(), 1u);
  // Same worker id, new connection, still running the task.
  proto::Ready r;
  r.worker_id = holder;
  r.slots = 2;
  r.capabilities = CpuCaps();
  r.services = {{"echo", "builtin"}};
  r.running = {{id, 1}};
  r.worker_secret = holder + "-secret";  // the same worker: it knows its secret
  s().OnWorkerReady(now(), "new-ident", r);
  EXPECT_TRUE(Tasks(bystander).empty()) << "no duplicate: the lease moved with the worker";
  EXPECT_EQ(Status(id), TaskStatus::kRunning);
  proto::TaskResult res;
  res.task_id = id;
  res.attempt = 1;
  s().OnWorkerResult(now(), "new-ident", res);
  EXPECT_EQ(Status(id), TaskStatus::kCompleted);
}

TEST_F(SchedulerTest, AWorkerThoughtLostGetsItsLeaseBackWhenItRegistersAgain) {
  Register("a", CpuCaps(), {"echo"});
  TaskId id = Submit("echo");
  auto t = Tasks("a");
  ASSERT_EQ(t.size(), 1u);
  s().OnWorkerUnreachable(now(), Ident("a"));  // requeued, nobody else to take it
  EXPECT_EQ(Status(id), TaskStatus::kQueued);
  // The worker was fine after all, but its old session no longer holds the lease: the result is
  // refused and the worker is told to register again...
  Result("a", t[0]);
  EXPECT_EQ(Status(id), TaskStatus::kQueued);
  EXPECT_EQ(out_.Count(out_.to_workers, Ident("a"), Command::kDisconnect), 1u);
  EXPECT_EQ(s().refusals(Scheduler::Refusal::kUnregistered), 1u);
  // ...which it does, listing the attempt it holds: its own lease comes back, nothing runs twice,
  // and its result counts.
  Register("a", CpuCaps(), {"echo"}, 1, false, {{id, t[0].attempt}});
  EXPECT_TRUE(Tasks("a").empty());
  EXPECT_EQ(Status(id), TaskStatus::kRunning);
  Result("a", t[0]);
  EXPECT_EQ(Status(id), TaskStatus::kCompleted);
}

TEST_F(SchedulerTest, HeartbeatFromAnUnknownWorkerAsksItToRegister) {
  s().OnWorkerHeartbeat(now(), "stranger", nullptr);
  auto bye = out_.Take<proto::Disconnect>(out_.to_workers, "stranger", Command::kDisconnect);
  ASSERT_EQ(bye.size(), 1u);
  EXPECT_TRUE(bye[0].reconnect);
}

TEST_F(SchedulerTest, BrokerHeartbeatsIdleWorkers) {
  Register("w", CpuCaps(), {"echo"});
  Heartbeat("w");
  Advance(Ms(1100));
  EXPECT_GE(out_.Count(out_.to_workers, Ident("w"), Command::kHeartbeat), 1u);
}

TEST_F(SchedulerTest, OfflineWorkersAreForgottenAfterRetention) {
  config_.offline_retention = Seconds(10);
  Register("w", CpuCaps(), {"echo"});
  beating_.erase("w");
  AdvanceInSteps(Seconds(5), Ms(250));
  ASSERT_EQ(s().workers().size(), 1u);
  EXPECT_FALSE(s().workers()[0].alive);
  EXPECT_EQ(s().Health(now(), s().workers()[0]), "offline");
  AdvanceInSteps(Seconds(11), Ms(250));
  EXPECT_FALSE(s().workers()[0].in_use);
}

TEST_F(SchedulerTest, HealthTurnsLateBeforeOffline) {
  Register("w", CpuCaps(), {"echo"});
  EXPECT_EQ(s().Health(now(), s().workers()[0]), "healthy");
  clock_.Advance(Ms(1600));
  EXPECT_EQ(s().Health(now(), s().workers()[0]), "late");
}

// ---- Retries, timeouts, dead letters
// ---------------------------------------------------------------

TEST_F(SchedulerTest, FailuresRetryWithExponentialBackoffThenDeadLetter) {
  Register("w", CpuCaps(), {"flaky"});
  proto::Submit req;
  req.max_attempts = 3;
  TaskId id = Submit("flaky", req);
  std::vector<Duration> gaps;
  for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
    Time failed_at = now();
    std::vector<proto::TaskAssignment> t;
    while ((t = Tasks("w")).empty() && now() - failed_at < Seconds(30)) {
      Heartbeat("w");
      Advance(Ms(50));
    }
    ASSERT_EQ(t.size(), 1u) << "attempt " << attempt;
    EXPECT_EQ(t[0].attempt, attempt);
    if (attempt > 1) gaps.push_back(now() - failed_at);
    Result("w", t[0], Outcome::kError);
    if (attempt < 3) {
      EXPECT_EQ(Status(id), TaskStatus::kFailed);
    }
  }
  EXPECT_EQ(Status(id), TaskStatus::kDead);
  ASSERT_EQ(gaps.size(), 2u);
  // Jitter over the upper half of an exponential back-off: first retry in [0.5, 1] s, second in [1,
  // 2] s (plus the 50 ms step of this loop).
  EXPECT_GE(gaps[0], Ms(500));
  EXPECT_LE(gaps[0], Ms(1050));
  EXPECT_GE(gaps[1], Ms(1000));
  EXPECT_LE(gaps[1], Ms(2050));
  EXPECT_EQ(s().counters().retried, 2u);
  EXPECT_EQ(s().counters().dead, 1u);
  EXPECT_EQ(s().FindTask(id)->error_code, "handler_error");
}

TEST_F(SchedulerTest, NonRetryableFailureIsDeadAtOnce) {
  Register("w", CpuCaps(), {"echo"});
  TaskId id = Submit("echo");
  auto t = Tasks("w");
  ASSERT_EQ(t.size(), 1u);
  Result("w", t[0], Outcome::kError, "", /*retryable=*/false);
  EXPECT_EQ(Status(id), TaskStatus::kDead);
}

TEST_F(SchedulerTest, AdminCanRetryOrDiscardADeadTask) {
  Register("w", CpuCaps(), {"echo"});
  proto::Submit req;
  req.max_attempts = 1;
  TaskId id = Submit("echo", req);
  Result("w", Tasks("w")[0], Outcome::kError);
  ASSERT_EQ(Status(id), TaskStatus::kDead);
  EXPECT_EQ(s().DiscardDead(now(), TaskId(999)).code(), StatusCode::kNotFound);
  ASSERT_TRUE(s().RetryDead(now(), id).ok());
  auto again = Tasks("w");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempt, 2u);
  EXPECT_EQ(s().RetryDead(now(), id).code(), StatusCode::kFailedPrecondition)
      << "it is running, not dead";
  Result("w", again[0], Outcome::kError);
  ASSERT_EQ(Status(id), TaskStatus::kDead);
  ASSERT_TRUE(s().DiscardDead(now(), id).ok());
  EXPECT_EQ(s().FindTask(id), nullptr);
}

TEST_F(SchedulerTest, TimeoutFailsTheAttemptAndCancelsItOnTheWorker) {
  Register("w", CpuCaps(), {"slow"}, 1);
  proto::Submit req;
  req.timeout_ms = 2000;
  req.max_attempts = 2;
  TaskId id = Submit("slow", req);
  auto t = Tasks("w");
  ASSERT_EQ(t.size(), 1u);
  AdvanceInSteps(Ms(2100));
  Heartbeat("w");
  auto cancels = Cancels("w");
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0].task_id, id);
  EXPECT_EQ(cancels[0].reason, "timeout");
  EXPECT_EQ(Status(id), TaskStatus::kFailed);
  EXPECT_EQ(s().FindTask(id)->error_code, "timeout");
  // The slot stays taken until the worker confirms: no second TASK even after the back-off.
  AdvanceInSteps(Seconds(3));
  EXPECT_TRUE(Tasks("w").empty());
  Result("w", t[0], Outcome::kCancelled);
  auto retry = Tasks("w");
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(retry[0].attempt, 2u);
}

// ---- Cancellation
// ---------------------------------------------------------------------------------

TEST_F(SchedulerTest, CancelledQueuedTaskIsNeverDispatched) {
  TaskId id = Submit("echo");
  ASSERT_TRUE(s().OnCancel(now(), "client", proto::CancelTask{5, id}));
  auto info = out_.Take<proto::TaskInfo>(out_.to_clients, "client", Command::kTaskInfo);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].task.status, TaskStatus::kCancelled);
  Register("w", CpuCaps(), {"echo"});
  EXPECT_TRUE(Tasks("w").empty());
  EXPECT_EQ(s().total_queued(), 0u);
}

TEST_F(SchedulerTest, CancelledRunningTaskTellsTheWorkerAndDropsTheLateResult) {
  Register("w", CpuCaps(), {"echo"}, 1);
  TaskId id = Submit("echo");
  TaskId next = Submit("echo");
  auto t = Tasks("w");
  ASSERT_EQ(t.size(), 1u);
  ASSERT_TRUE(s().OnCancel(now(), "client", proto::CancelTask{1, id}));
  auto cancels = Cancels("w");
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0].task_id, id);
  EXPECT_TRUE(Tasks("w").empty()) << "the cancelled attempt still holds the slot";
  Result("w", t[0], Outcome::kOk, "too late");
  EXPECT_EQ(Status(id), TaskStatus::kCancelled);
  EXPECT_TRUE(s().FindTask(id)->result.empty());
  auto follow = Tasks("w");
  ASSERT_EQ(follow.size(), 1u);
  EXPECT_EQ(follow[0].task_id, next);
}

TEST_F(SchedulerTest, CancellingAFinishedTaskChangesNothing) {
  Register("w", CpuCaps(), {"echo"});
  TaskId id = Submit("echo");
  Result("w", Tasks("w")[0]);
  ASSERT_TRUE(s().OnCancel(now(), "client", proto::CancelTask{1, id}));
  auto info = out_.Take<proto::TaskInfo>(out_.to_clients, "client", Command::kTaskInfo);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].task.status, TaskStatus::kCompleted);
  EXPECT_FALSE(s().OnCancel(now(), "client", proto::CancelTask{2, TaskId(12345)}));
}

// ---- Drain
// ----------------------------------------------------------------------------------------

TEST_F(SchedulerTest, DrainingWorkerGetsNoNewTasksAndFinishesItsOwn) {
  Register("d", CpuCaps(), {"echo"}, 2);
  TaskId running = Submit("echo");
  auto t = Tasks("d");
  ASSERT_EQ(t.size(), 1u);
  s().OnWorkerDrain(now(), Ident("d"));
  TaskId waiting = Submit("echo");
  EXPECT_TRUE(Tasks("d").empty());
  Result("d", t[0]);
  EXPECT_EQ(Status(running), TaskStatus::kCompleted);
  EXPECT_TRUE(Tasks("d").empty());
  EXPECT_EQ(Status(waiting), TaskStatus::kQueued);
  s().OnWorkerDisconnect(now(), Ident("d"), proto::Disconnect{"drained", true});
  EXPECT_FALSE(s().workers()[0].alive);
  EXPECT_EQ(s().counters().requeued, 0u);
}

TEST_F(SchedulerTest, AdminDrainTellsTheWorker) {
  Register("d", CpuCaps(), {"echo"});
  ASSERT_TRUE(s().DrainWorker(now(), "d").ok());
  EXPECT_EQ(out_.Count(out_.to_workers, Ident("d"), Command::kDrain), 1u);
  EXPECT_TRUE(s().workers()[0].paused);
  EXPECT_TRUE(s().workers()[0].withdrawn());
  EXPECT_EQ(s().DrainWorker(now(), "nobody").code(), StatusCode::kNotFound);
}

TEST_F(SchedulerTest, AnAdminDrainPausesAWorkerUntilItIsUndrainedEvenAcrossAReconnect) {
  Register("d", CpuCaps(), {"echo"});
  ASSERT_TRUE(s().DrainWorker(now(), "d").ok());
  TaskId id = Submit("echo");
  EXPECT_TRUE(Tasks("d").empty());
  EXPECT_EQ(Status(id), TaskStatus::kQueued);
  // A reconnect does not end an admin's drain; the new session is told again.
  out_.to_workers.clear();
  Register("d", CpuCaps(), {"echo"});
  EXPECT_EQ(out_.Count(out_.to_workers, Ident("d"), Command::kDrain), 1u);
  EXPECT_TRUE(Tasks("d").empty());
  ASSERT_TRUE(s().UndrainWorker(now(), "d").ok());
  auto sent = Tasks("d");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].task_id, id);
  EXPECT_TRUE(s().UndrainWorker(now(), "d").ok()) << "undraining twice is harmless";
  EXPECT_EQ(s().UndrainWorker(now(), "nobody").code(), StatusCode::kNotFound);
}

TEST_F(SchedulerTest, AWorkerThatDrainsItselfCannotBeUndrained) {
  Register("d", CpuCaps(), {"echo"});
  s().OnWorkerDrain(now(), Ident("d"));
  EXPECT_EQ(s().UndrainWorker(now(), "d").code(), StatusCode::kFailedPrecondition);
  Submit("echo");
  EXPECT_TRUE(Tasks("d").empty());
}

// ---- Expiry, waiting for a provider, delays
// ---------------------------------------------------------

TEST_F(SchedulerTest, TaskWithoutProviderWaitsThenExpires) {
  config_.max_queue_time = Seconds(30);
  s().OnSubmit(now(), "client", proto::Submit{1, "ocr"});
  auto acc = out_.Take<proto::Accepted>(out_.to_clients, "client", Command::kAccepted);
  ASSERT_EQ(acc.size(), 1u);
  EXPECT_TRUE(acc[0].waiting_for_provider);
  TaskId id = acc[0].task_id;
  EXPECT_TRUE(s().View(now(), *s().FindTask(id), false).waiting_for_provider);
  AdvanceInSteps(Seconds(31), Ms(500));
  EXPECT_EQ(Status(id), TaskStatus::kExpired);
  EXPECT_EQ(s().FindTask(id)->error_code, "queue_timeout");
  EXPECT_NE(s().FindTask(id)->error.find("no provider"), std::string::npos);
}

TEST_F(SchedulerTest, ProviderArrivingInTimeServesTheWaitingTask) {
  TaskId id = Submit("ocr");
  Advance(Seconds(5));
  Register("w", CpuCaps(), {"ocr"});
  ASSERT_EQ(Tasks("w").size(), 1u);
  EXPECT_EQ(Status(id), TaskStatus::kRunning);
}

TEST_F(SchedulerTest, RunAtDelaysTheStart) {
  Register("w", CpuCaps(), {"echo"});
  proto::Submit req;
  req.run_at_ms = ToUnixMs(now()) + 5000;
  TaskId id = Submit("echo", req);
  AdvanceInSteps(Seconds(4), Ms(500));
  EXPECT_TRUE(Tasks("w").empty());
  AdvanceInSteps(Seconds(2), Ms(500));
  auto t = Tasks("w");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].task_id, id);
}

TEST_F(SchedulerTest, FullQueueRefusesWithResourceExhausted) {
  config_.max_queued_per_service = 2;
  Submit("ocr");
  Submit("ocr");
  s().OnSubmit(now(), "client", proto::Submit{77, "ocr"});
  auto err = out_.Take<proto::Error>(out_.to_clients, "client", Command::kError);
  ASSERT_EQ(err.size(), 1u);
  EXPECT_EQ(err[0].ref, 77u);
  EXPECT_EQ(err[0].code, "queue_full");
}

// ---- Limits
// ---------------------------------------------------------------------------------------

TEST_F(SchedulerTest, ConcurrencyLimitCapsTasksInFlight) {
  config_.service_limits["llm"] = ServiceLimit{2, 0, 0};
  Register("a", GpuCaps(), {"llm"}, 4);
  Register("b", GpuCaps(), {"llm"}, 4);
  for (int i = 0; i < 6; ++i) Submit("llm");
  auto a = Tasks("a");
  auto b = Tasks("b");
  EXPECT_EQ(a.size() + b.size(), 2u);
  Result(a.empty() ? "b" : "a", a.empty() ? b[0] : a[0]);
  EXPECT_EQ(Tasks("a").size() + Tasks("b").size(), 1u) << "one finished, one more may start";
}

TEST_F(SchedulerTest, RateLimitSpacesStarts) {
  config_.service_limits["api"] = ServiceLimit{0, 2.0, 1};
  Register("w", CpuCaps(), {"api"}, 100);
  for (int i = 0; i < 10; ++i) Submit("api");
  size_t started = Tasks("w").size();
  EXPECT_EQ(started, 1u) << "burst of one";
  AdvanceInSteps(Seconds(2), Ms(50));
  started += Tasks("w").size();
  EXPECT_GE(started, 4u);
  EXPECT_LE(started, 6u) << "about two per second";
}

// ---- Synchronous calls and waiters
// -----------------------------------------------------------------

TEST_F(SchedulerTest, SyncCallWithoutProviderIsRefusedWithTheAvailableServices) {
  Register("w", CpuCaps(), {"echo", "ocr"});
  proto::Submit call{9, "rag"};
  call.mode = proto::SubmitMode::kSync;
  s().OnSubmit(now(), "gw", call);
  auto err = out_.Take<proto::Error>(out_.to_clients, "gw", Command::kError);
  ASSERT_EQ(err.size(), 1u);
  EXPECT_EQ(err[0].ref, 9u);
  EXPECT_EQ(err[0].code, "unavailable");
  EXPECT_EQ(err[0].message, "Service 'rag' not available");
  // Generic services are available too: a tier-2 worker takes cpu-worker and processing.
  EXPECT_EQ(err[0].available_services,
            (std::vector<std::string>{"cpu-worker", "echo", "ocr", "processing"}));
  EXPECT_FALSE(err[0].suggestion.empty());
  EXPECT_EQ(s().task_count(), 0u) << "nothing was created";
}

TEST_F(SchedulerTest, SyncCallAnswersWithTheResultAndIsNotPersisted) {
  durable_ = true;
  Register("w", CpuCaps(), {"echo"});
  out_.writes.clear();
  proto::Submit call{3, "echo", "hi"};
  call.mode = proto::SubmitMode::kSync;
  call.request = proto::HttpRequest{"POST", "/x", "", {}};
  s().OnSubmit(now(), "gw", call);
  EXPECT_TRUE(out_.Take<proto::Accepted>(out_.to_clients, "gw", Command::kAccepted).empty());
  auto t = Tasks("w");
  ASSERT_EQ(t.size(), 1u);
  ASSERT_TRUE(t[0].request.has_value());
  EXPECT_EQ(t[0].request->path, "/x");
  Result("w", t[0], Outcome::kOk, "hello");
  auto info = out_.Take<proto::TaskInfo>(out_.to_clients, "gw", Command::kTaskInfo);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].ref, 3u);
  EXPECT_EQ(info[0].task.status, TaskStatus::kCompleted);
  EXPECT_EQ(info[0].task.result, "hello");
  EXPECT_TRUE(out_.writes.empty());
}

TEST_F(SchedulerTest, SyncCallOutOfTimeIsAnsweredAndCancelled) {
  Register("w", CpuCaps(), {"slow"});
  proto::Submit call{4, "slow"};
  call.mode = proto::SubmitMode::kSync;
  call.timeout_ms = 1000;
  s().OnSubmit(now(), "gw", call);
  ASSERT_EQ(Tasks("w").size(), 1u);
  AdvanceInSteps(Ms(1100), Ms(50));
  auto info = out_.Take<proto::TaskInfo>(out_.to_clients, "gw", Command::kTaskInfo);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].ref, 4u);
  EXPECT_EQ(info[0].task.error_code, "timeout");
  EXPECT_EQ(Cancels("w").size(), 1u);
}

TEST_F(SchedulerTest, LongPollIsAnsweredWhenTheTaskEnds) {
  Register("w", CpuCaps(), {"echo"});
  TaskId id = Submit("echo");
  auto t = Tasks("w");
  ASSERT_TRUE(s().OnGet(now(), "poller", proto::Get{11, id, 10000}));
  EXPECT_TRUE(out_.Take<proto::TaskInfo>(out_.to_clients, "poller", Command::kTaskInfo).empty());
  Result("w", t[0], Outcome::kOk, "r");
  auto info = out_.Take<proto::TaskInfo>(out_.to_clients, "poller", Command::kTaskInfo);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].ref, 11u);
  EXPECT_EQ(info[0].task.status, TaskStatus::kCompleted);
}

TEST_F(SchedulerTest, LongPollTimesOutWithTheCurrentState) {
  TaskId id = Submit("nobody-runs-this");
  ASSERT_TRUE(s().OnGet(now(), "poller", proto::Get{12, id, 2000}));
  AdvanceInSteps(Ms(2100), Ms(100));
  auto info = out_.Take<proto::TaskInfo>(out_.to_clients, "poller", Command::kTaskInfo);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].task.status, TaskStatus::kQueued);
  EXPECT_FALSE(s().OnGet(now(), "poller", proto::Get{13, TaskId(424242), 0}));
}

// ---- Recommendations
// ------------------------------------------------------------------------------

TEST_F(SchedulerTest, RecommendationsFollowTierRequirementsAndDemand) {
  proto::Welcome storage = Register("st", SmallCaps(), {});
  for (const auto& r : storage.recommendations) EXPECT_EQ(r.tier, 3u) << r.service;
  // Demand for ocr (tier 2) with no provider makes it the first recommendation for a CPU worker.
  for (int i = 0; i < 5; ++i) Submit("ocr");
  proto::Welcome cpu = Register("cpu", CpuCaps(), {});
  ASSERT_FALSE(cpu.recommendations.empty());
  EXPECT_EQ(cpu.recommendations[0].service, "ocr");
  EXPECT_NE(cpu.recommendations[0].reason.find("5 task(s) waiting"), std::string::npos);
  for (const auto& r : cpu.recommendations) EXPECT_GE(r.tier, 2u);
  // A GPU with 8 GB is not offered vllm, which needs 16 GB.
  proto::Welcome small_gpu = Register("g8", GpuCaps(8), {});
  for (const auto& r : small_gpu.recommendations) EXPECT_NE(r.service, "vllm");
  proto::Welcome big_gpu = Register("g24", GpuCaps(24), {});
  bool has_gpu_service = false;
  for (const auto& r : big_gpu.recommendations) has_gpu_service = has_gpu_service || r.tier == 1;
  EXPECT_TRUE(has_gpu_service);
}

// ---- Persistence records and recovery
// --------------------------------------------------------------

TEST_F(SchedulerTest, DurableModeRecordsInsertStartAndFinish) {
  durable_ = true;
  Register("w", CpuCaps(), {"echo"});
  TaskId id = Submit("echo");
  Result("w", Tasks("w")[0]);
  std::vector<std::pair<WriteKind, TaskStatus>> seen;
  for (const TaskWrite& w : out_.writes) {
    if (w.record.id == id) seen.emplace_back(w.kind, w.record.status);
  }
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], std::make_pair(WriteKind::kInsert, TaskStatus::kQueued));
  EXPECT_EQ(seen[1], std::make_pair(WriteKind::kUpdate, TaskStatus::kRunning));
  EXPECT_EQ(seen[2], std::make_pair(WriteKind::kUpdate, TaskStatus::kCompleted));
  EXPECT_FALSE(out_.writes[0].record.payload.empty());
  EXPECT_EQ(out_.writes.back().record.result, "done");
}

TEST_F(SchedulerTest, AcceptanceWaitsForDurabilityAndRefusesWhenTheStoreIsDown) {
  durable_ = true;
  Submit("echo");
  s().SetStoreAvailable(false);
  s().OnSubmit(now(), "client", proto::Submit{50, "echo"});
  auto err = out_.Take<proto::Error>(out_.to_clients, "client", Command::kError);
  ASSERT_EQ(err.size(), 1u);
  EXPECT_EQ(err[0].code, "unavailable");
}

TEST_F(SchedulerTest, RestoreRequeuesUnfinishedTasksInPriorityOrder) {
  std::vector<TaskRecord> records;
  auto rec = [&](uint64_t id, uint32_t prio, TaskStatus st, uint32_t attempts) {
    TaskRecord r;
    r.id = TaskId(id);
    r.service = "echo";
    r.priority = prio;
    r.status = st;
    r.attempts = attempts;
    r.max_attempts = 3;
    r.timeout_ms = 1000;
    r.created_at = now();
    r.run_at = now();
    if (st == TaskStatus::kCompleted) {
      r.result = "kept";
      r.completed_at = now();
      r.idempotency_key = "done-key";
    }
    records.push_back(r);
  };
  rec(10, 1, TaskStatus::kQueued, 0);
  rec(11, 5, TaskStatus::kRunning, 2);
  rec(12, 1, TaskStatus::kRunning, 1);
  rec(13, 0, TaskStatus::kCompleted, 1);
  s().Restore(now(), records);
  EXPECT_EQ(s().total_queued(), 3u);
  Register("w", CpuCaps(), {"echo"}, 1);
  std::vector<TaskId> order;
  for (int i = 0; i < 3; ++i) {
    auto t = Tasks("w");
    ASSERT_EQ(t.size(), 1u);
    order.push_back(t[0].task_id);
    if (t[0].task_id == TaskId(11)) {
      EXPECT_EQ(t[0].attempt, 3u) << "attempts are counted";
    }
    Result("w", t[0]);
  }
  EXPECT_EQ(order, (std::vector<TaskId>{TaskId(11), TaskId(10), TaskId(12)}));
  EXPECT_EQ(s().FindTask(TaskId(13))->result, "kept");
  // The idempotency key of a finished task still holds.
  proto::Submit dup{1, "echo"};
  dup.idempotency_key = "done-key";
  s().OnSubmit(now(), "c", dup);
  auto acc = out_.Take<proto::Accepted>(out_.to_clients, "c", Command::kAccepted);
  ASSERT_EQ(acc.size(), 1u);
  EXPECT_EQ(acc[0].task_id, TaskId(13));
  EXPECT_TRUE(acc[0].duplicate);
}

// A task on record as running attempt 1 on `worker` when the broker stopped.
TaskRecord RunningRecord(uint64_t id, std::string worker, Time now) {
  TaskRecord r;
  r.id = TaskId(id);
  r.service = "echo";
  r.status = TaskStatus::kRunning;
  r.attempts = 1;
  r.max_attempts = 3;
  r.timeout_ms = 60000;
  r.created_at = now;
  r.run_at = now;
  r.worker_id = std::move(worker);
  return r;
}

TEST_F(SchedulerTest, WorkerStillRunningARestoredTaskKeepsItsLease) {
  s().Restore(now(), {RunningRecord(77, "owner", now())});
  Register("other", CpuCaps(), {"echo"}, 0 + 1);
  EXPECT_TRUE(Tasks("other").empty()) << "held for its worker during the reattach grace";
  Advance(config_.ReattachGrace());
  // "other" got it (attempt 2), as nobody claimed it within the grace. The worker that ran attempt
  // 1 comes back too late: the lease is other's now, so the first worker is told to stop and its
  // result does not count.
  auto got = Tasks("other");
  ASSERT_EQ(got.size(), 1u);
  Register("owner", CpuCaps(), {"echo"}, 2, false, {{TaskId(77), 1}});
  EXPECT_EQ(Cancels("owner").size(), 1u);
  proto::TaskResult res;
  res.task_id = TaskId(77);
  res.attempt = 1;
  res.result = "from the owner";
  s().OnWorkerResult(now(), Ident("owner"), res);
  EXPECT_EQ(Status(TaskId(77)), TaskStatus::kRunning);
  EXPECT_EQ(s().refusals(Scheduler::Refusal::kNotLeaseHolder), 1u);
  Result("other", got[0], Outcome::kOk, "from the lease holder");
  EXPECT_EQ(Status(TaskId(77)), TaskStatus::kCompleted);
  EXPECT_EQ(s().FindTask(TaskId(77))->result, "from the lease holder");
}

TEST_F(SchedulerTest, RestoredQueuedTaskClaimedByItsWorkerIsNotRunTwice) {
  s().Restore(now(), {RunningRecord(88, "owner", now())});
  Register("owner", CpuCaps(), {"echo"}, 2, false, {{TaskId(88), 1}});
  EXPECT_TRUE(Tasks("owner").empty()) << "it already runs it";
  EXPECT_EQ(Status(TaskId(88)), TaskStatus::kRunning);
  Register("other", CpuCaps(), {"echo"});
  EXPECT_TRUE(Tasks("other").empty());
}

// After a restart or a takeover the first worker back must not be given a task another worker is
// still running: a task that was running waits out the reattach grace, while queued ones go at
// once.
TEST_F(SchedulerTest, ARestoredRunningTaskWaitsForItsWorkerBeforeAnotherGetsIt) {
  config_.reattach_grace = Seconds(5);
  TaskRecord queued = RunningRecord(92, "", now());
  queued.status = TaskStatus::kQueued;
  queued.attempts = 0;
  s().Restore(now(), {RunningRecord(91, "owner", now()), queued});
  Register("fast", CpuCaps(), {"echo"}, 4);
  auto first = Tasks("fast");
  ASSERT_EQ(first.size(), 1u) << "the queued task is not held";
  EXPECT_EQ(first[0].task_id, TaskId(92));
  Advance(Ms(4900));
  EXPECT_TRUE(Tasks("fast").empty()) << "the running one still waits for its worker";
  // Its worker comes back within the grace and keeps it: nobody runs it a second time.
  Register("owner", CpuCaps(), {"echo"}, 2, false, {{TaskId(91), 1}});
  EXPECT_EQ(Status(TaskId(91)), TaskStatus::kRunning);
  Advance(Ms(200));
  EXPECT_TRUE(Tasks("fast").empty()) << "the grace ended, but the task is leased again";
  proto::TaskAssignment running;
  running.task_id = TaskId(91);
  running.attempt = 1;
  Result("owner", running, Outcome::kOk, "from the first worker");
  EXPECT_EQ(Status(TaskId(91)), TaskStatus::kCompleted);
}

TEST_F(SchedulerTest, ARestoredRunningTaskWhoseWorkerNeverComesBackRunsAfterTheGrace) {
  config_.reattach_grace = Seconds(5);
  s().Restore(now(), {RunningRecord(93, "gone", now())});
  Register("other", CpuCaps(), {"echo"});
  EXPECT_TRUE(Tasks("other").empty());
  Advance(Seconds(5));
  auto got = Tasks("other");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].attempt, 2u);
}

// ---- Memory bounds
// ---------------------------------------------------------------------------------

TEST_F(SchedulerTest, FinishedTasksAreEvictedAfterTheirTtl) {
  config_.result_ttl = Seconds(10);
  Register("w", CpuCaps(), {"echo"});
  TaskId id = Submit("echo");
  Result("w", Tasks("w")[0]);
  Advance(Seconds(5));
  EXPECT_NE(s().FindTask(id), nullptr);
  Advance(Seconds(6));
  EXPECT_EQ(s().FindTask(id), nullptr);
}

TEST_F(SchedulerTest, TimerHeapsStayBoundedUnderChurn) {
  Register("w", CpuCaps(), {"echo"}, 8);
  for (int round = 0; round < 20000; ++round) {
    Submit("echo");
    for (auto& t : Tasks("w")) Result("w", t);
  }
  EXPECT_EQ(s().counters().completed, 20000u);
  EXPECT_EQ(s().total_in_flight(), 0u);
  // Each task left a queue-expiry and a timeout entry behind (40,000 without compaction).
  EXPECT_LT(s().timer_entries(), 5000u);
}

}  // namespace
}  // namespace rma::broker::testing

namespace rma::broker {
namespace {

using testing::CpuCaps;
using testing::SchedulerFixture;

class PayloadSharingTest : public SchedulerFixture {};

// A payload is decoded once and then shared: the task, the store's record and the TASK sent to a
// worker hold one buffer, and so do the result, its record and the answer to the client.
TEST_F(PayloadSharingTest, PayloadAndResultAreSharedFromSubmitToEveryHolder) {
  durable_ = true;
  Register("w", CpuCaps(), {"echo"});
  proto::Submit submit;
  submit.service = "echo";
  submit.payload = std::string(1 << 20, 'p');
  const Bytes payload = submit.payload;
  const TaskId id = Submit("echo", submit);
  const Scheduler::Task* task = s().FindTask(id);
  ASSERT_NE(task, nullptr);
  EXPECT_TRUE(task->payload.SharesBufferWith(payload));
  ASSERT_FALSE(out_.writes.empty());
  EXPECT_TRUE(out_.writes.front().record.payload.SharesBufferWith(payload));
  auto sent = Tasks("w");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(sent[0].payload.SharesBufferWith(payload));

  proto::TaskResult r;
  r.task_id = id;
  r.attempt = sent[0].attempt;
  r.result = std::string(1 << 20, 'r');
  const Bytes result = r.result;
  s().OnWorkerResult(now(), Ident("w"), std::move(r));
  EXPECT_TRUE(s().FindTask(id)->result.SharesBufferWith(result));
  EXPECT_TRUE(out_.writes.back().record.result.SharesBufferWith(result));
  proto::Get get;
  get.ref = 9;
  get.task_id = id;
  ASSERT_TRUE(s().OnGet(now(), "client", get));
  auto info = out_.Take<proto::TaskInfo>(out_.to_clients, "client", proto::Command::kTaskInfo);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_TRUE(info[0].task.result.SharesBufferWith(result));
}

}  // namespace
}  // namespace rma::broker
