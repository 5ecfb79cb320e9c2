// End to end with real processes: the example scenarios of the pool's design, with simulated GPU,
// CPU and storage workers (the broker runs with --allow-simulated), plus a worker killed with
// SIGKILL mid-task.
#include <gtest/gtest.h>

#include <set>

#include "tests/support/cluster.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

ClusterOptions Simulated() {
  ClusterOptions o;
  o.broker_args = {"--allow-simulated"};
  return o;
}

// A synchronous call; returns the worker that served it (empty on failure, with the body in *body).
std::string CallAndGetWorker(Cluster& c, const std::string& path, std::string* body = nullptr,
                             long* status = nullptr) {
  HttpResponse r =
      HttpCall("POST", c.Url(path), "{\"q\":\"hi\"}", {"Content-Type: application/json"});
  if (body != nullptr) *body = r.body;
  if (status != nullptr) *status = r.status;
  return r.status == 200 ? r.Header("x-rma-worker-id") : "";
}

TEST(ScenarioTest, RagQueryGoesToAGpuWorker) {
  Cluster c(Simulated());
  for (const char* name : {"gpu-1", "gpu-2"}) {
    c.StartWorker(name, {"--simulate", "gpu", "--service", "rag=builtin:echo", "--slots", "2"});
  }
  for (const char* name : {"cpu-1", "cpu-2", "cpu-3"}) {
    c.StartWorker(name, {"--simulate", "cpu", "--service", "rag=builtin:echo", "--slots", "2"});
  }
  ASSERT_TRUE(c.WaitForLiveWorkers(5, 20s, "rag")) << c.Logs();
  EXPECT_EQ(c.WorkerRecord("gpu-1").value("tier", 0), 1);
  EXPECT_EQ(c.WorkerRecord("cpu-1").value("tier", 0), 2);
  std::set<std::string> served_by;
  for (int i = 0; i < 20; ++i) {
    std::string body;
    std::string worker = CallAndGetWorker(c, "/api/rag/query", &body);
    ASSERT_FALSE(worker.empty()) << body;
    served_by.insert(worker);
  }
  EXPECT_EQ(served_by, (std::set<std::string>{"gpu-1", "gpu-2"}))
      << "only GPU workers, and both of them";
}

TEST(ScenarioTest, RagWithoutAGpuWorkerGets503WithTheAvailableServices) {
  Cluster c(Simulated());
  // rag runs only on the GPU tier here; the CPU workers offer other services.
  c.StartWorker("gpu-1", {"--simulate", "gpu", "--service", "rag=builtin:echo"});
  c.StartWorker("cpu-1", {"--simulate", "cpu", "--service", "ocr=builtin:echo"});
  c.StartWorker("cpu-2", {"--simulate", "cpu", "--service", "embeddings=builtin:echo"});
  ASSERT_TRUE(c.WaitForLiveWorkers(3, 20s)) << c.Logs();
  ASSERT_EQ(CallAndGetWorker(c, "/api/rag/query"), "gpu-1");
  c.worker("gpu-1").Kill();
  ASSERT_TRUE(
      WaitUntil([&] { return c.WorkerRecord("gpu-1").value("status", "") == "offline"; }, 10s));
  std::string body;
  long status = 0;
  CallAndGetWorker(c, "/api/rag/query", &body, &status);
  EXPECT_EQ(status, 503);
  json j = json::parse(body, nullptr, false);
  EXPECT_EQ(j.value("error", ""), "Service 'rag' not available");
  EXPECT_EQ(j["available_services"], json({"cpu-worker", "embeddings", "ocr", "processing"}))
      << body;
  EXPECT_TRUE(j["suggestion"].is_string());
}

TEST(ScenarioTest, ChromadbPrefersTheGpuWorkerOverTheStorageWorker) {
  Cluster c(Simulated());
  c.StartWorker("store-1",
                {"--simulate", "storage", "--service", "chromadb=builtin:echo", "--slots", "4"});
  c.StartWorker("gpu-1",
                {"--simulate", "gpu", "--service", "chromadb=builtin:echo", "--slots", "4"});
  ASSERT_TRUE(c.WaitForLiveWorkers(2, 20s, "chromadb")) << c.Logs();
  EXPECT_EQ(c.WorkerRecord("store-1").value("tier", 0), 3);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(CallAndGetWorker(c, "/api/chromadb/api/v1/collections"), "gpu-1");
}

TEST(ScenarioTest, OneStorageWorkerServesChromadbRedisAndPostgres) {
  Cluster c(Simulated());
  c.StartWorker("store-1",
                {"--simulate", "storage", "--service", "chromadb=builtin:echo", "--service",
                 "redis=builtin:echo", "--service", "postgres=builtin:echo", "--slots", "3"});
  ASSERT_TRUE(c.WaitForLiveWorkers(1, 20s)) << c.Logs();
  for (const char* service : {"chromadb", "redis", "postgres"}) {
    std::string body;
    EXPECT_EQ(CallAndGetWorker(c, std::string("/api/service/") + service + "/ping", &body),
              "store-1")
        << body;
    EXPECT_EQ(body, "{\"q\":\"hi\"}") << "the echo backend returns the request body";
  }
  // The same services through asynchronous tasks.
  for (const char* service : {"chromadb", "redis", "postgres"}) {
    HttpResponse r =
        HttpPostJson(c.Url("/api/tasks"), {{"service", service}, {"payload", service}});
    ASSERT_EQ(r.status, 202) << r.body;
    HttpResponse done =
        HttpGet(c.Url("/api/tasks/" + r.Json()["task_id"].get<std::string>() + "?wait=10"));
    EXPECT_EQ(done.Json()["status"], "completed");
    EXPECT_EQ(done.Json()["worker_id"], "store-1");
    EXPECT_EQ(done.Json()["result"], service);
  }
}

TEST(ScenarioTest, TaskOfAWorkerKilledMidTaskCompletesOnAnotherWorker) {
  Cluster c(Simulated());
  c.StartWorker("first", {"--simulate", "cpu", "--service", "sleep=builtin:sleep"});
  ASSERT_TRUE(c.WaitForLiveWorkers(1, 20s)) << c.Logs();
  HttpResponse r =
      HttpPostJson(c.Url("/api/tasks"), {{"service", "sleep"}, {"payload", {{"ms", 1500}}}});
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string id = r.Json()["task_id"];
  ASSERT_TRUE(WaitUntil(
      [&] {
        json t = HttpGet(c.Url("/api/tasks/" + id)).Json();
        return t.value("status", "") == "running" && t.value("worker_id", json()).is_string() &&
               t["worker_id"] == "first";
      },
      10s));
  c.StartWorker("second", {"--simulate", "cpu", "--service", "sleep=builtin:sleep"});
  ASSERT_TRUE(c.WaitForLiveWorkers(2, 20s)) << c.Logs();
  c.worker("first").Kill();
  HttpResponse done = HttpGet(c.Url("/api/tasks/" + id + "?wait=20"), 30000);
  json t = done.Json();
  ASSERT_EQ(t.value("status", ""), "completed") << done.body << c.Logs();
  EXPECT_EQ(t["worker_id"], "second");
  EXPECT_EQ(t["attempts"], 2);
  EXPECT_EQ(t["result"], json({{"slept_ms", 1500}}));
}

}  // namespace
}  // namespace rma::testing
