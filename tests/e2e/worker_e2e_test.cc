// The worker agent end to end, with real processes: rma-broker, rma-gateway, rma-worker and
// rma-test-backend (a real HTTP backend), all on ports the kernel chose.
// - A broker restarted under a running worker: the worker registers again and keeps serving.
// - A broker frozen (SIGSTOP) while a task runs: the result finished meanwhile is delivered after
//   the worker reconnects, and the task ran exactly once.
// - SIGTERM with tasks in flight: they finish, nothing is lost or run twice; a second signal exits
//   at once and the broker runs the abandoned task elsewhere.
// - A backend going down leaves the registry (admin API) without dropping the call in flight, and
//   comes back when the backend does; calls are replayed and answers relayed as they are.
// - A refused worker exits with an error.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <set>
#include <thread>

#include "tests/support/cluster.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using ::testing::HasSubstr;

std::string Submit(Cluster& cluster, const std::string& service, const json& payload) {
  HttpResponse r =
      HttpPostJson(cluster.Url("/api/tasks"), {{"service", service}, {"payload", payload}});
  EXPECT_EQ(r.status, 202) << r.body;
  return r.Json().value("task_id", "");
}

json Task(Cluster& cluster, const std::string& id, int wait_s = 0) {
  HttpResponse r = HttpGet(
      cluster.Url("/api/tasks/" + id + (wait_s > 0 ? "?wait=" + std::to_string(wait_s) : "")),
      (wait_s + 10) * 1000L);
  return r.Json();
}

bool HasService(const json& worker, const std::string& service) {
  if (!worker.is_object() || !worker.contains("services")) return false;
  for (const auto& s : worker["services"]) {
    if (s == service) return true;
  }
  return false;
}

bool LogHas(Process& p, const std::string& text) { return p.Log().find(text) != std::string::npos; }

// rma-test-backend as a process, on a free port or on `port` (to come back where it was).
struct Backend {
  Backend(const std::string& dir, int port = 0) {
    static int n = 0;
    std::string port_file = dir + "/backend-" + std::to_string(++n) + ".port";
    process = Process::Start("rma-test-backend",
                             {"--port", std::to_string(port), "--port-file", port_file},
                             dir + "/backend-" + std::to_string(n) + ".log");
    std::string got = WaitForFile(port_file, 20s);
    if (got.empty()) throw std::runtime_error("rma-test-backend did not start: " + process.Log());
    this->port = std::stoi(got);
  }
  std::string Url(const std::string& path = "") const {
    return "http://127.0.0.1:" + std::to_string(port) + path;
  }
  Process process;
  int port = 0;
};

TEST(WorkerE2eTest, ABrokerRestartedUnderARunningWorkerGetsItBack) {
  Cluster cluster;
  Process& worker = cluster.StartWorker("steady", {"--service", "echo=builtin:echo"});
  ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 20s, "echo")) << cluster.Logs();
  for (bool kill : {true, false}) {
    cluster.RestartBroker(kill);
    ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 30s, "echo")) << cluster.Logs();
    EXPECT_TRUE(worker.running()) << "the worker rode out the restart";
    for (int i = 0; i < 5; ++i) {
      std::string id = Submit(cluster, "echo", {{"round", kill ? "kill" : "term"}, {"i", i}});
      json t = Task(cluster, id, 15);
      ASSERT_EQ(t.value("status", ""), "completed") << t.dump() << cluster.Logs();
      EXPECT_EQ(t["result"]["i"], i);
      EXPECT_EQ(t["worker_id"], "steady");
    }
  }
  EXPECT_TRUE(LogHas(worker, "registering again") || LogHas(worker, "reconnecting"))
      << worker.Log();
}

