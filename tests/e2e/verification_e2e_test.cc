// Verification by replication end to end (issue 17; docs/architecture.md, "Verification"), with
// real rma-broker, rma-gateway and rma-worker processes: 3 honest workers and 1 liar that returns a
// wrong answer for 30% of its tasks, on a deterministic exec service whose catalog entry samples
// 0.2 of the results. Tasks go through the HTTP API in batches. The liar is quarantined within the
// first 200 tasks; no task marked `verified` carries a wrong answer; no honest worker is ever
// quarantined; /metrics counts the checks.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/cluster.h"
#include "tests/support/process.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

const char* const kJson = "Content-Type: application/json";

std::string State(Cluster& c, const std::string& id) { return ReputationState(c, id); }

class VerificationE2eTest : public ::testing::Test {
 protected:
  static ClusterOptions Options() {
    const std::string dir = TempDir("rma-verify");
    const std::string config = dir + "/broker.json";
    std::ofstream(config) << R"({"catalog": [{"service": "echo", "tier": 3,
                                 "verify": {"sample_rate": 0.2, "compare": "exact"}}]})";
    ClusterOptions o;
    o.broker_args = {"--config", config};
    return o;
  }
};

TEST_F(VerificationE2eTest, TheLiarIsQuarantinedAndNoVerifiedTaskCarriesItsAnswer) {
  Cluster c(Options());
  // Every worker runs the same command, so each takes about the same share of the tasks (a liar
  // slower than the others would take fewer, and be found later in tasks of the pool); only the
  // liar acts on the random byte: wrong for 77 in 256 tasks (30%).
  auto service = [](const std::string& lie_below) {
    return "echo=exec:n=$(od -An -N1 -tu1 /dev/urandom); if [ $n -lt " + lie_below +
           " ]; then printf wrong; else cat; fi";
  };
  for (const char* name : {"honest1", "honest2", "honest3"}) {
    c.StartWorker(name, {"--service", service("0"), "--slots", "2"});
  }
  c.StartWorker("liar", {"--service", service("77"), "--slots", "2"});
  ASSERT_TRUE(c.WaitForLiveWorkers(4, 30s)) << c.Logs();

  constexpr int kTasks = 2000;
  constexpr int kBatch = 20;
  int quarantined_at = -1;  // tasks of the pool (batches) when the liar was found quarantined
  int liar_tasks = 0;       // ...of which the liar had returned
  int verified = 0;
  int unverified_wrong = 0;  // lies that were not sampled: sampling's known cost
  for (int done = 0; done < kTasks; done += kBatch) {
    std::vector<std::pair<std::string, std::string>> batch;  // id, payload
    for (int i = 0; i < kBatch; ++i) {
      const std::string payload = "task-" + std::to_string(done + i);
      HttpResponse r = HttpCall("POST", c.Url("/api/tasks"),
                                json{{"service", "echo"}, {"payload", payload}}.dump(), {kJson});
      ASSERT_EQ(r.status, 202) << r.body;
      // A JSON payload reaches the worker as its JSON text, and `cat` sends that text back.
      batch.emplace_back(r.Json().value("task_id", ""), json(payload).dump());
    }
    for (const auto& [id, expected] : batch) {
      json t = HttpGet(c.Url("/api/tasks/" + id + "?wait=60")).Json();
      ASSERT_EQ(t.value("status", ""), "completed") << t.dump() << c.Logs();
      const std::string result = t["result"].is_string() ? t["result"].get<std::string>() : "";
      if (t.value("verified", false)) {
        ++verified;
        ASSERT_EQ(result, expected) << "a verified task carried a wrong answer: " << t.dump();
      } else if (result != expected) {
        ++unverified_wrong;
      }
    }
    for (const char* name : {"honest1", "honest2", "honest3"}) {
      ASSERT_NE(State(c, name), "quarantined")
          << name << " was quarantined after " << done + kBatch << " tasks" << c.Logs();
    }
    if (quarantined_at < 0 && State(c, "liar") == "quarantined") {
      quarantined_at = done + kBatch;
      liar_tasks = c.WorkerRecord("liar")["reputation"].value("tasks", 0);
    }
  }
  ASSERT_GT(quarantined_at, 0) << "the liar was never quarantined: "
                               << c.WorkerRecord("liar").dump();
  EXPECT_LE(quarantined_at, 200) << c.WorkerRecord("liar").dump();
  EXPECT_GT(verified, 0);
  const std::string metrics = HttpGet(c.Url("/metrics")).body;
  EXPECT_NE(metrics.find("rma_verifications_total{outcome=\"tie_broken\"}"), std::string::npos)
      << metrics;
  std::printf(
      "liar quarantined after %d tasks of the pool (%d of its own); %d of %d tasks "
      "verified; %d unsampled lies returned\n",
      quarantined_at, liar_tasks, verified, kTasks, unverified_wrong);
}

}  // namespace
}  // namespace rma::testing
