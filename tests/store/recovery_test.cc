// End to end on PostgreSQL (label "pg"): real rma-broker --db, rma-gateway and rma-worker
// processes, HTTP from the test. After kill -9 of the broker the queued tasks run again in priority
// order without anyone resubmitting, finished tasks keep their results, idempotency keys hold and
// listings and stats come from the record; with PostgreSQL gone new tasks get a clear 503 while
// what is in memory is still served, and everything catches up when it is back; dead tasks that
// are only on record can be retried or discarded.
#include <gtest/gtest.h>

#include <set>

#include "tests/store/pg_env.h"
#include "tests/support/cluster.h"
#include "tests/support/zmq_peers.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class RecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override { RMA_REQUIRE_PG(); }
};

std::string Submit(Cluster& c, const json& body, json* answer = nullptr) {
  HttpResponse r = HttpPostJson(c.Url("/api/tasks"), body);
  EXPECT_EQ(r.status, 202) << r.body;
  if (answer != nullptr) *answer = r.Json();
  return r.Json().value("task_id", "");
}

json WaitForTask(Cluster& c, const std::string& id) {
  HttpResponse r = HttpGet(c.Url("/api/tasks/" + id + "?wait=20"), 30000);
  EXPECT_EQ(r.status, 200) << r.body;
  return r.Json();
}

TEST_F(RecoveryTest, AfterKillMinus9QueuedTasksResumeAndFinishedOnesKeepResultsAndKeys) {
  FreshDatabase db;
  ClusterOptions options;
  options.broker_args = {"--db", db.url()};
  Cluster c(options);
  c.StartWorker("alpha", {"--service", "echo=builtin:echo", "--slots", "2"});
  ASSERT_TRUE(c.WaitForLiveWorkers(1, 20s, "echo")) << c.Logs();

  std::vector<std::string> done;
  for (int i = 0; i < 5; ++i) {
    json body = {{"service", "echo"}, {"payload", {{"n", i}}}};
    if (i == 0) body["idempotency_key"] = "k-done";
    done.push_back(Submit(c, body));
    EXPECT_EQ(WaitForTask(c, done.back())["status"], "completed");
  }

  // No worker for "sleep": these wait in their queue when the broker dies.
  const std::vector<int> priorities = {0, 5, 9, 1, 9, 3};
  std::vector<std::string> queued;
  for (size_t i = 0; i < priorities.size(); ++i) {
    json body = {{"service", "sleep"}, {"payload", "30"}, {"priority", priorities[i]}};
    if (i == 1) body["idempotency_key"] = "k-queued";
    json answer;
    queued.push_back(Submit(c, body, &answer));
    EXPECT_EQ(answer.value("waiting_for_provider", false), true) << answer.dump();
  }

  c.RestartBroker(/*kill=*/true);

  // Finished tasks come from the record, results included.
  for (int i = 0; i < 5; ++i) {
    HttpResponse r = HttpGet(c.Url("/api/tasks/" + done[i]));
    ASSERT_EQ(r.status, 200) << r.body << c.Logs();
    EXPECT_EQ(r.Json()["status"], "completed");
    EXPECT_EQ(r.Json()["result"], json({{"n", i}}));
    EXPECT_EQ(r.Json()["worker_id"], "alpha");
  }
  // Idempotency keys hold: one of a task that is only on record, one of a recovered task.
  json dup;
  EXPECT_EQ(Submit(c, {{"service", "echo"}, {"payload", 1}, {"idempotency_key", "k-done"}}, &dup),
            done[0]);
  EXPECT_EQ(dup.value("duplicate", false), true) << dup.dump();
  EXPECT_EQ(dup["status"], "completed");
  EXPECT_EQ(
      Submit(c, {{"service", "sleep"}, {"payload", "1"}, {"idempotency_key", "k-queued"}}, &dup),
      queued[1]);
  EXPECT_EQ(dup.value("duplicate", false), true) << dup.dump();

  // A worker appears: the recovered tasks run without anyone resubmitting, highest priority
  // first (FIFO within a priority), one at a time on one slot.
  c.StartWorker("beta", {"--service", "sleep=builtin:sleep", "--slots", "1"});
  std::vector<std::pair<int, size_t>> order;  // (priority, submission index)
  std::map<std::string, std::string> started;
  for (size_t i = 0; i < queued.size(); ++i) {
    json t = WaitForTask(c, queued[i]);
    ASSERT_EQ(t["status"], "completed") << t.dump() << c.Logs();
    EXPECT_EQ(t["worker_id"], "beta");
    EXPECT_EQ(t["attempts"], 1);
    started[queued[i]] = t["started_at"].get<std::string>();
    order.emplace_back(-priorities[i], i);
  }
  std::sort(order.begin(), order.end());
  for (size_t k = 1; k < order.size(); ++k) {
    const std::string& before = queued[order[k - 1].second];
    const std::string& after = queued[order[k].second];
    EXPECT_LT(started[before], started[after])
        << "priority " << -order[k - 1].first << " should start before " << -order[k].first;
  }

  // Listings come from the record.
  HttpResponse all = HttpGet(c.Url("/api/tasks?limit=100"));
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(all.Json()["count"], 11);
  HttpResponse echo = HttpGet(c.Url("/api/tasks?service=echo&status=completed&limit=3"));
  ASSERT_EQ(echo.status, 200);
  ASSERT_EQ(echo.Json()["count"], 3);
  EXPECT_EQ(echo.Json()["tasks"][0]["task_id"], done[4]);
  EXPECT_EQ(echo.Json()["tasks"][2]["task_id"], done[2]);

  // Today's counts survive a clean restart (the minute in progress is written at shutdown).
  json before = HttpGet(c.Url("/api/admin/stats")).Json();
  ASSERT_EQ(before["today"]["source"], "postgresql") << before.dump();
  c.RestartBroker(/*kill=*/false);
  json after = HttpGet(c.Url("/api/admin/stats")).Json();
  EXPECT_EQ(after["today"]["source"], "postgresql");
  EXPECT_EQ(after["today"]["submitted"], before["today"]["submitted"]) << after.dump();
  EXPECT_EQ(after["today"]["completed"], before["today"]["completed"]) << after.dump();
  EXPECT_GE(after["today"]["completed"].get<int>(), 6);

  // Workers are on record with their totals.
  EXPECT_EQ(QueryValue(db.url(), "SELECT tasks_done >= 6 FROM workers WHERE worker_id = 'beta'"),
            "t");
  EXPECT_EQ(QueryValue(db.url(), "SELECT services[1] FROM workers WHERE worker_id = 'alpha'"),
            "echo");
}

