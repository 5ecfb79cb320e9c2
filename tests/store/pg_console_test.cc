// The console's reads and actions on the record (label "pg"): the task list's filters and cursor,
// the attempt log and queue depth columns (migration 010), dead-letter groups, bulk retry and
// discard of dead tasks only on record, and the history buckets. Each test gets a fresh database;
// the store is driven as the broker loop drives it (pg_harness.h).
#include <gtest/gtest.h>

#include <set>

#include "broker/console.h"
#include "broker/pg_store.h"
#include "tests/store/pg_env.h"
#include "tests/store/pg_harness.h"

namespace rma::broker {
namespace {

using proto::TaskStatus;
using testing::FreshDatabase;
using testing::QueryValue;

class PgConsoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RMA_REQUIRE_PG();
    db_ = std::make_unique<FreshDatabase>();
    PgStoreOptions options;
    options.url = db_->url();
    options.connect_wait = 2s;
    auto store = PgStore::Open(options, &clock_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    h_ = std::make_unique<Harness>(std::move(*store));
  }
  void Write(const std::vector<TaskRecord>& records) {
    uint64_t seq = 0;
    for (const TaskRecord& r : records) seq = h_->store().Write(Insert(r));
    ASSERT_TRUE(h_->WaitDurable(seq));
  }
  proto::TaskList List(proto::List l) {
    l.ref = 7;
    h_->store().ListTasks("c", l);
    std::optional<StoreReply> r = h_->NextReply();
    EXPECT_TRUE(r.has_value());
    const auto* list = r ? MessageAs<proto::TaskList>(*r) : nullptr;
    const auto* error = r ? MessageAs<proto::Error>(*r) : nullptr;
    EXPECT_NE(list, nullptr) << (error ? error->message : "not an error either")
                             << (r && r->unrecorded ? " unrecorded " + ToString(*r->unrecorded)
                                                    : "");
    return list ? *list : proto::TaskList{};
  }
  StoreReply Console(ConsoleRequest c) {
    c.ref = 9;
    h_->store().Console("c", std::move(c));
    std::optional<StoreReply> r = h_->NextReply();
    EXPECT_TRUE(r.has_value() && r->console.has_value());
    return r ? std::move(*r) : StoreReply{};
  }
  std::string Query(const std::string& sql) { return QueryValue(db_->url(), sql); }

