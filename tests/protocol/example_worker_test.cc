// Keeps docs/protocol.md honest: the Python worker of its section 11 (the code block after the
// `<!-- example-worker` marker) is cut out of the document and run with Debian's python3-zmq and
// python3-msgpack against a real rma-broker and rma-gateway on ports the kernel chose.
// - It registers as the document says (tier from its reported cores and RAM, slots, services),
//   answers tasks submitted through the HTTP API (one at a time, in batches, and a synchronous
//   call) and heartbeats: it stays registered, without re-registering, over several liveness
//   windows.
// - A DRAIN from the admin API makes it say goodbye and exit 0.
// - After a broker restart it registers again and serves.
// - With a token file it logs in (PLAIN) to a broker that requires the token; a broker that refuses
//   its token at the handshake makes it exit with that reason.
// The test skips when the Python modules are missing, unless RMA_REQUIRE_PG is set (scripts/test.sh
// sets it, so there it fails instead).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/cluster.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kPython = "/usr/bin/python3";
constexpr const char* kWorkerId = "py-echo-1";

// The code block that follows the example-worker marker in docs/protocol.md, or "" when the
// document has none.
std::string ExampleWorkerSource() {
  const std::string doc = ReadFile(std::string(RMA_SOURCE_DIR) + "/docs/protocol.md");
  const size_t marker = doc.find("<!-- example-worker");
  if (marker == std::string::npos) return "";
  const std::string open = "```python\n";
  const size_t start = doc.find(open, marker);
  if (start == std::string::npos) return "";
  const size_t body = start + open.size();
  const size_t end = doc.find("\n```", body);
  if (end == std::string::npos) return "";
  return doc.substr(body, end - body + 1);
}

// Whether Debian's Python can import what the example needs.
bool PythonModulesPresent(const std::string& dir) {
  if (access(kPython, X_OK) != 0) return false;
  Process probe = Process::Start(kPython, {"-c", "import zmq, msgpack"}, dir + "/probe.log");
  return probe.Wait(60s) == 0;
}

class ExampleWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("rma-protocol");
    if (!PythonModulesPresent(dir_)) {
      if (std::getenv("RMA_REQUIRE_PG") != nullptr) {
        FAIL() << kPython << " cannot import zmq and msgpack (install python3-zmq python3-msgpack)";
      }
      GTEST_SKIP() << kPython << " cannot import zmq and msgpack";
    }
    const std::string source = ExampleWorkerSource();
    ASSERT_FALSE(source.empty()) << "docs/protocol.md has no example-worker code block";
    script_ = dir_ + "/worker.py";
    std::ofstream(script_) << source;
  }

  // Runs the example against `cluster`'s worker endpoint, logging in with `token` when not empty.
  Process StartWorker(Cluster& cluster, const std::string& token = "") {
    std::vector<std::string> args = {"-u", script_, cluster.workers_endpoint(), kWorkerId};
    if (!token.empty()) {
      const std::string token_file = dir_ + "/token";
      std::ofstream(token_file) << token << "\n";
      args.push_back(token_file);
    }
    return Process::Start(kPython, args,
                          dir_ + "/python-worker-" + std::to_string(++workers_started_) + ".log");
  }

  std::string dir_;
  std::string script_;
  int workers_started_ = 0;
};

std::string Submit(Cluster& cluster, const json& payload) {
  HttpResponse r =
      HttpPostJson(cluster.Url("/api/tasks"), {{"service", "echo"}, {"payload", payload}});
  EXPECT_EQ(r.status, 202) << r.body;
  return r.Json().value("task_id", "");
}

json WaitForTask(Cluster& cluster, const std::string& id) {
  return HttpGet(cluster.Url("/api/tasks/" + id + "?wait=20"), 30000).Json();
}

void ExpectEchoed(Cluster& cluster, const std::string& id, const json& payload) {
  json t = WaitForTask(cluster, id);
  ASSERT_EQ(t.value("status", ""), "completed") << t.dump() << cluster.Logs();
  EXPECT_EQ(t["result"], payload);
  EXPECT_EQ(t.value("content_type", ""), "application/json");
  EXPECT_EQ(t.value("worker_id", ""), kWorkerId);
  EXPECT_EQ(t.value("attempts", 0), 1);
}