TEST_F(RecoveryTest, WithoutTheDatabaseNewTasksGet503AndEverythingCatchesUpAfterwards) {
  PrivatePg pg;
  ClusterOptions options;
  options.broker_args = {"--db", pg.url()};
  Cluster c(options);
  c.StartWorker("alpha", {"--service", "echo=builtin:echo"});
  ASSERT_TRUE(c.WaitForLiveWorkers(1, 20s, "echo")) << c.Logs();
  std::string first = Submit(c, {{"service", "echo"}, {"payload", "before"}});
  ASSERT_EQ(WaitForTask(c, first)["status"], "completed");

  pg.Stop();
  HttpResponse refused;
  ASSERT_TRUE(WaitUntil(
      [&] {
        refused =
            HttpPostJson(c.Url("/api/tasks"), {{"service", "echo"}, {"payload", "during"}}, 2000);
        return refused.status == 503;
      },
      30s))
      << refused.status << " " << refused.body << c.Logs();
  EXPECT_EQ(refused.Json()["code"], "unavailable") << refused.body;
  EXPECT_NE(refused.body.find("not accepted"), std::string::npos) << refused.body;

  // What memory holds is still served.
  HttpResponse got = HttpGet(c.Url("/api/tasks/" + first));
  EXPECT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.Json()["result"], "before");
  HttpResponse list = HttpGet(c.Url("/api/tasks"));
  EXPECT_EQ(list.status, 200) << list.body;
  json health = HttpGet(c.Url("/api/admin/health")).Json();
  EXPECT_EQ(health["store_available"], false) << health.dump();
  json stats = HttpGet(c.Url("/api/admin/stats")).Json();
  EXPECT_EQ(stats["today"]["source"], "memory") << stats.dump();
  // A synchronous call needs no record.
  HttpResponse call = HttpCall("POST", c.Url("/api/service/echo/x"), "sync", {}, 10000);
  EXPECT_EQ(call.status, 200) << call.body;

  ASSERT_TRUE(pg.Start());
  std::string again;
  ASSERT_TRUE(WaitUntil(
      [&] {
        HttpResponse r =
            HttpPostJson(c.Url("/api/tasks"), {{"service", "echo"}, {"payload", "after"}}, 5000);
        if (r.status == 202) again = r.Json()["task_id"];
        return r.status == 202;
      },
      30s))
      << c.Logs();
  EXPECT_EQ(WaitForTask(c, again)["result"], "after");
  EXPECT_EQ(HttpGet(c.Url("/api/admin/health")).Json()["store_available"], true);
  // Caught up: the tasks' final states are on record.
  EXPECT_TRUE(WaitUntil(
      [&] {
        return QueryValue(pg.url(),
                          "SELECT count(*) FROM tasks WHERE status = 'completed' AND "
                          "convert_from(result, 'UTF8') IN ('\"before\"', '\"after\"')") == "2";
      },
      10s));
}