  FakeClock clock_;
  std::unique_ptr<FreshDatabase> db_;
  std::unique_ptr<Harness> h_;
};

TEST_F(PgConsoleTest, ListPagesWithACursorAndEveryFilter) {
  std::vector<TaskRecord> tasks;
  for (uint64_t i = 1; i <= 7; ++i) {
    TaskRecord t = Task(i, i % 2 ? "ocr" : "rag", i <= 3 ? TaskStatus::kDead : TaskStatus::kQueued);
    t.owner = i == 7 ? "bob" : "alice";
    t.worker_id = i <= 3 ? "w1" : "w2";
    t.error_code = i <= 2 ? "timeout" : "";
    // Tasks 5 and 6 share a creation time: the id breaks the tie.
    t.created_at = FromUnixMs(1'800'000'000'000 + static_cast<int64_t>(i == 6 ? 5 : i) * 1000);
    t.run_at = t.created_at;
    tasks.push_back(t);
  }
  // A task id beyond 2^63 (a negative bigint on record) pages like any other.
  TaskRecord big = Task(0xF000'0000'0000'0001ull, "ocr");
  big.owner = "alice";
  big.created_at = FromUnixMs(1'800'000'000'000 + 4000);
  big.run_at = big.created_at;
  tasks.push_back(big);
  Write(tasks);

  proto::List l;
  l.admin = true;
  l.limit = 3;
  std::vector<uint64_t> seen;
  int pages = 0;
  for (;;) {
    proto::TaskList page = List(l);
    for (const proto::TaskView& v : page.tasks) seen.push_back(v.task_id.value());
    ++pages;
    if (page.next_cursor.empty()) break;
    l.cursor = page.next_cursor;
    ASSERT_LT(pages, 10);
  }
  EXPECT_EQ(pages, 3);
  // Newest first; 5 and 6 at one time, the larger id first; the big id at task 4's time.
  std::vector<uint64_t> order = {7, 6, 5, 4, 0xF000'0000'0000'0001ull, 3, 2, 1};
  EXPECT_EQ(seen, order);

  proto::List f;
  f.admin = true;
  f.worker_id = "w1";
  EXPECT_EQ(List(f).tasks.size(), 3u);
  f.error_code = "timeout";
  EXPECT_EQ(List(f).tasks.size(), 2u);
  f = {};
  f.admin = true;
  f.account = "bob";
  EXPECT_EQ(List(f).tasks.size(), 1u);
  f = {};
  f.owner = "alice";  // a client sees its own
  EXPECT_EQ(List(f).tasks.size(), 7u);
  f.account = "bob";
  h_->store().ListTasks("c", f);
  std::optional<StoreReply> denied = h_->NextReply();
  ASSERT_TRUE(denied.has_value());
  ASSERT_NE(MessageAs<proto::Error>(*denied), nullptr);
  EXPECT_EQ(MessageAs<proto::Error>(*denied)->code, "permission_denied");
  f = {};
  f.admin = true;
  f.since_ms = 1'800'000'002'000;       // inclusive
  f.until_ms = 1'800'000'005'000;       // exclusive
  EXPECT_EQ(List(f).tasks.size(), 4u);  // 2, 3, 4 and the big one
}

TEST_F(PgConsoleTest, AttemptLogAndQueueDepthAreRecordedWithTheRow) {
  TaskRecord t = Task(5);
  Write({t});
  OpenAttempt(&t.attempt_log, 1, std::string("w\0", 2), FromUnixMs(1'800'000'001'000));
  CloseAttempt(&t.attempt_log, FromUnixMs(1'800'000'002'000), "failed", "handler_error",
               std::string("bad\0", 4));
  OpenAttempt(&t.attempt_log, 2, "w2", FromUnixMs(1'800'000'003'000));
  t.status = TaskStatus::kRunning;
  uint64_t seq = h_->store().Write(TaskWrite{WriteKind::kUpdate, t});
  ASSERT_TRUE(h_->WaitDurable(seq));
  EXPECT_EQ(Query("SELECT jsonb_array_length(attempt_log) FROM tasks WHERE task_id = 5"), "2");
  EXPECT_EQ(h_->store().counters().failed_commits, 0u);

  ServiceMinuteStats m;
  m.minute = FromUnixMs(1'800'000'040'000 / 60000 * 60000);
  m.service = "echo";
  m.submitted = 1;
  m.queue_depth = 12;
  h_->store().WriteStats({m});
  m.queue_depth = 3;  // the later row of the same minute wins
  h_->store().WriteStats({m});
  ASSERT_TRUE(h_->WaitDurable(h_->store().Write(Insert(Task(6)))));
  EXPECT_EQ(Query("SELECT queue_depth FROM service_stats_minute"), "3");

  // The task page's lookup of a task on record: payload and attempt log; another owner's is not
  // found.
  h_->store().LookupTask("c", 3, TaskId(5), Caller{"", /*admin=*/true, /*detail=*/true});
  std::optional<StoreReply> detail = h_->NextReply();
  ASSERT_TRUE(detail.has_value());
  const auto* info = MessageAs<proto::TaskInfo>(*detail);
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->task.payload, t.payload);
  EXPECT_EQ(info->task.payload_bytes, t.payload.size());
  ASSERT_EQ(info->task.attempt_log.size(), 2u);
  EXPECT_EQ(info->task.attempt_log[0].error_code, "handler_error");
  h_->store().LookupTask("c", 4, TaskId(5), Caller{"mallory", /*admin=*/false, /*detail=*/true});
  std::optional<StoreReply> hidden = h_->NextReply();
  ASSERT_TRUE(hidden.has_value());
  ASSERT_NE(MessageAs<proto::Error>(*hidden), nullptr);
  EXPECT_EQ(MessageAs<proto::Error>(*hidden)->code, "not_found");

  h_->Reset();
  PgStoreOptions options;
  options.url = db_->url();
  auto store = PgStore::Open(options, &clock_);
  ASSERT_TRUE(store.ok());
  auto recovered = (*store)->Recover();
  ASSERT_TRUE(recovered.ok());
  const TaskRecord* back = nullptr;
  for (const TaskRecord& r : recovered->tasks) {
    if (r.id == TaskId(5)) back = &r;
  }
  ASSERT_NE(back, nullptr);
  ASSERT_EQ(back->attempt_log.size(), 2u);
  EXPECT_EQ(back->attempt_log[0].outcome, "failed");
  EXPECT_EQ(back->attempt_log[0].error, "bad\xEF\xBF\xBD");
  EXPECT_EQ(back->attempt_log[1].outcome, "running");
  EXPECT_EQ(back->attempt_log[1].started_at_ms, 1'800'000'003'000);
}

TEST_F(PgConsoleTest, DeadLettersAreGroupedAndBulkActionsTakeOnlyMatchingDeadTasks) {
  std::vector<TaskRecord> tasks;
  for (uint64_t i = 1; i <= 6; ++i) {
    TaskRecord t =
        Task(i, i <= 4 ? "ocr" : "rag", i <= 5 ? TaskStatus::kDead : TaskStatus::kQueued);
    t.error_code = i <= 3 ? "timeout" : "handler_error";
    t.completed_at = t.created_at + Seconds(1);
    tasks.push_back(t);
  }
  Write(tasks);
  ConsoleRequest groups;
  groups.query = "dead_letters";
  StoreReply r = Console(groups);
  ASSERT_TRUE(r.console->document.ok());
  const nlohmann::json doc = *r.console->document;
  EXPECT_EQ(doc["total"], 5);
  ASSERT_EQ(doc["groups"].size(), 3u) << doc.dump();
  EXPECT_EQ(doc["groups"][0]["service"], "ocr");
  EXPECT_EQ(doc["groups"][0]["error_code"], "timeout");
  EXPECT_EQ(doc["groups"][0]["count"], 3);
  EXPECT_EQ(doc["groups"][0]["oldest"], FormatTime(tasks[0].completed_at));

  ConsoleRequest retry;
  retry.query = "bulk_retry";
  retry.service = "ocr";
  retry.error_code = "timeout";
  retry.limit = 2;
  retry.matched = 1;  // what memory did first is added
  retry.done = 1;
  r = Console(retry);
  ASSERT_TRUE(r.console->document.ok());
  EXPECT_EQ((*r.console->document)["matched"], 3);
  EXPECT_EQ((*r.console->document)["done"], 3);
  ASSERT_EQ(r.restore.size(), 2u);  // for the scheduler to queue
  EXPECT_EQ(r.restore[0].status, TaskStatus::kQueued);
  EXPECT_EQ(Query("SELECT count(*) FROM tasks WHERE status = 'dead'"), "3");

  ConsoleRequest discard;
  discard.query = "bulk_discard";
  discard.task_ids = {TaskId(4), TaskId(6), TaskId(99)};  // 6 is queued, 99 unknown
  discard.limit = 1000;
  r = Console(discard);
  EXPECT_EQ((*r.console->document)["matched"], 1);
  EXPECT_EQ(Query("SELECT count(*) FROM tasks WHERE task_id = 4"), "0");
  EXPECT_EQ(Query("SELECT count(*) FROM tasks WHERE task_id = 6"), "1");
}

TEST_F(PgConsoleTest, HistoryBucketsTheMinutesOnRecordAndThePendingOnes) {
  const Time now = FromUnixMs(1'800'000'000'000 / 60000 * 60000 + 30'000);
  clock_.Set(now);
  std::vector<ServiceMinuteStats> rows;
  for (int back = 0; back < 3; ++back) {
    ServiceMinuteStats m;
    m.minute = FromUnixMs(ToUnixMs(now) / 60000 * 60000 - back * 60000);
    m.service = back == 2 ? "rag" : "ocr";
    m.completed = 10;
    m.submitted = 10;
    m.run_time_samples = 10;
    m.run_time_p50_ms = 100;
    m.queue_depth = 4;
    rows.push_back(m);
  }
  h_->store().WriteStats(rows);
  ASSERT_TRUE(h_->WaitDurable(h_->store().Write(Insert(Task(1)))));
  ConsoleRequest c;
  c.query = "history";
  c.range = "1h";
  c.service = "ocr";
  ServiceMinuteStats pending = rows[0];
  pending.completed = 5;
  pending.run_time_samples = 10;
  pending.run_time_p50_ms = 200;
  c.pending = {pending};
  StoreReply r = Console(c);
  ASSERT_TRUE(r.console->document.ok()) << r.console->document.status().ToString();
  const nlohmann::json doc = *r.console->document;
  ASSERT_EQ(doc["points"].size(), 60u);
  const nlohmann::json& last = doc["points"].back();
  EXPECT_EQ(last["completed"], 15);
  EXPECT_DOUBLE_EQ(last["run_time_p50_ms"].get<double>(), 150.0);
  EXPECT_EQ(doc["points"][58]["completed"], 10);
  EXPECT_EQ(doc["points"][57]["completed"], 0);  // rag's minute is not ocr's
  // The whole pool over 24 h (15-minute buckets, merged in SQL): now's minute starts a bucket, the
  // two before it (ocr and rag) share the previous one.
  rows[1].run_time_p50_ms = 40;
  rows[1].run_time_samples = 30;
  rows[1].queue_depth = 7;
  h_->store().WriteStats({rows[1]});  // the same minute again: added to its row on record
  ASSERT_TRUE(h_->WaitDurable(h_->store().Write(Insert(Task(2)))));
  ConsoleRequest pool;
  pool.query = "history";
  pool.range = "24h";
  StoreReply whole = Console(pool);
  ASSERT_TRUE(whole.console->document.ok()) << whole.console->document.status().ToString();
  const nlohmann::json& points = (*whole.console->document)["points"];
  ASSERT_EQ(points.size(), 96u);
  EXPECT_EQ(points[95]["completed"], 10);
  const nlohmann::json& before = points[94];
  EXPECT_EQ(before["completed"], 30) << "ocr's minute twice and rag's";
  EXPECT_EQ(before["queue_depth"], 7 + 4) << "each service's last depth (ocr's latest), summed";
  // ocr's minute on record: (100 x 10 + 40 x 30) / 40 = 55 over 40 samples; with rag's 100 over
  // 10: (55 x 40 + 100 x 10) / 50.
  EXPECT_DOUBLE_EQ(before["run_time_p50_ms"].get<double>(), 64.0);
  EXPECT_EQ(points[93]["completed"], 0);
  ConsoleRequest bad;
  bad.query = "history";
  bad.range = "2h";
  EXPECT_FALSE(Console(bad).console->document.ok());
}

}  // namespace
}  // namespace rma::broker
