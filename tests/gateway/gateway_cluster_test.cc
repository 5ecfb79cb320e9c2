// Several gateways on one broker, a gateway killed and replaced without losing a task, and rmactl
// against a live pool (tables, --json, environment, exit codes).
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <set>
#include <thread>

#include "tests/support/cluster.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// State-changing routes of the JSON API take JSON only, bodyless ones included.
const std::string kJson = "Content-Type: application/json";

// An extra gateway process on the cluster's broker.
struct ExtraGateway {
  Process process;
  int port = 0;
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port) + path;
  }
};

ExtraGateway StartGateway(Cluster& cluster, const std::string& name,
                          const std::vector<std::string>& extra = {}) {
  ExtraGateway g;
  const std::string port_file = cluster.dir() + "/" + name + ".port";
  std::vector<std::string> args = {"--broker",    cluster.clients_endpoint(),
                                   "--listen",    "127.0.0.1:0",
                                   "--port-file", port_file,
                                   "--log-level", "warn"};
  args.insert(args.end(), extra.begin(), extra.end());
  g.process = Process::Start("rma-gateway", args, cluster.dir() + "/" + name + ".log");
  std::string port = WaitForFile(port_file, 20s);
  EXPECT_FALSE(port.empty()) << g.process.Log();
  g.port = port.empty() ? 0 : std::stoi(port);
  EXPECT_TRUE(WaitUntil([&] { return HttpGet(g.Url("/health"), 2000).status == 200; }, 20s));
  return g;
}

std::string Submit(const std::string& url, const json& body) {
  HttpResponse r = HttpPostJson(url, body);
  EXPECT_EQ(r.status, 202) << r.body;
  return r.Json().value("task_id", "");
}

TEST(GatewayClusterTest, SeveralGatewaysServeOneBroker) {
  Cluster cluster;
  cluster.StartWorker("w", {"--service", "echo=builtin:echo", "--slots", "4"});
  ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 20s, "echo")) << cluster.Logs();
  ExtraGateway b = StartGateway(cluster, "gateway-b");
  ExtraGateway c = StartGateway(cluster, "gateway-c");
  const std::vector<std::string> urls = {cluster.Url(""), b.Url(""), c.Url("")};

  // Submitted through one, read through another.
  for (size_t i = 0; i < urls.size(); ++i) {
    const std::string id = Submit(urls[i] + "/api/tasks", {{"service", "echo"}, {"payload", i}});
    const std::string& reader = urls[(i + 1) % urls.size()];
    HttpResponse t = HttpGet(reader + "/api/tasks/" + (id + "?wait=10"));
    ASSERT_EQ(t.status, 200) << t.body;
    EXPECT_EQ(t.Json()["status"], "completed");
    EXPECT_EQ(t.Json()["result"], i);
  }
  // Synchronous calls through all three at once, each answered with its own body.
  std::vector<std::future<bool>> calls;
  calls.reserve(60);
  for (int i = 0; i < 60; ++i) {
    calls.push_back(std::async(std::launch::async, [&, i] {
      const std::string body = "call-" + std::to_string(i);
      HttpResponse r = HttpCall("POST", urls[i % 3] + "/api/service/echo", body);
      return r.status == 200 && r.body == body;
    }));
  }
  for (auto& f : calls) EXPECT_TRUE(f.get());
  // A task cancelled through a gateway other than the one that took it.
  const std::string queued = Submit(urls[0] + "/api/tasks", {{"service", "nobody"}});
  HttpResponse cancelled = HttpCall("DELETE", urls[2] + "/api/tasks/" + queued, "", {kJson});
  EXPECT_EQ(cancelled.status, 200) << cancelled.body;
  EXPECT_EQ(HttpGet(urls[1] + "/api/tasks/" + queued).Json()["status"], "cancelled");
}