TEST(WorkerE2eTest, AResultFinishedWhileTheBrokerWasFrozenIsDeliveredOnce) {
  Cluster cluster;
  Process& worker = cluster.StartWorker("patient", {"--service", "sleep=builtin:sleep"});
  ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 20s, "sleep")) << cluster.Logs();
  std::string id = Submit(cluster, "sleep", 3000);
  ASSERT_TRUE(WaitUntil([&] { return Task(cluster, id).value("status", "") == "running"; }, 20s));

  cluster.broker().Signal(SIGSTOP);
  // The worker notices the silence, reconnects (in vain) and finishes the task meanwhile.
  bool held = WaitUntil(
      [&] { return LogHas(worker, "while the broker is unreachable; its result is kept"); }, 30s);
  cluster.broker().Signal(SIGCONT);
  ASSERT_TRUE(held) << worker.Log();
  EXPECT_TRUE(LogHas(worker, "went quiet")) << worker.Log();

  // The gateway, too, lost the broker for a while: ask until it has it back.
  json t;
  WaitUntil(
      [&] {
        t = Task(cluster, id, 2);
        return t.value("status", "") == "completed";
      },
      30s);
  ASSERT_EQ(t.value("status", ""), "completed") << t.dump() << cluster.Logs();
  EXPECT_EQ(t["result"], json({{"slept_ms", 3000}}));
  EXPECT_EQ(t["attempts"], 1) << "the task was not run a second time";
  ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 20s, "sleep")) << cluster.Logs();
}

TEST(WorkerE2eTest, SigtermDrainsTasksInFlightAndLosesNothing) {
  Cluster cluster;
  const std::string runs = cluster.dir() + "/runs.log";
  // Each run appends its payload to a file: a task run twice would show up twice.
  const std::string work =
      "work=exec:sleep 3; p=$(cat); echo \"$p\" >> " + runs + "; printf %s \"$p\"";
  Process& first = cluster.StartWorker(
      "first", {"--service", work, "--slots", "3", "--drain-grace-ms", "60000"});
  ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 20s, "work")) << cluster.Logs();
  std::vector<std::string> ids;
  ids.reserve(8);
  for (int i = 0; i < 8; ++i) ids.push_back(Submit(cluster, "work", "t" + std::to_string(i)));
  ASSERT_TRUE(
      WaitUntil([&] { return cluster.WorkerRecord("first").value("in_flight", 0) == 3; }, 20s))
      << cluster.Logs();

  first.Signal(SIGTERM);
  EXPECT_EQ(first.Wait(30s), 0) << first.Log();
  EXPECT_TRUE(LogHas(first, "drained: nothing left running")) << first.Log();

  cluster.StartWorker("second", {"--service", work, "--slots", "5"});
  std::map<std::string, int> by_worker;
  for (size_t i = 0; i < ids.size(); ++i) {
    json t = Task(cluster, ids[i], 30);
    ASSERT_EQ(t.value("status", ""), "completed") << t.dump() << cluster.Logs();
    // exec results are raw stdout (application/octet-stream): the JSON text of the payload.
    EXPECT_EQ(t["result"], "\"t" + std::to_string(i) + "\"");
    EXPECT_EQ(t["attempts"], 1) << t.dump();
    ++by_worker[t.value("worker_id", "")];
  }
  // The draining worker finished what it held (3, unless the machine was so slow that one ended
  // before the signal) and took nothing after it; the rest went to the second worker.
  EXPECT_GE(by_worker["first"], 3);
  EXPECT_EQ(by_worker["first"] + by_worker["second"], 8);
  std::ifstream in(runs);
  std::multiset<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.insert(line);
  EXPECT_EQ(lines.size(), 8u) << "every task ran exactly once";
  for (int i = 0; i < 8; ++i) EXPECT_EQ(lines.count("\"t" + std::to_string(i) + "\""), 1u) << i;
}