TEST_F(RecoveryTest, DeadTasksOnlyOnRecordCanBeRetriedOrDiscarded) {
  FreshDatabase db;
  ClusterOptions options;
  options.broker_args = {"--db", db.url()};
  Cluster c(options);
  c.StartWorker("alpha", {"--service", "flaky=builtin:fail", "--service", "echo=builtin:echo"});
  ASSERT_TRUE(c.WaitForLiveWorkers(1, 20s, "flaky")) << c.Logs();
  std::string retry_me = Submit(c, {{"service", "flaky"}, {"payload", "x"}, {"max_attempts", 1}});
  std::string drop_me = Submit(c, {{"service", "flaky"}, {"payload", "y"}, {"max_attempts", 1}});
  std::string fine = Submit(c, {{"service", "echo"}, {"payload", "z"}});
  EXPECT_EQ(WaitForTask(c, retry_me)["status"], "dead");
  EXPECT_EQ(WaitForTask(c, drop_me)["status"], "dead");
  EXPECT_EQ(WaitForTask(c, fine)["status"], "completed");

  c.RestartBroker(/*kill=*/false);  // finished tasks are not loaded back: now only on record

  ZmqClient admin(c.clients_endpoint());
  proto::Decoder decoder;
  auto ask = [&](uint64_t ref, const std::string& query, const std::string& id) {
    proto::Admin a;
    a.ref = ref;
    a.query = query;
    a.task_id = id;
    ClientMessage answer;
    EXPECT_TRUE(admin.Call(proto::Command::kAdmin, proto::Encode(a), ref, 10s, &answer));
    return answer;
  };
  ClientMessage retried = ask(1, "retry", retry_me);
  ASSERT_EQ(retried.command, proto::Command::kAdminReply);
  ClientMessage discarded = ask(2, "discard", drop_me);
  ASSERT_EQ(discarded.command, proto::Command::kAdminReply);
  ClientMessage wrong = ask(3, "retry", fine);
  ASSERT_EQ(wrong.command, proto::Command::kError);
  proto::Error e;
  ASSERT_TRUE(decoder.Decode(wrong.bodies[0], &e).ok());
  EXPECT_EQ(e.code, "failed_precondition") << e.message;

  // The retried task runs again (and, builtin:fail being what it is, dies again).
  ASSERT_TRUE(c.WaitForLiveWorkers(1, 20s, "flaky")) << c.Logs();
  json t = WaitForTask(c, retry_me);
  EXPECT_EQ(t["status"], "dead") << t.dump();
  EXPECT_EQ(t["attempts"], 2) << t.dump();
  EXPECT_EQ(HttpGet(c.Url("/api/tasks/" + drop_me)).status, 404);
  EXPECT_EQ(QueryValue(db.url(), "SELECT count(*) FROM tasks"), "2");
}

}  // namespace
}  // namespace rma::testing