TEST(GatewayClusterTest, AGatewayKilledAndReplacedLosesNoTask) {
  Cluster cluster;
  cluster.StartWorker("w", {"--service", "sleep=builtin:sleep", "--slots", "2"});
  ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 20s, "sleep")) << cluster.Logs();
  ExtraGateway first = StartGateway(cluster, "gateway-1");

  // Submissions keep going while the gateway is killed; every one that got 202 must complete.
  std::atomic<bool> stop{false};
  std::vector<std::string> accepted;
  std::thread submitter([&] {
    while (!stop.load()) {
      HttpResponse r =
          HttpPostJson(first.Url("/api/tasks"), {{"service", "sleep"}, {"payload", 20}}, 5000);
      if (r.status == 202) accepted.push_back(r.Json()["task_id"]);
      if (r.status == 0) break;  // the gateway is gone
    }
  });
  EXPECT_TRUE(WaitUntil(
      [&] {
        json q = HttpGet(cluster.Url("/api/admin/queues")).Json();
        return q.value("total", 0) >= 10;
      },
      20s));
  first.process.Kill();
  ASSERT_TRUE(first.process.Wait(10s));
  stop.store(true);
  submitter.join();
  ASSERT_GE(accepted.size(), 10u);

  ExtraGateway second = StartGateway(cluster, "gateway-2");
  std::set<std::string> unique(accepted.begin(), accepted.end());
  EXPECT_EQ(unique.size(), accepted.size());
  for (const std::string& id : accepted) {
    HttpResponse t = HttpGet(second.Url("/api/tasks/" + id + "?wait=60"), 70000);
    ASSERT_EQ(t.status, 200) << id << " " << t.body;
    EXPECT_EQ(t.Json()["status"], "completed") << t.body;
  }
}

// ---- rmactl ---------------------------------------------------------------------------------

