// The dashboard in a real browser (ctest label "browser"): starts a pool — broker with short
// heartbeats, a short --offline-retention-ms and --allow-simulated, a gateway, and simulated
// workers of every tier — gives it work with known outcomes (completed tasks spread over the
// workers, one failure, one task waiting for a service nobody provides), then runs
// tests/browser/dashboard.test.mjs under node, which drives Debian's Chromium through
// playwright-core and kills a worker, the broker and the gateway by pid as its checks require.
// Screenshots go to RMA_BROWSER_ARTIFACTS_DIR (printed).
//
// A second case checks the contributors board on a pool with accounts (needs PostgreSQL, like
// tests/support/account_pool.h, and skips without it): enrolled workers of two accounts run tasks,
// then tests/browser/accounts_board.test.mjs compares the board with GET /api/leaderboard and works
// its pickers. Its screenshots go to the accounts-board folder under the same directory.
//
// A third case drives the operator console (issue 19) on such a pool: known work (completed echo
// tasks, dead tasks of a failing service, a long running task, a queue nobody serves) on four
// enrolled workers, then tests/browser/console.test.mjs visits every page, performs every action
// and checks its effect through the API. Its screenshots go to the console folder.
#include <gtest/gtest.h>

#include <iostream>

#include "tests/support/account_pool.h"
#include "tests/support/cluster.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kOfflineRetentionMs = 4000;
constexpr const char* kAdminKey = "test-admin-key-0123456789";

// Submits `count` tasks to `service` and waits for each to end; returns how many completed.
int RunTasks(Cluster& cluster, const std::string& service, int count) {
  std::vector<std::string> ids;
  for (int i = 0; i < count; ++i) {
    HttpResponse r =
        HttpPostJson(cluster.Url("/api/tasks"),
                     {{"service", service}, {"payload", {{"n", i}}}, {"max_attempts", 1}});
    EXPECT_EQ(r.status, 202) << r.body;
    ids.push_back(r.Json().value("task_id", ""));
  }
  int completed = 0;
  for (const std::string& id : ids) {
    HttpResponse r = HttpGet(cluster.Url("/api/tasks/" + id + "?wait=10"), 15000);
    EXPECT_EQ(r.status, 200) << r.body;
    completed += r.Json().value("status", "") == "completed" ? 1 : 0;
  }
  return completed;
}

std::string Chromium() {
  const char* env = std::getenv("RMA_CHROMIUM");
  return env != nullptr && *env != '\0' ? env : "/usr/bin/chromium";
}

TEST(DashboardBrowserTest, PageShowsThePoolLiveFollowsAWorkerDeathAndReportsOutages) {
  ClusterOptions options;
  // Slower than the Cluster's default 200 ms, so a busy CI machine does not make workers flap to
  // "late" while the page and the API are compared; a killed worker is still seen at once (its
  // connection drops).
  options.heartbeat_ms = 500;
  options.broker_args = {"--allow-simulated", "--offline-retention-ms",
                         std::to_string(kOfflineRetentionMs)};
  Cluster cluster(options);
  cluster.StartWorker("gpu-1", {"--simulate", "gpu", "--service", "vllm=builtin:echo", "--service",
                                "embeddings=builtin:echo", "--slots", "4"});
  cluster.StartWorker("cpu-1", {"--simulate", "cpu", "--service", "ocr=builtin:echo", "--service",
                                "ner=builtin:fail", "--slots", "2"});
  cluster.StartWorker("storage-1", {"--simulate", "storage", "--service", "chromadb=builtin:echo"});
  cluster.StartWorker("storage-2", {"--simulate", "storage", "--service", "chromadb=builtin:echo"});
  ASSERT_TRUE(cluster.WaitForLiveWorkers(4, 20s)) << cluster.Logs();

  // Different amounts of work per worker, so the contributors board has an order to show.
  int completed =
      RunTasks(cluster, "vllm", 6) + RunTasks(cluster, "ocr", 3) + RunTasks(cluster, "chromadb", 2);
  ASSERT_EQ(completed, 11) << cluster.Logs();
  ASSERT_EQ(RunTasks(cluster, "ner", 1), 0) << "builtin:fail should fail";
  // Nobody provides rag: the task waits in its queue and a call would get 503.
  ASSERT_EQ(HttpPostJson(cluster.Url("/api/tasks"), {{"service", "rag"}, {"payload", "q"}}).status,
            202);

  // A second gateway on the same broker that requires an admin key, for the page's key dialog.
  const std::string keyed_port_file = cluster.dir() + "/keyed-gateway.port";
  Process keyed = Process::Start("rma-gateway",
                                 {"--broker", cluster.clients_endpoint(), "--listen", "127.0.0.1:0",
                                  "--port-file", keyed_port_file, "--admin-key", kAdminKey},
                                 cluster.dir() + "/keyed-gateway.log");
  const std::string keyed_port = WaitForFile(keyed_port_file, 20s);
  ASSERT_FALSE(keyed_port.empty()) << keyed.Log();
  const std::string keyed_url = "http://127.0.0.1:" + std::to_string(std::stoi(keyed_port));
  ASSERT_TRUE(WaitUntil([&] { return HttpGet(keyed_url + "/health", 2000).status == 200; }, 20s))
      << keyed.Log();
  ASSERT_EQ(HttpGet(keyed_url + "/api/admin/stats").status, 401) << "the keyed gateway refuses";

  const std::string artifacts = RMA_BROWSER_ARTIFACTS_DIR;
  json config = {{"url", cluster.Url("")},
                 {"keyed_url", keyed_url},
                 {"admin_key", kAdminKey},
                 {"chromium", Chromium()},
                 {"artifacts", artifacts},
                 {"victim", {{"id", "storage-2"}, {"pid", cluster.worker("storage-2").pid()}}},
                 {"broker_pid", cluster.broker().pid()},
                 {"gateway_pid", cluster.gateway().pid()},
                 {"offline_retention_ms", kOfflineRetentionMs},
                 {"expect",
                  {{"workers", 4},
                   {"by_tier", {{"1", 1}, {"2", 1}, {"3", 2}}},
                   {"completed", 11},
                   {"failed", 1},
                   {"queue_depth", 1},
                   {"unavailable_service", "rag"},
                   {"top_contributor", "gpu-1"},
                   {"chromadb_workers", {"storage-1", "storage-2"}}}}};

  std::cout << "dashboard screenshots: " << artifacts << std::endl;
  Process node = Process::Start(RMA_NODE_EXECUTABLE, {RMA_BROWSER_TEST_SCRIPT, config.dump()},
                                cluster.dir() + "/browser-test.log");
  std::optional<int> exit_code = node.Wait(150s);
  if (!exit_code) node.Kill();
  std::string output = node.Log();
  std::cout << output << std::endl;
  EXPECT_EQ(exit_code, std::optional<int>(0)) << output << "\n" << cluster.Logs();
}

