// The console API on PostgreSQL (console_e2e.h): the listings and dead letters come from the
// record, the history from service_stats_minute, and the attempt log survives a broker restart.
#include "tests/e2e/console_e2e.h"
#include "tests/store/pg_env.h"

namespace rma::testing {
namespace {

TEST(ConsolePgE2eTest, EveryRouteWorksOnTheRecord) {
  RMA_REQUIRE_PG();
  FreshDatabase db;
  ClusterOptions options;
  options.broker_args = {"--db", db.url()};
  Cluster c(options);
  StartConsoleWorker(c);
  CheckTaskBrowser(c);
  CheckTaskPage(c);
  CheckDeadLetters(c);
  CheckWorkerPageAndPurge(c);

  json history = Get(c, "/api/admin/history?range=1h");
  EXPECT_EQ(history["range"], "1h");
  EXPECT_EQ(history["step_s"], 60);
  ASSERT_EQ(history["points"].size(), 60u) << history.dump();
  uint64_t submitted = 0;
  for (const json& p : history["points"]) submitted += p["submitted"].get<uint64_t>();
  EXPECT_GE(submitted, 10u) << history.dump();
  json echo = Get(c, "/api/admin/history?service=echo&range=24h");
  EXPECT_EQ(echo["points"].size(), 96u);
  EXPECT_EQ(echo["service"], "echo");
  EXPECT_EQ(Get(c, "/api/admin/history?range=7d")["points"].size(), 84u);
  Get(c, "/api/admin/history?range=2h", 400);

  // The attempt log is in the task's row, and outlives the broker.
  const std::string id = Submit(c, "echo", "again");
  // Task ids are unsigned; the column is a bigint holding the same 64 bits.
  const std::string row_id = std::to_string(static_cast<int64_t>(std::stoull(id)));
  ASSERT_TRUE(WaitUntil(
      [&] {
        return QueryValue(db.url(),
                          "SELECT jsonb_array_length(attempt_log) FROM tasks WHERE "
                          "task_id = " +
                              row_id) == "1";
      },
      10s));
  // The queue depth is recorded with the minute rows (written at least every 10 s).
  ASSERT_TRUE(WaitUntil(
      [&] {
        return QueryValue(db.url(),
                          "SELECT count(*) FROM service_stats_minute WHERE queue_depth "
                          "IS NOT NULL") != "0";
      },
      30s));
  c.RestartBroker(/*kill=*/true);
  ASSERT_TRUE(WaitUntil([&] { return HttpGet(c.Url("/api/tasks/" + id)).status == 200; }, 20s))
      << c.Logs();
  json t = Get(c, "/api/tasks/" + id + "?detail=1");
  ASSERT_EQ(t["attempt_log"].size(), 1u) << t.dump();
  EXPECT_EQ(t["attempt_log"][0]["outcome"], "completed");
}

}  // namespace
}  // namespace rma::testing
