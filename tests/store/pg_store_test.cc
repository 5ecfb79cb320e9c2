// PgStore against a real PostgreSQL (label "pg"): migrations, group commit, durable sequence
// numbers, recovery of every field, reads that see earlier writes, idempotency keys on record,
// admin actions on dead tasks, statistics, retention, hostile text, refused rows, and a database
// that goes away and comes back. Each test gets a fresh database built from schemas/sql/ by the
// store itself; the store is driven the way the broker loop drives it (poll_fd + OnReadable).
#include <gtest/gtest.h>

#include <poll.h>
#include <map>

#include <functional>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "broker/admin.h"
#include "broker/migrations.h"
#include "broker/pg_store.h"
#include "tests/store/pg_env.h"
#include "tests/store/pg_harness.h"

namespace rma::broker {
namespace {

using namespace std::chrono_literals;
using proto::Command;
using proto::TaskStatus;
using testing::FreshDatabase;
using testing::QueryValue;

class PgStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RMA_REQUIRE_PG();
    db_ = std::make_unique<FreshDatabase>();
  }

  std::unique_ptr<PgStore> OpenStore(PgStoreOptions options = {}) {
    options.url = db_->url();
    options.connect_wait = 2s;
    auto store = PgStore::Open(options, &clock_);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }
  std::string Query(const std::string& sql) { return QueryValue(db_->url(), sql); }
  // The schema (a store opened once applies the migrations) and member accounts `names`.
  void SchemaWithAccounts(const std::vector<std::string>& names) {
    {
      Harness h(OpenStore());
      ASSERT_TRUE(h.WaitDurable(h.store().Write(Insert(Task(1)))));
    }
    std::string values;
    for (const std::string& n : names)
      values += (values.empty() ? "('" : ", ('") + n + "', 'member')";
    Query("INSERT INTO accounts (name, role) VALUES " + values + " RETURNING name");
  }

  FakeClock clock_;
  std::unique_ptr<FreshDatabase> db_;
};

TEST_F(PgStoreTest, OpenAppliesEveryMigrationOnceAndIsSafeToRunTwice) {
  const std::string latest = std::to_string(EmbeddedMigrations().back().version);
  OpenStore().reset();
  EXPECT_EQ(Query("SELECT count(*) FROM rma_migrations"),
            std::to_string(EmbeddedMigrations().size()));
  EXPECT_EQ(Query("SELECT max(version) FROM rma_migrations"), latest);
  auto again = OpenStore();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(Query("SELECT count(*) FROM rma_migrations"),
            std::to_string(EmbeddedMigrations().size()));
}

TEST_F(PgStoreTest, OpenRefusesADatabaseNewerThanItself) {
  OpenStore().reset();
  Query("INSERT INTO rma_migrations (version, name) VALUES (999, '999_future') RETURNING version");
  PgStoreOptions options;
  options.url = db_->url();
  auto store = PgStore::Open(options, &clock_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(store.status().message().find("newer than this broker"), std::string::npos)
      << store.status().message();
}

TEST_F(PgStoreTest, ASecondBrokerCannotUseTheDatabaseUntilTheFirstLetsGo) {
  auto first = OpenStore();
  ASSERT_NE(first, nullptr);
  PgStoreOptions options;
  options.url = db_->url();
  options.connect_wait = 300ms;
  auto second = PgStore::Open(options, &clock_);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("another rma-broker"), std::string::npos)
      << second.status().message();
  first.reset();
  options.connect_wait = 5s;
  auto third = PgStore::Open(options, &clock_);
  EXPECT_TRUE(third.ok()) << third.status().ToString();
}