// The board needs accounts, so a pool with a database: alice lends two machines (w1, w2: the only
// providers of "resize"), carol one (w3: the only provider of "slow"); the admin's tasks pay them.
class DashboardAccountsBoardTest : public AccountPool {};

TEST_F(DashboardAccountsBoardTest, BoardRanksAccountsWithTheirMachinesAsTheLeaderboardSays) {
  const std::string alice = AccountWithKey("alice", {"client", "contributor"});
  const std::string carol = AccountWithKey("carol", {"client", "contributor"});
  StartWorker("w1", {"--enrol", EnrolToken("alice", alice), "--service", "resize=builtin:sleep"});
  StartWorker("w2", {"--enrol", EnrolToken("alice", alice), "--service", "resize=builtin:sleep"});
  StartWorker("w3", {"--enrol", EnrolToken("carol", carol), "--service", "slow=builtin:sleep"});
  for (const char* w : {"w1", "w2", "w3"}) {
    ASSERT_TRUE(WaitUntil([&] { return Live(w); }, 30s)) << w << "\n" << cluster_->Logs();
  }
  const std::vector<std::string> headers = {"X-API-Key: " + admin_};
  ASSERT_TRUE(WaitForService(*cluster_, "resize", headers)) << cluster_->Logs();
  ASSERT_TRUE(WaitForService(*cluster_, "slow", headers)) << cluster_->Logs();

  // builtin:sleep sleeps the payload's milliseconds: some compute time to earn credits for.
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(Submit(admin_, "resize", 150));
  for (int i = 0; i < 2; ++i) ids.push_back(Submit(admin_, "slow", 150));
  for (const std::string& id : ids) {
    ASSERT_EQ(WaitTask(admin_, id).value("status", ""), "completed") << id;
  }
  // The credits are written in the broker's group commit after the completions: wait for them.
  auto tasks_of = [&](const nlohmann::json& board, const std::string& account) {
    for (const nlohmann::json& a : board["accounts"]) {
      if (a.value("account", "") == account) return a.value("tasks", 0);
    }
    return 0;
  };
  ASSERT_TRUE(WaitUntil(
      [&] {
        nlohmann::json board = Call("GET", "/api/leaderboard?period=all", "").Json();
        return board.is_object() && tasks_of(board, "alice") == 4 && tasks_of(board, "carol") == 2;
      },
      20s))
      << Call("GET", "/api/leaderboard?period=all", "").body;

  const std::string artifacts = std::string(RMA_BROWSER_ARTIFACTS_DIR) + "/accounts-board";
  json config = {{"url", cluster_->Url("")},
                 {"admin_key", admin_},
                 {"chromium", Chromium()},
                 {"artifacts", artifacts},
                 {"expect",
                  {{"accounts",
                    {{"alice", {{"tasks", 4}, {"workers", {"w1", "w2"}}}},
                     {"carol", {{"tasks", 2}, {"workers", {"w3"}}}}}}}}};
  std::cout << "accounts board screenshots: " << artifacts << std::endl;
  Process node =
      Process::Start(RMA_NODE_EXECUTABLE, {RMA_ACCOUNTS_BOARD_TEST_SCRIPT, config.dump()},
                     cluster_->dir() + "/accounts-board-test.log");
  std::optional<int> exit_code = node.Wait(120s);
  if (!exit_code) node.Kill();
  std::string output = node.Log();
  std::cout << output << std::endl;
  EXPECT_EQ(exit_code, std::optional<int>(0)) << output;
}