TEST(WorkerE2eTest, ASecondSignalLeavesAtOnceAndTheTaskRunsElsewhere) {
  Cluster cluster;
  Process& quitter = cluster.StartWorker("quitter", {"--service", "sleep=builtin:sleep"});
  ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 20s, "sleep")) << cluster.Logs();
  std::string id = Submit(cluster, "sleep", 600000);
  ASSERT_TRUE(WaitUntil([&] { return Task(cluster, id).value("status", "") == "running"; }, 20s));
  quitter.Signal(SIGTERM);
  ASSERT_TRUE(WaitUntil([&] { return LogHas(quitter, "draining"); }, 10s)) << quitter.Log();
  quitter.Signal(SIGINT);
  EXPECT_EQ(quitter.Wait(10s), 0) << quitter.Log();
  EXPECT_TRUE(LogHas(quitter, "second signal")) << quitter.Log();

  // The broker requeued the abandoned task; another worker (answering at once) takes it.
  cluster.StartWorker("finisher", {"--service", "sleep=builtin:echo"});
  json t = Task(cluster, id, 30);
  ASSERT_EQ(t.value("status", ""), "completed") << t.dump() << cluster.Logs();
  EXPECT_EQ(t["worker_id"], "finisher");
  EXPECT_EQ(t["result"], 600000);
}

// Issue 12: at the default heartbeat (3 s) and liveness (3) a killed worker's task runs elsewhere
// within 15 s.
TEST(WorkerE2eTest, AtTheDefaultsAKilledWorkersTaskRunsElsewhereWithin15Seconds) {
  ClusterOptions options;
  options.heartbeat_ms = 0;
  options.liveness = 0;
  Cluster cluster(options);
  Process& victim = cluster.StartWorker("victim", {"--service", "sleep=builtin:sleep"});
  ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 20s, "sleep")) << cluster.Logs();
  std::string id = Submit(cluster, "sleep", 600000);
  ASSERT_TRUE(WaitUntil([&] { return Task(cluster, id).value("status", "") == "running"; }, 20s));
  cluster.StartWorker("rescuer", {"--service", "sleep=builtin:echo"});
  ASSERT_TRUE(cluster.WaitForLiveWorkers(2, 20s, "sleep")) << cluster.Logs();
  const auto killed_at = std::chrono::steady_clock::now();
  victim.Kill();
  json t = Task(cluster, id, 30);
  const auto took = std::chrono::steady_clock::now() - killed_at;
  ASSERT_EQ(t.value("status", ""), "completed") << t.dump() << cluster.Logs();
  EXPECT_EQ(t["worker_id"], "rescuer");
  EXPECT_LT(took, 15s) << "the task ran elsewhere only after "
                       << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                       << " ms";
}

