// Reputation end to end (issue 17; docs/architecture.md, "Reputation"), with real rma-broker,
// rma-gateway, rma-worker and rmactl processes: a worker that fails every task it takes falls to
// `quarantined` and gets no more client tasks; the admin API, rmactl and /metrics show it; an admin
// restores it with `rmactl worker trust NAME normal` (it then takes the task that waited), and a
// ban disconnects it for good (rma-worker exits). Trusted-only work waits for a trusted worker.
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "tests/support/cluster.h"
#include "tests/support/process.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

const char* const kJson = "Content-Type: application/json";

json Worker(Cluster& c, const std::string& id) { return c.WorkerRecord(id); }

std::string State(Cluster& c, const std::string& id) { return ReputationState(c, id); }

std::string Submit(Cluster& c, const std::string& service) {
  HttpResponse r =
      HttpCall("POST", c.Url("/api/tasks"),
               json{{"service", service}, {"payload", "x"}, {"max_attempts", 1}}.dump(), {kJson});
  EXPECT_EQ(r.status, 202) << r.body;
  return r.Json().value("task_id", "");
}

std::string Status(Cluster& c, const std::string& id) {
  return HttpGet(c.Url("/api/tasks/" + id)).Json().value("status", "");
}

CliResult Cli(Cluster& c, const std::vector<std::string>& args) {
  return Rmactl(c, args, {{"RMA_GATEWAY", c.Url("")}});
}

TEST(ReputationE2eTest, AWorkerThatFailsEveryTaskIsQuarantinedUntilAnAdminActs) {
  Cluster c;
  c.StartWorker("broken", {"--service", "job=builtin:fail"});
  ASSERT_TRUE(WaitForService(c, "job")) << c.Logs();
  EXPECT_EQ(State(c, "broken"), "probation");
  // Five failures of its own (retryable errors): quarantined.
  for (int i = 0; i < 5; ++i) {
    const std::string id = Submit(c, "job");
    ASSERT_TRUE(WaitUntil([&] { return Status(c, id) == "dead"; }, 20s))
        << Status(c, id) << c.Logs();
  }
  ASSERT_TRUE(WaitUntil([&] { return State(c, "broken") == "quarantined"; }, 10s))
      << Worker(c, "broken").dump() << c.Logs();
  json rep = Worker(c, "broken")["reputation"];
  EXPECT_GE(rep["counts"].value("errors", 0.0), 4.9) << rep.dump();
  EXPECT_LT(rep.value("score", 1.0), 0.5) << rep.dump();
  // Shown in rmactl's table and in /metrics.
  CliResult table = Cli(c, {"workers"});
  EXPECT_EQ(table.exit_code, 0) << table.output;
  EXPECT_NE(table.output.find("quarantined"), std::string::npos) << table.output;
  const std::string metrics = HttpGet(c.Url("/metrics")).body;
  EXPECT_NE(metrics.find("rma_workers_by_reputation{state=\"quarantined\"} 1"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("rma_reputation_transitions_total{to=\"quarantined\"} 1"),
            std::string::npos);

  // A client task now waits: the only provider takes no client work.
  const std::string waiting = Submit(c, "job");
  EXPECT_EQ(Status(c, waiting), "queued");
  EXPECT_EQ(Worker(c, "broken").value("in_flight", -1), 0);

  // Bad requests: a state that is none, a worker that is none.
  HttpResponse bad = HttpCall("POST", c.Url("/api/admin/workers/broken/trust"),
                              json{{"state", "saint"}}.dump(), {kJson});
  EXPECT_EQ(bad.status, 400) << bad.body;
  HttpResponse none = HttpCall("POST", c.Url("/api/admin/workers/nobody/trust"),
                               json{{"state", "normal"}}.dump(), {kJson});
  EXPECT_EQ(none.status, 404) << none.body;
  EXPECT_EQ(HttpCall("POST", c.Url("/api/admin/workers/broken/trust"), "{}", {kJson}).status, 400);

  // An admin gives it a fresh start: on probation again, it takes the task that waited.
  CliResult restored = Cli(c, {"worker", "trust", "broken", "normal"});
  EXPECT_EQ(restored.exit_code, 0) << restored.output;
  EXPECT_NE(restored.output.find("quarantined -> probation"), std::string::npos) << restored.output;
  EXPECT_EQ(State(c, "broken"), "probation");
  ASSERT_TRUE(WaitUntil([&] { return Status(c, waiting) == "dead"; }, 20s)) << Status(c, waiting);

  // Banned: disconnected for good (rma-worker exits), refused if it comes back.
  HttpResponse banned = HttpCall("POST", c.Url("/api/admin/workers/broken/trust"),
                                 json{{"state", "banned"}}.dump(), {kJson});
  ASSERT_EQ(banned.status, 200) << banned.body;
  EXPECT_EQ(banned.Json().value("state", ""), "banned");
  EXPECT_TRUE(c.worker("broken").Wait(20s).has_value()) << "the banned worker kept running";
}

// Trusted-only work through the gateway: a task with "trusted_only" waits while its only provider
// is not trusted, and completes once an admin marks that worker trusted; a synchronous call to a
// service whose catalog entry is trusted-only answers 503 until then.
TEST(ReputationE2eTest, TrustedOnlyWorkWaitsForAWorkerAnAdminTrusts) {
  ClusterOptions options;
  const std::string dir = TempDir("rma-trusted-only");
  const std::string config = dir + "/broker.json";
  {
    std::ofstream(config)
        << json{{"catalog", {{{"service", "secret"}, {"tier", 2}, {"trusted_only", true}}}}}.dump();
  }
  options.broker_args = {"--config", config};
  Cluster c(options);
  c.StartWorker("box", {"--service", "job=builtin:echo", "--service", "secret=builtin:echo"});
  ASSERT_TRUE(WaitForService(c, "job")) << c.Logs();
  HttpResponse submitted =
      HttpCall("POST", c.Url("/api/tasks"),
               json{{"service", "job"}, {"payload", "p"}, {"trusted_only", true}}.dump(), {kJson});
  ASSERT_EQ(submitted.status, 202) << submitted.body;
  const std::string id = submitted.Json().value("task_id", "");
  // An ordinary task completes at once on the same worker; the trusted-only one still waits.
  const std::string plain = Submit(c, "job");
  ASSERT_TRUE(WaitUntil([&] { return Status(c, plain) == "completed"; }, 20s));
  EXPECT_EQ(Status(c, id), "queued");
  HttpResponse refused = HttpCall("POST", c.Url("/api/service/secret/x"), "hi", {});
  EXPECT_EQ(refused.status, 503) << refused.body;
  // Trusted: the waiting task runs, and the service answers.
  HttpResponse trusted = HttpCall("POST", c.Url("/api/admin/workers/box/trust"),
                                  json{{"state", "trusted"}}.dump(), {kJson});
  ASSERT_EQ(trusted.status, 200) << trusted.body;
  ASSERT_TRUE(WaitUntil([&] { return Status(c, id) == "completed"; }, 20s)) << Status(c, id);
  EXPECT_EQ(HttpCall("POST", c.Url("/api/service/secret/x"), "hi", {}).status, 200);
}

}  // namespace
}  // namespace rma::testing