// The console's pool: alice lends w1..w4 (echo and sleep; w1 also the failing "flaky"); her key
// submits echo tasks that complete, flaky tasks that die on their one attempt, a long sleep that is
// running when the script starts, and tasks of "orphan", which nobody provides, waiting in a queue.
class DashboardConsoleTest : public AccountPool {};

TEST_F(DashboardConsoleTest, EveryPageShowsTheApiAndEveryActionTakesEffect) {
  const std::string alice = AccountWithKey("alice", {"client", "contributor"});
  const std::vector<std::string> names = {"w1", "w2", "w3", "w4"};
  for (const std::string& w : names) {
    std::vector<std::string> extra = {"--enrol", EnrolToken("alice", alice), "--slots", "2"};
    if (w == "w1") {
      extra.insert(extra.end(),
                   {"--service", "flaky=builtin:fail", "--service", "brittle=builtin:fail"});
    }
    StartWorker(w, extra);
  }
  for (const std::string& w : names) {
    ASSERT_TRUE(WaitUntil([&] { return Live(w); }, 30s)) << w << "\n" << cluster_->Logs();
  }
  const std::vector<std::string> headers = {"X-API-Key: " + admin_};
  ASSERT_TRUE(WaitForService(*cluster_, "flaky", headers)) << cluster_->Logs();
  ASSERT_TRUE(WaitForService(*cluster_, "brittle", headers)) << cluster_->Logs();

  json completed = json::array();
  json payloads = json::object();
  for (int i = 0; i < 5; ++i) {
    json payload = {{"n", i}, {"text", "hello"}, {"nested", {{"list", {1, 2, 3}}}}};
    const std::string id = Submit(alice, "echo", payload);
    ASSERT_EQ(WaitTask(alice, id).value("status", ""), "completed") << id;
    completed.push_back(id);
    payloads[id] = payload;
  }
  // Dead letters of two services: "flaky" is retried, "brittle" discarded.
  json dead = json::array();
  json brittle = json::array();
  for (int i = 0; i < 5; ++i) {
    const std::string service = i < 3 ? "flaky" : "brittle";
    HttpResponse r = Call("POST", "/api/tasks", alice,
                          {{"service", service}, {"payload", {{"n", i}}}, {"max_attempts", 1}});
    ASSERT_EQ(r.status, 202) << r.body;
    const std::string id = r.Json().value("task_id", "");
    ASSERT_EQ(WaitTask(alice, id).value("status", ""), "dead") << id;
    (i < 3 ? dead : brittle).push_back(id);
  }
  HttpResponse long_task = Call("POST", "/api/tasks", alice,
                                {{"service", "sleep"}, {"payload", 600000}, {"timeout_s", 900}});
  ASSERT_EQ(long_task.status, 202) << long_task.body;
  const std::string running = long_task.Json().value("task_id", "");
  json running_task;
  ASSERT_TRUE(WaitUntil(
      [&] {
        running_task = Call("GET", "/api/tasks/" + running, alice).Json();
        return running_task.value("status", "") == "running";
      },
      20s))
      << running_task.dump();
  for (int i = 0; i < 3; ++i) ASSERT_FALSE(Submit(alice, "orphan", i).empty());

  // The worker that ran the first task is the one whose page is compared; the others are drained
  // (and capped) and revoked, never the one running the long task.
  const std::string main_worker =
      Call("GET", "/api/tasks/" + completed[0].get<std::string>(), alice)
          .Json()
          .value("worker_id", "");
  const std::string busy = running_task.value("worker_id", "");
  std::vector<std::string> spare;
  for (const std::string& w : names) {
    if (w != main_worker && w != busy) spare.push_back(w);
  }
  ASSERT_GE(spare.size(), 2u) << main_worker << " " << busy;

  const std::string artifacts = std::string(RMA_BROWSER_ARTIFACTS_DIR) + "/console";
  json config = {{"url", cluster_->Url("")},
                 {"admin_key", admin_},
                 {"chromium", Chromium()},
                 {"artifacts", artifacts},
                 {"account", "alice"},
                 {"tasks",
                  {{"completed", completed},
                   {"payloads", payloads},
                   {"dead", dead},
                   {"brittle", brittle},
                   {"running", running},
                   {"orphan_service", "orphan"}}},
                 {"workers", {{"main", main_worker}, {"drain", spare[0]}, {"revoke", spare[1]}}}};
  std::cout << "console screenshots: " << artifacts << std::endl;
  Process node = Process::Start(RMA_NODE_EXECUTABLE, {RMA_CONSOLE_TEST_SCRIPT, config.dump()},
                                cluster_->dir() + "/console-test.log");
  std::optional<int> exit_code = node.Wait(360s);
  if (!exit_code) node.Kill();
  std::string output = node.Log();
  std::cout << output << std::endl;
  EXPECT_EQ(exit_code, std::optional<int>(0)) << output;
}

}  // namespace
}  // namespace rma::testing