TEST(RmactlTest, SubmitStatusCancelAndTables) {
  ClusterOptions o;
  o.gateway_args = {"--admin-key", "admin-key-1", "--client-key", "client-key-1"};
  Cluster cluster(o);
  cluster.StartWorker("w", {"--service", "echo=builtin:echo", "--service", "fail=builtin:fail"});
  const std::map<std::string, std::string> env = {{"RMA_GATEWAY", cluster.Url("")},
                                                  {"RMA_API_KEY", "admin-key-1"}};
  ASSERT_TRUE(WaitUntil(
      [&] { return Rmactl(cluster, {"services"}, env).output.find("echo") != std::string::npos; },
      20s));

  // submit: the id; --wait: the result; --json: the gateway's JSON.
  CliResult submitted = Rmactl(cluster, {"submit", "echo", "{\"n\": 7}"}, env);
  EXPECT_EQ(submitted.exit_code, 0) << submitted.output;
  EXPECT_NE(submitted.output.find("queued"), std::string::npos) << submitted.output;
  CliResult waited = Rmactl(cluster, {"submit", "echo", "{\"n\": 8}", "--wait"}, env);
  EXPECT_EQ(waited.exit_code, 0) << waited.output;
  EXPECT_NE(waited.output.find("completed"), std::string::npos) << waited.output;
  EXPECT_NE(waited.output.find("\"n\": 8"), std::string::npos) << waited.output;
  // Text that is not JSON is a usage error unless --raw sends it as a string.
  EXPECT_EQ(Rmactl(cluster, {"submit", "echo", "plain text"}, env).exit_code, 2);
  CliResult as_json =
      Rmactl(cluster, {"--json", "submit", "echo", "plain text", "--raw", "--wait"}, env);
  ASSERT_EQ(as_json.exit_code, 0) << as_json.output;
  json task = json::parse(as_json.output, nullptr, false);
  ASSERT_TRUE(task.is_object()) << as_json.output;
  EXPECT_EQ(task["result"], "plain text");
  const std::string id = task["task_id"];

  // Payload from stdin.
  Process piped = Process::Start(
      "/bin/sh",
      {"-c", "echo '{\"from\": \"stdin\"}' | " + BinDir() + "/rmactl --json submit echo - --wait"},
      cluster.dir() + "/piped.log", env);
  ASSERT_EQ(piped.Wait(60s), 0) << piped.Log();
  EXPECT_EQ(json::parse(piped.Log(), nullptr, false)["result"], json({{"from", "stdin"}}))
      << piped.Log();

  CliResult status = Rmactl(cluster, {"status", id}, env);
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find(id), std::string::npos);
  EXPECT_NE(status.output.find("completed"), std::string::npos);

  // Cancel a queued task; cancelling a completed one is refused (exit 1).
  CliResult queued = Rmactl(cluster, {"--json", "submit", "nobody", "1"}, env);
  const std::string queued_id = json::parse(queued.output, nullptr, false).value("task_id", "");
  ASSERT_FALSE(queued_id.empty()) << queued.output;
  CliResult cancel = Rmactl(cluster, {"cancel", queued_id}, env);
  EXPECT_EQ(cancel.exit_code, 0) << cancel.output;
  EXPECT_NE(cancel.output.find("cancelled"), std::string::npos) << cancel.output;
  CliResult too_late = Rmactl(cluster, {"cancel", id}, env);
  EXPECT_EQ(too_late.exit_code, 1) << too_late.output;
  EXPECT_NE(too_late.output.find("failed_precondition"), std::string::npos) << too_late.output;

  // A task that ends without a result: exit code 4 with --wait.
  CliResult dead =
      Rmactl(cluster, {"submit", "fail", "\"x\"", "--wait", "--max-attempts", "1"}, env);
  EXPECT_EQ(dead.exit_code, 4) << dead.output;
  EXPECT_NE(dead.output.find("dead"), std::string::npos) << dead.output;

  // Tables.
  CliResult workers = Rmactl(cluster, {"workers"}, env);
  EXPECT_EQ(workers.exit_code, 0) << workers.output;
  EXPECT_NE(workers.output.find("WORKER"), std::string::npos) << workers.output;
  EXPECT_NE(workers.output.find("echo"), std::string::npos) << workers.output;
  CliResult services = Rmactl(cluster, {"services"}, env);
  EXPECT_NE(services.output.find("SERVICE"), std::string::npos) << services.output;
  CliResult stats = Rmactl(cluster, {"stats"}, env);
  EXPECT_EQ(stats.exit_code, 0) << stats.output;
  EXPECT_NE(stats.output.find("completed"), std::string::npos) << stats.output;
  CliResult queues = Rmactl(cluster, {"queues"}, env);
  EXPECT_EQ(queues.exit_code, 0) << queues.output;
  EXPECT_NE(queues.output.find("nobody"), std::string::npos) << queues.output;
  CliResult workers_json = Rmactl(cluster, {"workers", "--json"}, env);
  EXPECT_TRUE(json::parse(workers_json.output, nullptr, false).contains("workers"))
      << workers_json.output;

  // Flags override the environment; errors have their exit codes.
  CliResult client_key = Rmactl(cluster, {"--key", "client-key-1", "workers"}, env);
  EXPECT_EQ(client_key.exit_code, 1) << client_key.output;
  EXPECT_NE(client_key.output.find("admin key"), std::string::npos) << client_key.output;
  CliResult no_key = Rmactl(cluster, {"--gateway", cluster.Url(""), "status", id});
  EXPECT_EQ(no_key.exit_code, 1) << no_key.output;
  EXPECT_EQ(Rmactl(cluster, {"status", "999999"}, env).exit_code, 1);
  EXPECT_EQ(Rmactl(cluster, {"--gateway", "http://127.0.0.1:1", "workers"}).exit_code, 3);
  EXPECT_EQ(Rmactl(cluster, {"frobnicate"}, env).exit_code, 2);
  EXPECT_EQ(Rmactl(cluster, {"submit"}, env).exit_code, 2);
  EXPECT_EQ(Rmactl(cluster, {"--help"}).exit_code, 0);
}

}  // namespace
}  // namespace rma::testing