TEST_F(PgStoreTest, WritesBecomeDurableAndEveryFieldRecovers) {
  Harness h(OpenStore());
  TaskRecord full = Task(1001, "ocr", TaskStatus::kRunning, 7);
  full.payload = std::string("\0\x01\xff\tbinary\n", 11);
  full.content_type = "application/octet-stream";
  full.max_attempts = 5;
  full.timeout_ms = 4'000'000'000u;  // beyond a 32-bit integer column
  full.idempotency_key = "key\twith\ttabs";
  full.min_tier = 2;
  full.min_gpu_memory_gb = 7.5;
  full.attempts = 2;
  full.failures = 1;
  full.requeues = 1;
  full.worker_id = "gpu-box";
  full.error = "line one\nline two \\ backslash";
  full.error_code = "handler_error";
  full.run_at = full.created_at + Seconds(5);
  full.trusted_only = true;
  full.started_at = full.created_at + Seconds(6);
  uint64_t seq = h.store().Write(Insert(full));
  ASSERT_TRUE(h.WaitDurable(seq));
  EXPECT_EQ(h.store().durable_seq(), seq);
  h.Reset();

  auto store = OpenStore();
  auto recovered = store->Recover();
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  ASSERT_EQ(recovered->tasks.size(), 1u);
  const TaskRecord& r = recovered->tasks[0];
  EXPECT_EQ(r.id, full.id);
  EXPECT_EQ(r.service, full.service);
  EXPECT_EQ(r.status, TaskStatus::kRunning);
  EXPECT_EQ(r.priority, 7u);
  EXPECT_EQ(r.payload, full.payload);
  EXPECT_EQ(r.content_type, full.content_type);
  EXPECT_EQ(r.max_attempts, 5u);
  EXPECT_EQ(r.timeout_ms, 4'000'000'000u);
  EXPECT_EQ(r.idempotency_key, full.idempotency_key);
  EXPECT_EQ(r.min_tier, 2u);
  EXPECT_DOUBLE_EQ(r.min_gpu_memory_gb, 7.5);
  EXPECT_EQ(r.attempts, 2u);
  EXPECT_EQ(r.failures, 1u);
  EXPECT_EQ(r.requeues, 1u);
  EXPECT_EQ(r.worker_id, "gpu-box");
  EXPECT_EQ(r.error, full.error);
  EXPECT_EQ(r.error_code, full.error_code);
  EXPECT_EQ(r.created_at, full.created_at);
  EXPECT_EQ(r.run_at, full.run_at);
  EXPECT_TRUE(r.trusted_only);
  EXPECT_EQ(r.started_at, full.started_at);
  EXPECT_EQ(r.completed_at, Time{});
}

TEST_F(PgStoreTest, RecoveryReturnsUnfinishedTasksOnlyInPriorityOrder) {
  Harness h(OpenStore());
  h.store().Write(Insert(Task(1, "echo", TaskStatus::kQueued, 1)));
  h.store().Write(Insert(Task(2, "echo", TaskStatus::kQueued, 9)));
  h.store().Write(Insert(Task(3, "echo", TaskStatus::kFailed, 5)));
  h.store().Write(Insert(Task(4, "echo", TaskStatus::kQueued, 9)));
  for (TaskStatus done :
       {TaskStatus::kCompleted, TaskStatus::kDead, TaskStatus::kCancelled, TaskStatus::kExpired}) {
    TaskRecord t = Task(10 + static_cast<uint64_t>(done), "echo", done, 9);
    t.completed_at = t.created_at + Seconds(1);
    h.store().Write(Insert(t));
  }
  uint64_t seq = h.store().Write(Insert(Task(5, "echo", TaskStatus::kRunning, 0)));
  ASSERT_TRUE(h.WaitDurable(seq));
  auto recovered = h.store().Recover();
  ASSERT_TRUE(recovered.ok());
  std::vector<uint64_t> ids;
  for (const TaskRecord& r : recovered->tasks) ids.push_back(r.id.value());
  EXPECT_EQ(ids, (std::vector<uint64_t>{2, 4, 3, 1, 5}));
}

TEST_F(PgStoreTest, ManyWritesShareOneCommitAndAFastTaskBecomesOneRow) {
  Harness h(OpenStore());
  uint64_t seq = 0;  // of the last write
  for (uint64_t id = 1; id <= 1000; ++id) {
    TaskRecord t = Task(id);
    h.store().Write(Insert(t));
    // Started and completed before the batch left: one row with the final state.
    t.status = TaskStatus::kRunning;
    t.attempts = 1;
    t.worker_id = "w";
    h.store().Write(Update(t));
    t.status = TaskStatus::kCompleted;
    t.result = "r" + std::to_string(id);
    t.completed_at = t.created_at + Ms(3);
    seq = h.store().Write(Update(t));
  }
  ASSERT_TRUE(h.WaitDurable(seq));
  PgStoreCounters c = h.store().counters();
  EXPECT_EQ(c.commits, 1u);
  EXPECT_EQ(c.writes, 3000u);
  EXPECT_EQ(c.task_rows, 1000u);
  EXPECT_EQ(Query("SELECT count(*) FROM tasks WHERE status = 'completed' AND payload = "
                  "convert_to('payload-' || task_id, 'UTF8') AND result = convert_to('r' || "
                  "task_id, 'UTF8')"),
            "1000");
}

TEST_F(PgStoreTest, StateChangesAfterTheInsertUpdateTheRowAndDeletesRemoveIt) {
  Harness h(OpenStore());
  TaskRecord t = Task(7);
  ASSERT_TRUE(h.WaitDurable(h.store().Write(Insert(t))));
  t.status = TaskStatus::kDead;
  t.failures = 3;
  t.error = "gave up";
  t.completed_at = t.created_at + Seconds(2);
  ASSERT_TRUE(h.WaitDurable(h.store().Write(Update(t))));
  EXPECT_EQ(Query("SELECT status || ' ' || failures || ' ' || error || ' ' || "
                  "convert_from(payload, 'UTF8') FROM tasks WHERE task_id = 7"),
            "dead 3 gave up payload-7");
  ASSERT_TRUE(h.WaitDurable(h.store().Write(TaskWrite{WriteKind::kDelete, t})));
  EXPECT_EQ(Query("SELECT count(*) FROM tasks"), "0");
}

TEST_F(PgStoreTest, HostileTextIsCleanedInsteadOfFailingTheBatch) {
  Harness h(OpenStore());
  TaskRecord t = Task(9, std::string("svc\xff\0x", 6));
  t.error = "bad \xc3\x28 utf8";
  t.worker_id = std::string("w\0", 2);
  h.store().Write(Insert(t));
  uint64_t seq = h.store().Write(Insert(Task(10)));
  ASSERT_TRUE(h.WaitDurable(seq));
  EXPECT_EQ(Query("SELECT count(*) FROM tasks"), "2");
  EXPECT_EQ(Query("SELECT service FROM tasks WHERE task_id = 9"), "svc\xEF\xBF\xBD\xEF\xBF\xBDx");
  EXPECT_EQ(h.store().counters().failed_commits, 0u);
}

TEST_F(PgStoreTest, ARowTheDatabaseRefusesIsReportedAndTheRestIsRecorded) {
  Harness h(OpenStore());
  TaskRecord bad = Task(20);
  bad.created_at = FromUnixUs(-290'000LL * 365 * 86400 * 1'000'000);  // ~288000 BC: out of range
  h.store().Write(Insert(Task(19)));
  h.store().Write(Insert(bad));
  uint64_t seq = h.store().Write(Insert(Task(21)));
  ASSERT_TRUE(h.WaitDurable(seq));
  EXPECT_EQ(Query("SELECT string_agg(task_id::text, ',' ORDER BY task_id) FROM tasks"), "19,21");
  auto reply = h.NextReply();
  ASSERT_TRUE(reply.has_value());
  ASSERT_TRUE(reply->unrecorded.has_value());
  EXPECT_EQ(*reply->unrecorded, TaskId(20));
  EXPECT_GE(h.store().counters().dropped_rows, 1u);
}

TEST_F(PgStoreTest, AnIdempotencyKeyTakenOnRecordDoesNotLoseTheTask) {
  Harness h(OpenStore());
  TaskRecord a = Task(30);
  a.idempotency_key = "same";
  TaskRecord b = Task(31);
  b.idempotency_key = "same";
  h.store().Write(Insert(a));
  uint64_t seq = h.store().Write(Insert(b));
  ASSERT_TRUE(h.WaitDurable(seq));
  EXPECT_EQ(Query("SELECT count(*) FROM tasks"), "2");
  EXPECT_EQ(Query("SELECT task_id FROM tasks WHERE idempotency_key = 'same'"), "30");
  EXPECT_EQ(Query("SELECT count(*) FROM tasks WHERE task_id = 31 AND idempotency_key IS NULL"),
            "1");
}

TEST_F(PgStoreTest, ReadsSeeEveryWriteQueuedBeforeThem) {
  Harness h(OpenStore());
  for (uint64_t id = 1; id <= 30; ++id) {
    TaskRecord t = Task(id, id % 2 == 0 ? "even" : "odd",
                        id % 3 == 0 ? TaskStatus::kCompleted : TaskStatus::kQueued);
    t.result = "result-" + std::to_string(id);
    h.store().Write(Insert(t));
  }
  // Not flushed yet: the read must still see them.
  h.store().LookupTask("client-a", 77, TaskId(12), Caller{});
  proto::List list;
  list.ref = 78;
  list.service = "even";
  list.status = "completed";
  list.limit = 3;
  h.store().ListTasks("client-b", list);
  h.store().LookupTask("client-a", 79, TaskId(999), Caller{});
  h.store().Flush();

  auto got = h.NextReply();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->client, "client-a");
  ASSERT_NE(MessageAs<proto::TaskInfo>(*got), nullptr);
  proto::TaskInfo info = *MessageAs<proto::TaskInfo>(*got);
  EXPECT_EQ(info.ref, 77u);
  EXPECT_EQ(info.task.task_id, TaskId(12));
  EXPECT_EQ(info.task.service, "even");
  EXPECT_EQ(info.task.status, TaskStatus::kCompleted);
  EXPECT_EQ(info.task.result, "result-12");

  auto listed = h.NextReply();
  ASSERT_TRUE(listed.has_value());
  ASSERT_NE(MessageAs<proto::TaskList>(*listed), nullptr);
  proto::TaskList tl = *MessageAs<proto::TaskList>(*listed);
  EXPECT_EQ(tl.ref, 78u);
  std::vector<uint64_t> ids;
  for (const proto::TaskView& v : tl.tasks) {
    ids.push_back(v.task_id.value());
    EXPECT_TRUE(v.result.empty());
  }
  EXPECT_EQ(ids, (std::vector<uint64_t>{30, 24, 18}));

  auto missing = h.NextReply();
  ASSERT_TRUE(missing.has_value());
  ASSERT_NE(MessageAs<proto::Error>(*missing), nullptr);
  proto::Error e = *MessageAs<proto::Error>(*missing);
  EXPECT_EQ(e.ref, 79u);
  EXPECT_EQ(e.code, "not_found");
}

TEST_F(PgStoreTest, AnIdempotencyKeyOnRecordAnswersTheFirstTask) {
  Harness h(OpenStore());
  TaskRecord t = Task(40, "echo", TaskStatus::kCompleted);
  t.idempotency_key = "order-17";
  t.completed_at = t.created_at + Seconds(1);
  h.store().Write(Insert(t));
  proto::Submit again;
  again.ref = 5;
  again.service = "echo";
  again.idempotency_key = "order-17";
  h.store().SubmitWithKey("c", again);
  proto::Submit fresh = again;
  fresh.ref = 6;
  fresh.idempotency_key = "order-18";
  h.store().SubmitWithKey("c", fresh);
  h.store().Flush();

  auto dup = h.NextReply();
  ASSERT_TRUE(dup.has_value());
  ASSERT_NE(MessageAs<proto::Accepted>(*dup), nullptr);
  proto::Accepted a = *MessageAs<proto::Accepted>(*dup);
  EXPECT_EQ(a.ref, 5u);
  EXPECT_EQ(a.task_id, TaskId(40));
  EXPECT_TRUE(a.duplicate);
  EXPECT_EQ(a.status, TaskStatus::kCompleted);

  auto back = h.NextReply();
  ASSERT_TRUE(back.has_value());
  ASSERT_TRUE(back->resubmit.has_value());
  EXPECT_FALSE(back->message.has_value());
  EXPECT_EQ(back->resubmit->ref, 6u);
  EXPECT_EQ(back->resubmit->idempotency_key, "order-18");
}

TEST_F(PgStoreTest, AdminRetriesAndDiscardsDeadTasksThatAreOnlyOnRecord) {
  Harness h(OpenStore());
  TaskRecord dead = Task(50, "flaky", TaskStatus::kDead);
  dead.failures = 3;
  dead.attempts = 3;
  dead.error = "boom";
  dead.completed_at = dead.created_at + Seconds(1);
  h.store().Write(Insert(dead));
  TaskRecord dead2 = dead;
  dead2.id = TaskId(51);
  h.store().Write(Insert(dead2));
  TaskRecord done = Task(52, "echo", TaskStatus::kCompleted);
  done.completed_at = done.created_at + Seconds(1);
  h.store().Write(Insert(done));
  h.store().AdminDeadTask("admin", 1, TaskId(50), /*retry=*/true);
  h.store().AdminDeadTask("admin", 2, TaskId(51), /*retry=*/false);
  h.store().AdminDeadTask("admin", 3, TaskId(52), /*retry=*/true);
  h.store().AdminDeadTask("admin", 4, TaskId(53), /*retry=*/false);
  h.store().Flush();

  auto retried = h.NextReply();
  ASSERT_TRUE(retried.has_value());
  ASSERT_TRUE(retried->dead_task.has_value());
  EXPECT_EQ(retried->dead_task->ref, 1u);
  EXPECT_TRUE(retried->dead_task->retried);
  ASSERT_EQ(retried->restore.size(), 1u);
  EXPECT_EQ(retried->restore[0].status, TaskStatus::kQueued);
  EXPECT_EQ(retried->restore[0].failures, 0u);
  EXPECT_EQ(retried->restore[0].attempts, 3u);
  EXPECT_EQ(retried->restore[0].payload, "payload-50");
  EXPECT_EQ(Query("SELECT status || ' ' || failures || ' ' || (completed_at IS NULL) FROM tasks "
                  "WHERE task_id = 50"),
            "queued 0 true");

  auto discarded = h.NextReply();
  ASSERT_TRUE(discarded.has_value());
  ASSERT_TRUE(discarded->dead_task.has_value());
  EXPECT_FALSE(discarded->dead_task->retried);
  EXPECT_TRUE(discarded->restore.empty());
  EXPECT_EQ(Query("SELECT count(*) FROM tasks WHERE task_id = 51"), "0");

  for (const char* code : {"failed_precondition", "not_found"}) {
    auto refused = h.NextReply();
    ASSERT_TRUE(refused.has_value());
    ASSERT_NE(MessageAs<proto::Error>(*refused), nullptr);
    proto::Error e = *MessageAs<proto::Error>(*refused);
    EXPECT_EQ(e.code, code) << e.message;
    EXPECT_TRUE(refused->restore.empty());
  }
  EXPECT_EQ(Query("SELECT status FROM tasks WHERE task_id = 52"), "completed");
}

TEST_F(PgStoreTest, StatsComeFromTheRecordPlusTheMinuteInProgress) {
  Harness h(OpenStore());
  Time now = clock_.Now();
  Time minute = FromUnixMs(ToUnixMs(now) / 60000 * 60000);
  ServiceMinuteStats a;
  a.minute = minute - Seconds(120);
  a.service = "echo";
  a.submitted = 10;
  a.completed = 8;
  a.failed = 1;
  a.run_time_samples = 8;
  a.run_time_p50_ms = 2;
  a.run_time_p99_ms = 5;
  ServiceMinuteStats b = a;  // a second row of the same minute (a broker restarted within it)
  b.submitted = 5;
  b.completed = 5;
  b.failed = 0;
  b.run_time_samples = 2;
  b.run_time_p50_ms = 12;
  b.run_time_p99_ms = 20;
  h.store().WriteStats({a});
  h.store().Flush();
  h.store().WriteStats({b});
  ServiceMinuteStats pending;
  pending.minute = minute;
  pending.service = "ocr";
  pending.submitted = 3;
  h.store().Stats("admin", 9, {pending});
  h.store().Flush();

  auto reply = h.NextReply();
  ASSERT_TRUE(reply.has_value());
  ASSERT_TRUE(reply->stats.has_value());
  EXPECT_EQ(reply->stats->ref, 9u);
  ASSERT_TRUE(reply->stats->stats.ok()) << reply->stats->stats.status().ToString();
  // The loop merges the record's figures into the document it builds from memory.
  nlohmann::json doc{{"today", {{"submitted", 0}}}};
  ApplyStoredStats(*reply->stats->stats, &doc);
  if (StartOfUtcDay(a.minute) == StartOfUtcDay(now)) {
    EXPECT_EQ(doc["today"]["submitted"], 18) << doc.dump();
    EXPECT_EQ(doc["today"]["by_service"]["echo"]["completed"], 13) << doc.dump();
  }
  EXPECT_EQ(doc["today"]["source"], "postgresql");
  EXPECT_EQ(doc["today"]["by_service"]["ocr"]["submitted"], 3) << doc.dump();
  ASSERT_EQ(doc["history"].size(), 2u) << doc.dump();
  EXPECT_EQ(doc["history"][0]["submitted"], 15);
  EXPECT_DOUBLE_EQ(doc["history"][0]["run_time_p50_ms"].get<double>(), 4.0);  // (8*2 + 2*12) / 10
  EXPECT_DOUBLE_EQ(doc["history"][0]["run_time_p99_ms"].get<double>(), 20.0);
  EXPECT_EQ(doc["history"][1]["submitted"], 3);
  EXPECT_EQ(Query("SELECT submitted || ' ' || run_time_samples FROM service_stats_minute"),
            "15 10");
}

TEST_F(PgStoreTest, RetentionDeletesOldFinishedTasksInSmallBatches) {
  PgStoreOptions options;
  options.retention = Seconds(86400);
  options.retention_batch = 10;
  options.retention_interval = Ms(50);
  Harness h(OpenStore(options));
  Time now = clock_.Now();
  uint64_t seq = 0;
  for (uint64_t id = 1; id <= 45; ++id) {
    TaskRecord t = Task(id, "echo", id <= 35 ? TaskStatus::kCompleted : TaskStatus::kQueued);
    t.created_at = now - Seconds(3 * 86400);
    t.run_at = t.created_at;
    if (id <= 35) t.completed_at = now - Seconds(2 * 86400);  // old and finished
    seq = h.store().Write(Insert(t));
  }
  for (uint64_t id = 46; id <= 50; ++id) {
    TaskRecord t = Task(id, "echo", TaskStatus::kDead);
    t.completed_at = now - Seconds(3600);  // finished, but recently
    seq = h.store().Write(Insert(t));
  }
  ASSERT_TRUE(h.WaitDurable(seq));
  ASSERT_TRUE(h.PumpUntil([&] { return h.store().counters().retention_deleted >= 35; }))
      << h.store().counters().retention_deleted;
  EXPECT_EQ(h.store().counters().retention_deleted, 35u);
  EXPECT_EQ(Query("SELECT count(*) FROM tasks"), "15");
  EXPECT_EQ(Query("SELECT count(*) FROM tasks WHERE status = 'queued'"), "10");
}

TEST_F(PgStoreTest, WorkerTotalsAccumulateAcrossBrokerRestarts) {
  auto worker = [&](Time first_seen, uint64_t done) {
    WorkerRecord w;
    w.worker_id = "alpha";
    w.name = "Alpha";
    w.tier = 2;
    w.services = {"echo", "ocr \"fast\""};
    w.status = "online";
    w.capabilities.cpu_cores = 8;
    w.first_seen = first_seen;
    w.last_seen = first_seen + Seconds(1);
    w.tasks_done = done;
    return w;
  };
  Time t0 = clock_.Now();
  {
    Harness h(OpenStore());
    h.store().WriteWorker(worker(t0, 5));
    h.store().WriteWorker(worker(t0, 7));
    h.store().Flush();
    h.store().WriteWorker(worker(t0, 10));
    h.store().Flush();
    ASSERT_TRUE(h.PumpUntil([&] { return h.store().counters().commits >= 1; }));
  }
  // A new broker process counts from zero again for the same worker.
  Harness h(OpenStore());
  ASSERT_TRUE(h.WaitDurable(h.store().Write(Insert(Task(1)))));
  h.store().WriteWorker(worker(t0 + Seconds(60), 4));
  ASSERT_TRUE(h.WaitDurable(h.store().Write(Insert(Task(2)))));
  EXPECT_EQ(Query("SELECT tasks_done FROM workers WHERE worker_id = 'alpha'"), "14");
  EXPECT_EQ(Query("SELECT services[2] FROM workers"), "ocr \"fast\"");
  EXPECT_EQ(Query("SELECT capabilities->>'cpu_cores' FROM workers"), "8");
}

// Donor priority after a restart (docs/accounts.md, "Donor priority"): Recover() reads the ledger's
// recent earned rows per account and service, each halved per contribution half-life of age;
// rows older than 8 half-lives, and rows of other kinds, do not count.
TEST_F(PgStoreTest, RecoveryReadsRecentEarningsDecayedByTheContributionHalfLife) {
  SchemaWithAccounts({"vol", "other"});
  // The decay is reckoned against the database's now(): rows are dated by the real clock.
  const Time wall = FromUnixUs(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
  auto row = [&](const std::string& account, const std::string& kind, const std::string& service,
                 double amount, Duration age) {
    LedgerEntry e;
    e.account = account;
    e.kind = kind;
    e.service = service;
    e.amount = amount;
    e.worker_id = "w";
    e.at = wall - age;
    return e;
  };
  PgStoreOptions options;
  options.contribution_half_life = Seconds(3600);
  Harness h(OpenStore(options));
  h.store().WriteLedger({row("vol", "earned", "svc", 10, Seconds(0)),
                         row("vol", "earned", "svc", 8, Seconds(3600)),         // counts 4
                         row("vol", "earned", "svc", 1000, Seconds(9 * 3600)),  // too old
                         row("vol", "grant", "", 50, Seconds(0)),
                         row("other", "earned", "gpu", 3, Seconds(0))});
  ASSERT_TRUE(h.WaitDurable(h.store().Write(Insert(Task(2)))));
  ASSERT_EQ(Query("SELECT count(*) FROM credit_ledger"), "5");
  auto recovered = h.store().Recover();
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  std::map<std::string, double> got;
  for (const RecentEarnings& e : recovered->earned_recently)
    got[e.account + "/" + e.service] += e.amount;
  ASSERT_EQ(got.size(), 2u);
  EXPECT_NEAR(got["vol/svc"], 14.0, 0.01);
  EXPECT_NEAR(got["other/gpu"], 3.0, 0.01);
}

// Verification (schemas/sql/008_verification.sql): a verified task's two agreeing attempts each
// earn once, the submitter pays once, whatever is written twice; the task row keeps `verified`.
TEST_F(PgStoreTest, AVerifiedTaskEarnsOncePerAgreeingAttemptAndIsPaidForOnce) {
  SchemaWithAccounts({"alice", "bob", "client"});
  auto row = [&](const std::string& account, const std::string& kind, uint32_t attempt,
                 double amount) {
    LedgerEntry e;
    e.account = account;
    e.kind = kind;
    e.amount = amount;
    e.task_id = TaskId(7);
    e.attempt = attempt;
    e.worker_id = account + "-box";
    e.service = "sum";
    return e;
  };
  Harness h(OpenStore());
  TaskRecord done = Task(7, "sum", TaskStatus::kCompleted);
  done.verified = true;
  done.result = "3";
  done.completed_at = done.created_at + Seconds(1);
  h.store().WriteLedger(
      {row("alice", "earned", 1, 2), row("client", "spent", 2, -2), row("bob", "earned", 2, 2)});
  ASSERT_TRUE(h.WaitDurable(h.store().Write(Insert(done))));
  // Written again (a duplicate RESULT, a retried commit): nothing moves.
  h.store().WriteLedger(
      {row("alice", "earned", 1, 2), row("bob", "earned", 2, 2), row("client", "spent", 1, -2)});
  ASSERT_TRUE(h.WaitDurable(h.store().Write(Update(done))));
  EXPECT_EQ(Query("SELECT count(*) FROM credit_ledger WHERE task_id = 7 AND kind = 'earned'"), "2");
  EXPECT_EQ(Query("SELECT count(*) FROM credit_ledger WHERE task_id = 7 AND kind = 'spent'"), "1");
  EXPECT_EQ(Query("SELECT credits::float8 FROM accounts WHERE name = 'bob'"), "2");
  EXPECT_EQ(Query("SELECT credits::float8 FROM accounts WHERE name = 'client'"), "-2");
  EXPECT_EQ(Query("SELECT verified FROM tasks WHERE task_id = 7"), "t");
  EXPECT_EQ(Query("SELECT verified FROM tasks WHERE task_id = 1"), "f");
}

// A group commit's ledger rows (more than a small batch: the COPY path of pg_ledger.cc), written a
// second time (a commit retried after its outcome was unknown) with new ones and rows naming an
// account not on record: what is on record is skipped, rows of unknown accounts are dropped, and
// every balance is still the exact sum of its rows; then new rows with some of an unknown account.
TEST_F(PgStoreTest, ABigBatchOfLedgerRowsCountsEachRowOnceAndKeepsBalancesExact) {
  SchemaWithAccounts({"alice", "client"});
  auto rows = [](uint64_t first, uint64_t count, const std::string& worker_account) {
    std::vector<LedgerEntry> out;
    for (uint64_t id = first; id < first + count; ++id) {
      LedgerEntry earned;
      earned.account = worker_account;
      earned.kind = "earned";
      earned.amount = 0.123457 + static_cast<double>(id) * 1e-6;
      earned.task_id = TaskId(id);
      earned.attempt = 1;
      earned.worker_id = "box";
      earned.service = "echo";
      LedgerEntry spent = earned;
      spent.account = "client";
      spent.kind = "spent";
      spent.amount = -earned.amount;
      out.push_back(earned);
      out.push_back(spent);
    }
    return out;
  };
  const std::string balances_match =
      "SELECT count(*) FROM accounts a WHERE credits <> (SELECT coalesce(sum(amount), 0) FROM "
      "credit_ledger l WHERE l.account = a.name)";
  Harness h(OpenStore());
  h.store().WriteLedger(rows(100, 100, "alice"));  // 200 rows: the COPY path
  ASSERT_TRUE(h.WaitDurable(h.store().Write(Insert(Task(2)))));
  EXPECT_EQ(Query("SELECT count(*) FROM credit_ledger"), "200");
  EXPECT_EQ(Query(balances_match), "0");
  const std::string alice = Query("SELECT credits FROM accounts WHERE name = 'alice'");
  EXPECT_EQ(alice, "12.360650") << "100 x 0.123457 + (100 + ... + 199) millionths, exactly";
  // The same rows again with 20 new ones, and rows of an account that does not exist.
  std::vector<LedgerEntry> again = rows(100, 120, "alice");
  for (LedgerEntry& e : rows(500, 10, "ghost")) again.push_back(e);
  h.store().WriteLedger(again);
  ASSERT_TRUE(h.WaitDurable(h.store().Write(Insert(Task(3)))));
  EXPECT_EQ(Query("SELECT count(*) FROM credit_ledger WHERE account = 'alice'"), "120");
  EXPECT_EQ(Query("SELECT count(*) FROM credit_ledger WHERE account = 'ghost'"), "0");
  EXPECT_EQ(Query("SELECT count(*) FROM credit_ledger WHERE task_id BETWEEN 500 AND 509"), "10")
      << "the spent rows of the ghost's tasks belong to 'client', who exists";
  EXPECT_EQ(Query(balances_match), "0");
  EXPECT_EQ(Query("SELECT count(*) FROM tasks WHERE task_id IN (2, 3)"), "2")
      << "the task rows of the refused batch were written too";
  // New rows only, some of an account that does not exist (no row on record this time: the
  // balance update finds the unknown account).
  std::vector<LedgerEntry> fresh = rows(700, 100, "alice");
  for (LedgerEntry& e : rows(900, 10, "ghost")) fresh.push_back(e);
  h.store().WriteLedger(fresh);
  ASSERT_TRUE(h.WaitDurable(h.store().Write(Insert(Task(4)))));
  EXPECT_EQ(Query("SELECT count(*) FROM credit_ledger WHERE account = 'alice'"), "220");
  EXPECT_EQ(Query("SELECT count(*) FROM credit_ledger WHERE account = 'ghost'"), "0");
  EXPECT_EQ(Query("SELECT count(*) FROM credit_ledger WHERE task_id BETWEEN 900 AND 909"), "10");
  EXPECT_EQ(Query(balances_match), "0");
  EXPECT_EQ(Query("SELECT credits FROM accounts WHERE name = 'alice'"), "27.254630")
      << "220 x 0.123457 + (100 + ... + 219 + 700 + ... + 799) millionths, exactly";
  EXPECT_EQ(Query("SELECT count(*) FROM tasks WHERE task_id = 4"), "1");
}

// A group commit writes a completed task's spent row from the task's own stage row when every
// column it would take from there (owner, service, attempt, worker, time) is what the entry says
// (pg_ledger.cc, SpentRidesWithTask); any other entry keeps its own row. Either way each ledger row
// holds exactly its entry, rows of an unknown owner are dropped, a replay moves nothing, and every
// balance is the sum of its rows.
TEST_F(PgStoreTest, SpentRowsWrittenWithTheirTasksRowHoldExactlyTheirEntries) {
  SchemaWithAccounts({"alice", "client"});
  auto done = [](uint64_t id, const std::string& owner) {
    TaskRecord t = Task(id, "echo", TaskStatus::kCompleted);
    t.owner = owner;
    t.attempts = 1;
    t.worker_id = "box";
    t.result = "r";
    t.started_at = t.created_at;
    t.completed_at = t.created_at + Seconds(1);
    return t;
  };
  auto entry = [](const TaskRecord& t, const std::string& account, const std::string& kind,
                  double amount) {
    LedgerEntry e;
    e.account = account;
    e.kind = kind;
    e.amount = amount;
    e.task_id = t.id;
    e.attempt = 1;
    e.worker_id = "box";
    e.service = "echo";
    e.compute_s = 0.25;
    e.at = t.completed_at;
    return e;
  };
  // Tasks 100..139 paid by 'client' (their spent rows ride with the task rows); 140 (another
  // worker in the entry), 141 (another time) and 142 (no task row in the batch) keep their own;
  // 143 belongs to an owner not on record.
  auto batch = [&](Harness& h, bool replay) {
    std::vector<LedgerEntry> ledger;
    uint64_t seq = 0;
    for (uint64_t id = 100; id < 144; ++id) {
      TaskRecord t = done(id, id == 143 ? "ghost" : "client");
      const double price = 0.5 + static_cast<double>(id) * 1e-6;
      ledger.push_back(entry(t, "alice", "earned", price));
      LedgerEntry spent = entry(t, t.owner, "spent", -price);
      if (id == 140) spent.worker_id = "other-box";
      if (id == 141) spent.at = t.completed_at + Ms(1);
      ledger.push_back(spent);
      if (id != 142) seq = h.store().Write(replay ? Update(t) : Insert(t));
    }
    h.store().WriteLedger(ledger);
    return seq;
  };
  const std::string balances_match =
      "SELECT count(*) FROM accounts a WHERE credits <> (SELECT coalesce(sum(amount), 0) FROM "
      "credit_ledger l WHERE l.account = a.name)";
  const std::string exact_spent =
      "SELECT count(*) FROM credit_ledger WHERE kind = 'spent' AND account = 'client' AND "
      "attempt = 1 AND service = 'echo' AND compute_s = 0.25 AND note = '' AND amount = "
      "-(0.5 + task_id * 0.000001) AND extract(epoch FROM at) * 1000 = 1800000001000 + task_id";
  Harness h(OpenStore());
  ASSERT_TRUE(h.WaitDurable(batch(h, /*replay=*/false)));
  EXPECT_EQ(h.store().counters().ledger_rows_with_task, 41u)
      << "100..139 and the unknown owner's 143 ride with their task rows";
  EXPECT_EQ(Query("SELECT count(*) FROM credit_ledger WHERE kind = 'spent'"), "43");
  EXPECT_EQ(Query(exact_spent + " AND task_id BETWEEN 100 AND 139 AND worker_id = 'box'"), "40");
  EXPECT_EQ(Query(exact_spent + " AND task_id = 140 AND worker_id = 'other-box'"), "1");
  EXPECT_EQ(Query("SELECT count(*) FROM credit_ledger WHERE task_id = 141 AND kind = 'spent' AND "
                  "extract(epoch FROM at) * 1000 = 1800000001000 + 141 + 1"),
            "1");
  EXPECT_EQ(Query(exact_spent + " AND task_id = 142 AND worker_id = 'box'"), "1");
  EXPECT_EQ(Query("SELECT count(*) FROM credit_ledger WHERE account = 'ghost'"), "0");
  EXPECT_EQ(Query("SELECT count(*) FROM credit_ledger WHERE kind = 'earned'"), "44");
  EXPECT_EQ(Query(balances_match), "0");
  const std::string client = "SELECT credits FROM accounts WHERE name = 'client'";
  EXPECT_EQ(Query(client), "-21.505203") << "43 x 0.5 + (100 + ... + 142) millionths, exactly";
  EXPECT_EQ(Query("SELECT count(*) FROM tasks WHERE task_id BETWEEN 100 AND 143 AND status = "
                  "'completed'"),
            "43");
  // The same batch again (a commit retried after its outcome was unknown): nothing moves.
  ASSERT_TRUE(h.WaitDurable(batch(h, /*replay=*/true)));
  EXPECT_EQ(Query("SELECT count(*) FROM credit_ledger"), "87");
  EXPECT_EQ(Query(balances_match), "0");
  EXPECT_EQ(Query(client), "-21.505203");
}

// Worker credentials' lasting trust states: written in the group commit (the latest word on a
// credential wins; "" removes it), read back by Recover().
TEST_F(PgStoreTest, TrustStatesAreKeptAcrossRestarts) {
  {
    Harness h(OpenStore());
    h.store().WriteTrust({"KEY-A", "alice", "quarantined", "honesty 0.2", clock_.Now()});
    h.store().WriteTrust({"id:w2", "", "trusted", "set by an admin", clock_.Now()});
    h.store().WriteTrust({"id:w3", "", "banned", "set by an admin", clock_.Now()});
    ASSERT_TRUE(h.WaitDurable(h.store().Write(Insert(Task(1)))));
    h.store().WriteTrust({"id:w3", "", "", "set by an admin", clock_.Now()});  // back to normal
    h.store().WriteTrust({"KEY-A", "alice", "banned", "set by an admin", clock_.Now()});
    ASSERT_TRUE(h.WaitDurable(h.store().Write(Insert(Task(2)))));
  }
  auto store = OpenStore();
  auto recovered = store->Recover();
  ASSERT_TRUE(recovered.ok()) << recovered.status().ToString();
  std::map<std::string, std::string> states;
  for (const TrustRecord& t : recovered->trust) states[t.credential] = t.state;
  EXPECT_EQ(states,
            (std::map<std::string, std::string>{{"KEY-A", "banned"}, {"id:w2", "trusted"}}));
}

// A server of its own, stopped and started again.
class PgStoreRestartTest : public ::testing::Test {
 protected:
  void SetUp() override { RMA_REQUIRE_PG(); }
};

TEST_F(PgStoreRestartTest, ADatabaseThatGoesAwayMakesTheStoreUnavailableThenItCatchesUp) {
  testing::PrivatePg pg;
  FakeClock clock;
  PgStoreOptions options;
  options.url = pg.url();
  options.reconnect_max = Ms(200);
  auto opened = PgStore::Open(options, &clock);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Harness h(std::move(*opened));
  ASSERT_TRUE(h.WaitDurable(h.store().Write(Insert(Task(1)))));
  ASSERT_TRUE(h.store().available());

  pg.Stop();
  // Noticed while idle: the server closes the connection on shutdown.
  ASSERT_TRUE(h.PumpUntil([&] { return !h.store().available(); }, 10s));
  uint64_t seq = 0;
  for (uint64_t id = 2; id <= 100; ++id) seq = h.store().Write(Insert(Task(id)));
  h.store().LookupTask("c", 1, TaskId(1), Caller{});
  h.store().Flush();
  auto refused = h.NextReply();
  ASSERT_TRUE(refused.has_value());
  ASSERT_NE(MessageAs<proto::Error>(*refused), nullptr);
  proto::Error e = *MessageAs<proto::Error>(*refused);
  EXPECT_EQ(e.code, "unavailable");
  EXPECT_LT(h.store().durable_seq(), seq);

  ASSERT_TRUE(pg.Start());
  ASSERT_TRUE(
      h.PumpUntil([&] { return h.store().available() && h.store().durable_seq() >= seq; }, 30s));
  EXPECT_EQ(QueryValue(pg.url(), "SELECT count(*) FROM tasks"), "100");
  EXPECT_GE(h.store().counters().reconnects, 1u);
}

}  // namespace
}  // namespace rma::broker
