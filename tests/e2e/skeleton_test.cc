// End to end, real processes: broker, gateway and two workers on free ports; tasks submitted over
// HTTP all complete with the right results; one worker is killed with SIGKILL and the pool keeps
// answering.
#include <gtest/gtest.h>

#include "tests/support/cluster.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

TEST(SkeletonTest, TasksCompleteOnTwoWorkersAndSurviveOneBeingKilled) {
  Cluster cluster;
  cluster.StartWorker("alpha", {"--service", "echo=builtin:echo", "--slots", "2"});
  cluster.StartWorker("beta", {"--service", "echo=builtin:echo", "--slots", "2"});
  ASSERT_TRUE(cluster.WaitForLiveWorkers(2, 20s, "echo")) << cluster.Logs();

  // Asynchronous tasks: 202 with an id, then the result by long-poll.
  std::vector<std::pair<std::string, int>> submitted;
  for (int i = 0; i < 40; ++i) {
    HttpResponse r =
        HttpPostJson(cluster.Url("/api/tasks"), {{"service", "echo"}, {"payload", {{"n", i}}}});
    ASSERT_EQ(r.status, 202) << r.body;
    json j = r.Json();
    ASSERT_TRUE(j["task_id"].is_string());
    EXPECT_EQ(j["status"], "queued");
    submitted.emplace_back(j["task_id"].get<std::string>(), i);
  }
  std::set<std::string> workers_used;
  for (const auto& [id, n] : submitted) {
    HttpResponse r = HttpGet(cluster.Url("/api/tasks/" + id + "?wait=10"));
    ASSERT_EQ(r.status, 200) << r.body;
    json t = r.Json();
    ASSERT_EQ(t["status"], "completed") << t.dump();
    EXPECT_EQ(t["result"], json({{"n", n}}));
    EXPECT_EQ(t["task_id"], id);
    EXPECT_EQ(t["service"], "echo");
    workers_used.insert(t["worker_id"].get<std::string>());
  }
  EXPECT_EQ(workers_used.size(), 2u) << "both workers should have taken work";

  // Synchronous call through the service route.
  HttpResponse call = HttpCall("POST", cluster.Url("/api/service/echo/anything"), "ping",
                               {"Content-Type: text/plain"});
  EXPECT_EQ(call.status, 200) << call.body;
  EXPECT_EQ(call.body, "ping");

  // Nobody provides "rag": 503 listing what is available.
  HttpResponse missing = HttpCall("POST", cluster.Url("/api/service/rag/query"), "{}");
  EXPECT_EQ(missing.status, 503);
  // echo, plus the generic services when this machine is big enough to make its workers tier 2.
  json available = missing.Json()["available_services"];
  ASSERT_TRUE(available.is_array()) << missing.body;
  EXPECT_NE(std::find(available.begin(), available.end(), "echo"), available.end()) << missing.body;
  EXPECT_EQ(std::find(available.begin(), available.end(), "rag"), available.end()) << missing.body;

  // Kill one worker: the pool keeps serving with the other.
  cluster.worker("alpha").Kill();
  for (int i = 0; i < 20; ++i) {
    HttpResponse r = HttpPostJson(cluster.Url("/api/tasks"), {{"service", "echo"}, {"payload", i}});
    ASSERT_EQ(r.status, 202) << r.body;
    std::string id = r.Json()["task_id"];
    HttpResponse done = HttpGet(cluster.Url("/api/tasks/" + id + "?wait=15"), 20000);
    ASSERT_EQ(done.status, 200);
    EXPECT_EQ(done.Json()["status"], "completed") << done.body << cluster.Logs();
    EXPECT_EQ(done.Json()["result"], i);
  }
  // The killed worker is reported offline once its heartbeats stop.
  EXPECT_TRUE(WaitUntil(
      [&] { return cluster.WorkerRecord("alpha").value("status", "") == "offline"; }, 10s));

  // Everything stops cleanly on SIGTERM.
  cluster.worker("beta").Signal(SIGTERM);
  EXPECT_EQ(cluster.worker("beta").Wait(20s), 0) << cluster.worker("beta").Log();
  cluster.gateway().Signal(SIGTERM);
  EXPECT_EQ(cluster.gateway().Wait(20s), 0) << cluster.gateway().Log();
  cluster.broker().Signal(SIGTERM);
  EXPECT_EQ(cluster.broker().Wait(20s), 0) << cluster.broker().Log();
}

TEST(SkeletonTest, UnknownTaskIsNotFoundAndHealthAnswers) {
  Cluster cluster;
  EXPECT_EQ(HttpGet(cluster.Url("/api/tasks/123456")).status, 404);
  EXPECT_EQ(HttpGet(cluster.Url("/api/tasks/not-a-number")).status, 404);
  HttpResponse health = HttpGet(cluster.Url("/health"));
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.Json()["status"], "ok");
  HttpResponse workers = HttpGet(cluster.Url("/api/admin/workers"));
  EXPECT_EQ(workers.status, 200);
  EXPECT_EQ(workers.Json()["workers"], json::array());
}

}  // namespace
}  // namespace rma::testing