TEST(WorkerE2eTest, ABackendLeavesTheRegistryWhenDownAndReturnsWhenBack) {
  Cluster cluster;
  auto backend = std::make_unique<Backend>(cluster.dir());
  // The http service comes from a config file, the builtin from a flag.
  const std::string config = cluster.dir() + "/worker.json";
  std::ofstream(config)
      << json{{"services", {{"rag", {{"handler", backend->Url()}, {"health", "/health"}}}}}}.dump();
  Process& worker = cluster.StartWorker(
      "gpu-box", {"--config", config, "--service", "echo=builtin:echo", "--health-interval-ms",
                  "100", "--health-failures", "1", "--slots", "4"});
  ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 20s, "rag")) << cluster.Logs();

  // A synchronous call is replayed against the backend and its answer relayed as it is.
  // The query string travels as written: order, repeated keys and escapes intact.
  HttpResponse call =
      HttpCall("POST", cluster.Url("/api/service/rag/echo/hello?x=1&b=2&x=3&q=a%20b"), "question",
               {"Content-Type: text/plain", "X-Caller: e2e"});
  ASSERT_EQ(call.status, 200) << call.body << cluster.Logs();
  EXPECT_THAT(call.Header("content-type"), HasSubstr("application/json"));
  EXPECT_EQ(call.Header("x-rma-worker-id"), "gpu-box");
  json seen = call.Json();
  EXPECT_EQ(seen["method"], "POST");
  EXPECT_EQ(seen["path"], "/echo/hello");
  EXPECT_EQ(seen["query"], "x=1&b=2&x=3&q=a%20b");
  EXPECT_EQ(seen["body"], "question");
  EXPECT_EQ(seen["headers"]["x-caller"], "e2e");
  // The short route /api/{name}/... is the same call; any method goes through.
  HttpResponse put =
      HttpCall("PUT", cluster.Url("/api/rag/echo/item"), "{}", {"Content-Type: application/json"});
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(put.Json()["method"], "PUT");
  EXPECT_EQ(put.Json()["path"], "/echo/item");
  HttpResponse missing = HttpGet(cluster.Url("/api/rag/status/404"));
  EXPECT_EQ(missing.status, 404) << "a backend 404 is relayed, not turned into a failure";
  EXPECT_EQ(missing.body, "status 404");
  // An asynchronous task POSTs its payload to the backend.
  std::string async_id = Submit(cluster, "rag", {{"q", "async"}});
  json async_task = Task(cluster, async_id, 15);
  ASSERT_EQ(async_task.value("status", ""), "completed") << async_task.dump();
  EXPECT_EQ(async_task["result"], json({{"q", "async"}}));

  // A slow call is in flight when the backend reports itself unhealthy.
  HttpResponse slow;
  std::thread caller(
      [&] { slow = HttpCall("GET", cluster.Url("/api/service/rag/slow/4000"), "", {}, 60000); });
  ASSERT_TRUE(
      WaitUntil([&] { return cluster.WorkerRecord("gpu-box").value("in_flight", 0) == 1; }, 20s));
  ASSERT_EQ(HttpCall("POST", backend->Url("/control/health/down")).status, 200);
  EXPECT_TRUE(WaitUntil([&] { return !HasService(cluster.WorkerRecord("gpu-box"), "rag"); }, 20s))
      << cluster.Logs();
  EXPECT_TRUE(HasService(cluster.WorkerRecord("gpu-box"), "echo"));
  caller.join();
  EXPECT_EQ(slow.status, 200) << "the call in flight was not dropped: " << slow.body;
  EXPECT_EQ(slow.body, "slow 4000");
  HttpResponse unavailable = HttpCall("POST", cluster.Url("/api/service/rag/echo"), "{}");
  EXPECT_EQ(unavailable.status, 503) << unavailable.body;

  ASSERT_EQ(HttpCall("POST", backend->Url("/control/health/up")).status, 200);
  EXPECT_TRUE(WaitUntil([&] { return HasService(cluster.WorkerRecord("gpu-box"), "rag"); }, 20s))
      << cluster.Logs();

  // The backend process dies: withdrawn. It starts again on the same port: advertised again.
  int port = backend->port;
  backend->process.Kill();
  backend->process.Wait(10s);
  EXPECT_TRUE(WaitUntil([&] { return !HasService(cluster.WorkerRecord("gpu-box"), "rag"); }, 20s))
      << cluster.Logs();
  backend = std::make_unique<Backend>(cluster.dir(), port);
  EXPECT_TRUE(WaitUntil([&] { return HasService(cluster.WorkerRecord("gpu-box"), "rag"); }, 20s))
      << cluster.Logs();
  HttpResponse again = HttpCall("GET", cluster.Url("/api/service/rag/echo/back"));
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_TRUE(LogHas(worker, "withdrawn")) << worker.Log();
  EXPECT_TRUE(LogHas(worker, "advertising [rag, echo] (was [echo])")) << worker.Log();
}

TEST(WorkerE2eTest, AWorkerTheBrokerRefusesExitsWithAnError) {
  ClusterOptions options;
  options.broker_args = {"--worker-token", "the-right-one"};
  Cluster cluster(options);
  Process& intruder =
      cluster.StartWorker("intruder", {"--service", "echo=builtin:echo", "--token", "wrong"});
  EXPECT_EQ(intruder.Wait(20s), 3) << intruder.Log();
  EXPECT_TRUE(LogHas(intruder, "the broker refused this worker's token")) << intruder.Log();
  Process& member =
      cluster.StartWorker("member", {"--service", "echo=builtin:echo", "--token", "the-right-one"});
  EXPECT_TRUE(cluster.WaitForLiveWorkers(1, 20s, "echo")) << cluster.Logs();
  EXPECT_TRUE(member.running());
}

}  // namespace
}  // namespace rma::testing