TEST_F(ExampleWorkerTest, RegistersAnswersTasksHeartbeatsAndDrains) {
  ClusterOptions options;
  options.heartbeat_ms = 300;
  Cluster cluster(options);
  Process worker = StartWorker(cluster);
  ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 20s, "echo")) << cluster.Logs() << worker.Log();

  // Registration: what READY declared, and the tier section 5.2.1 derives from it.
  json record = cluster.WorkerRecord(kWorkerId);
  ASSERT_TRUE(record.is_object()) << cluster.Logs();
  EXPECT_EQ(record["slots"], 4);
  EXPECT_EQ(record["services"], json::array({"echo"}));
  const json& caps = record["capabilities"];
  EXPECT_GE(caps.value("cpu_cores", 0), 1);
  EXPECT_GT(caps.value("ram_gb", 0.0), 0.0);
  EXPECT_EQ(caps.value("has_gpu", true), false);
  const int tier = caps.value("cpu_cores", 0) >= 4 && caps.value("ram_gb", 0.0) >= 8.0 ? 2 : 3;
  EXPECT_EQ(record["tier"], tier) << record.dump();

  // Tasks one at a time, then a burst the broker batches, each answered with its own payload.
  for (int i = 0; i < 3; ++i) {
    json payload = {{"i", i}, {"text", "one at a time"}};
    ExpectEchoed(cluster, Submit(cluster, payload), payload);
  }
  std::vector<std::pair<std::string, json>> burst;
  for (int i = 0; i < 40; ++i) {
    json payload = {{"burst", i}};
    burst.emplace_back(Submit(cluster, payload), payload);
  }
  for (const auto& [id, payload] : burst) ExpectEchoed(cluster, id, payload);

  // A synchronous service call: the TASK carries the HTTP request; the echo comes back as the
  // answer, with status 200 for the http_status the example leaves out.
  HttpResponse call = HttpCall("POST", cluster.Url("/api/service/echo/some/path?x=1"),
                               R"({"sync":true})", {"Content-Type: application/json"});
  EXPECT_EQ(call.status, 200) << call.body << cluster.Logs();
  EXPECT_EQ(call.body, R"({"sync":true})");
  EXPECT_EQ(call.Header("x-rma-worker-id"), kWorkerId);

  // Heartbeats: while idle, the broker keeps hearing from the worker (last_heartbeat moves on) over
  // several liveness windows, and never loses it or sees it register again.
  const std::string registered_at = cluster.WorkerRecord(kWorkerId).value("registered_at", "");
  const auto window = std::chrono::milliseconds(3 * options.heartbeat_ms * options.liveness);
  const auto started = std::chrono::steady_clock::now();
  std::set<std::string> heard;
  std::string broken;
  bool watched = WaitUntil(
      [&] {
        json w = cluster.WorkerRecord(kWorkerId);
        if (!w.is_object()) return false;
        if (w.value("status", "") == "offline") broken = "went offline: " + w.dump();
        if (w.value("registered_at", "") != registered_at) broken = "registered again: " + w.dump();
        if (!broken.empty()) return true;
        heard.insert(w.value("last_heartbeat", ""));
        return heard.size() >= 6 && std::chrono::steady_clock::now() - started >= window;
      },
      30s);
  ASSERT_TRUE(watched) << "heard " << heard.size() << " times\n" << cluster.Logs() << worker.Log();
  ASSERT_TRUE(broken.empty()) << broken << "\n" << cluster.Logs() << worker.Log();

  // DRAIN from an admin: the example says goodbye and exits 0; the broker marks it offline.
  HttpResponse drained =
      HttpCall("POST", cluster.Url(std::string("/api/admin/workers/") + kWorkerId + "/drain"), "",
               {"Content-Type: application/json"});
  ASSERT_EQ(drained.status, 200) << drained.body;
  EXPECT_EQ(worker.Wait(20s), 0) << worker.Log();
  EXPECT_TRUE(WaitUntil(
      [&] { return cluster.WorkerRecord(kWorkerId).value("status", "") == "offline"; }, 20s))
      << cluster.Logs();
}

TEST_F(ExampleWorkerTest, RegistersAgainAfterABrokerRestart) {
  Cluster cluster;
  Process worker = StartWorker(cluster);
  ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 20s, "echo")) << cluster.Logs() << worker.Log();
  json before = {{"before", "restart"}};
  ExpectEchoed(cluster, Submit(cluster, before), before);

  cluster.RestartBroker(/*kill=*/true);
  ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 30s, "echo")) << cluster.Logs() << worker.Log();
  EXPECT_TRUE(worker.running()) << worker.Log();
  json after = {{"after", "restart"}};
  ExpectEchoed(cluster, Submit(cluster, after), after);
  worker.Kill();
}

TEST_F(ExampleWorkerTest, LogsInWithTheWorkerToken) {
  ClusterOptions options;
  options.broker_args = {"--worker-token", "the-pool-token"};
  Cluster cluster(options);
  Process worker = StartWorker(cluster, "the-pool-token");
  ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 20s, "echo")) << cluster.Logs() << worker.Log();
  json payload = {{"with", "token"}};
  ExpectEchoed(cluster, Submit(cluster, payload), payload);
  worker.Kill();
}

TEST_F(ExampleWorkerTest, ExitsWithTheReasonWhenTheBrokerRefusesIt) {
  ClusterOptions options;
  options.gateway = false;
  options.broker_args = {"--worker-token", "the-pool-token"};
  Cluster cluster(options);
  Process worker = StartWorker(cluster, "a-token-the-broker-does-not-know");
  std::optional<int> code = worker.Wait(20s);
  ASSERT_TRUE(code.has_value()) << "the refused example kept running\n" << worker.Log();
  EXPECT_EQ(*code, 1) << worker.Log();
  EXPECT_NE(worker.Log().find("the broker refused this worker's token"), std::string::npos)
      << worker.Log();
}

}  // namespace
}  // namespace rma::testing
