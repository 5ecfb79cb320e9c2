// Reputation across a broker restart (issue 17; docs/architecture.md, "Reputation"), with real
// processes on PostgreSQL: a worker quarantined by the rules, and one an admin banned, are still
// quarantined and banned after the broker is killed (SIGKILL) and started again.
#include <gtest/gtest.h>

#include "tests/store/pg_env.h"
#include "tests/support/cluster.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

const char* const kJson = "Content-Type: application/json";

std::string State(Cluster& c, const std::string& id) { return ReputationState(c, id); }

TEST(ReputationRestartTest, QuarantinesAndBansOutliveTheBroker) {
  RMA_REQUIRE_PG();
  FreshDatabase db;
  ClusterOptions options;
  options.broker_args = {"--db", db.url()};
  Cluster c(options);
  c.StartWorker("broken", {"--service", "job=builtin:fail"});
  c.StartWorker("other", {"--service", "echo=builtin:echo"});
  ASSERT_TRUE(WaitForService(c, "job")) << c.Logs();
  ASSERT_TRUE(WaitForService(c, "echo")) << c.Logs();
  for (int i = 0; i < 5; ++i) {
    HttpResponse r =
        HttpCall("POST", c.Url("/api/tasks?wait=20"),
                 json{{"service", "job"}, {"payload", "x"}, {"max_attempts", 1}}.dump(), {kJson});
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_EQ(r.Json().value("status", ""), "dead") << r.body;
  }
  ASSERT_TRUE(WaitUntil([&] { return State(c, "broken") == "quarantined"; }, 10s));
  HttpResponse banned = HttpCall("POST", c.Url("/api/admin/workers/other/trust"),
                                 json{{"state", "banned"}}.dump(), {kJson});
  ASSERT_EQ(banned.status, 200) << banned.body;
  ASSERT_TRUE(c.worker("other").Wait(20s).has_value());
  // The record is in the database before the kill (written in the group commit).
  ASSERT_TRUE(WaitUntil(
      [&] { return QueryValue(db.url(), "SELECT count(*) FROM worker_trust") == "2"; }, 10s));

  c.RestartBroker(/*kill=*/true);
  // The quarantined worker reconnects, still quarantined; the banned one is refused if it tries.
  ASSERT_TRUE(WaitUntil([&] { return State(c, "broken") == "quarantined"; }, 20s))
      << c.WorkerRecord("broken").dump() << c.Logs();
  Process& again = c.StartWorker("other", {"--service", "echo=builtin:echo"});
  EXPECT_TRUE(again.Wait(20s).has_value()) << "a banned worker was let back in";
  EXPECT_NE(again.Log().find("banned"), std::string::npos) << again.Log();
}

}  // namespace
}  // namespace rma::testing
