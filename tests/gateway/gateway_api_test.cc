// End to end through real HTTP: every route of the gateway and every error it documents — task
// life cycle, synchronous calls that carry method/path/query/headers/body both ways, 503 with the
// available services, 504, admin queries and actions, /metrics checked by promtool, API keys, rate
// limits, CORS, body and header size limits, malformed input, keep-alive, long-polls that outlive
// the header timeout, and the OpenAPI document against the routes really served.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <future>
#include <set>

#include "tests/gateway/raw_http.h"
#include "tests/support/cluster.h"
#include "tests/support/zmq_peers.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// State-changing routes of the JSON API take JSON only, bodyless ones included.
const std::string kJson = "Content-Type: application/json";

// ---- Helpers --------------------------------------------------------------------------------

HttpResponse Post(const Cluster& c, const std::string& path, const json& body,
                  std::vector<std::string> headers = {}) {
  headers.push_back("Content-Type: application/json");
  return HttpCall("POST", c.Url(path), body.dump(), headers);
}

// Submits an async task and returns its id.
std::string Submit(const Cluster& c, const json& body, std::vector<std::string> headers = {}) {
  HttpResponse r = Post(c, "/api/tasks", body, std::move(headers));
  EXPECT_EQ(r.status, 202) << r.body;
  return r.Json().value("task_id", "");
}

// Long-polls a task until it ends (or `seconds` pass) and returns it.
json WaitForTask(const Cluster& c, const std::string& id, int seconds = 15,
                 const std::vector<std::string>& headers = {}) {
  HttpResponse r = HttpCall("GET", c.Url("/api/tasks/" + id + "?wait=" + std::to_string(seconds)),
                            "", headers, (seconds + 10) * 1000L);
  EXPECT_EQ(r.status, 200) << r.body;
  return r.Json();
}

void ExpectError(const HttpResponse& r, long status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.body;
  EXPECT_EQ(r.Header("content-type"), "application/json") << r.body;
  json j = r.Json();
  ASSERT_TRUE(j.is_object()) << r.body;
  EXPECT_EQ(j.value("code", ""), code) << r.body;
  EXPECT_TRUE(j["error"].is_string() && !j["error"].get<std::string>().empty()) << r.body;
}

// ---- Tasks -----------------------------------------------------------------------------------

TEST(GatewayApiTest, TaskLifeCycleSubmitGetWaitListCancel) {
  Cluster cluster;
  cluster.StartWorker(
      "w", {"--service", "echo=builtin:echo", "--service", "sleep=builtin:sleep", "--slots", "4"});
  ASSERT_TRUE(WaitForService(cluster, "echo")) << cluster.Logs();

  HttpResponse accepted =
      Post(cluster, "/api/tasks", {{"service", "echo"}, {"payload", {{"x", 1}}}});
  ASSERT_EQ(accepted.status, 202) << accepted.body;
  const std::string id = accepted.Json()["task_id"];
  EXPECT_EQ(accepted.Header("location"), "/api/tasks/" + id);
  EXPECT_EQ(accepted.Json()["status"], "queued");

  json done = WaitForTask(cluster, id);
  EXPECT_EQ(done["status"], "completed");
  EXPECT_EQ(done["result"], json({{"x", 1}}));
  EXPECT_EQ(done["service"], "echo");
  EXPECT_EQ(done["attempts"], 1);
  EXPECT_EQ(done["worker_id"], "w");
  EXPECT_TRUE(done["created_at"].is_string());
  EXPECT_TRUE(done["completed_at"].is_string());
  EXPECT_TRUE(done["error"].is_null());

  // A plain GET answers at once with the task as it stands.
  HttpResponse now = HttpGet(cluster.Url("/api/tasks/" + id));
  EXPECT_EQ(now.status, 200);
  EXPECT_EQ(now.Json()["status"], "completed");

  // Idempotency: a second submit with the same key returns the first task.
  const std::string first =
      Submit(cluster, {{"service", "echo"}, {"payload", 1}, {"idempotency_key", "order-17"}});
  HttpResponse again = Post(cluster, "/api/tasks",
                            {{"service", "echo"}, {"payload", 2}, {"idempotency_key", "order-17"}});
  EXPECT_EQ(again.status, 202);
  EXPECT_EQ(again.Json()["task_id"], first);
  EXPECT_EQ(again.Json()["duplicate"], true);

  // A task nobody provides waits for a provider and can be cancelled; cancelling twice is 409.
  HttpResponse waiting = Post(cluster, "/api/tasks", {{"service", "nobody"}, {"payload", 1}});
  ASSERT_EQ(waiting.status, 202);
  EXPECT_EQ(waiting.Json()["waiting_for_provider"], true);
  const std::string waiting_id = waiting.Json()["task_id"];
  // Queued: its place is known (the next to start), when it starts is not (nothing provides it).
  HttpResponse queued = HttpGet(cluster.Url("/api/tasks/" + waiting_id));
  EXPECT_EQ(queued.Json()["queue_position"], 1) << queued.body;
  EXPECT_FALSE(queued.Json().contains("estimated_start_s")) << queued.body;
  EXPECT_FALSE(now.Json().contains("queue_position")) << now.body;  // a completed task has none
  HttpResponse cancelled = HttpCall("DELETE", cluster.Url("/api/tasks/" + waiting_id), "", {kJson});
  EXPECT_EQ(cancelled.status, 200) << cancelled.body;
  EXPECT_EQ(cancelled.Json()["status"], "cancelled");
  // Cancelling is idempotent; a task that already ended cannot be cancelled.
  EXPECT_EQ(HttpCall("DELETE", cluster.Url("/api/tasks/" + waiting_id), "", {kJson}).status, 200);
  HttpResponse too_late = HttpCall("DELETE", cluster.Url("/api/tasks/" + id), "", {kJson});
  ExpectError(too_late, 409, "failed_precondition");
  EXPECT_EQ(too_late.Json()["task"]["status"], "completed");

  // Listing, with filters and a limit.
  for (int i = 0; i < 3; ++i) Submit(cluster, {{"service", "sleep"}, {"payload", 1}});
  HttpResponse list = HttpGet(cluster.Url("/api/tasks?service=sleep&limit=2"));
  ASSERT_EQ(list.status, 200) << list.body;
  const json listed = list.Json();
  EXPECT_EQ(listed["count"], 2);
  for (const json& t : listed["tasks"]) EXPECT_EQ(t["service"], "sleep");
  HttpResponse by_status = HttpGet(cluster.Url("/api/tasks?status=cancelled"));
  ASSERT_EQ(by_status.status, 200);
  ASSERT_EQ(by_status.Json()["count"], 1);
  EXPECT_EQ(by_status.Json()["tasks"][0]["task_id"], waiting_id);
  EXPECT_EQ(HttpGet(cluster.Url("/api/tasks?service=unknown-service")).Json()["count"], 0);
}

TEST(GatewayApiTest, BadSubmissionsAndUnknownTasksGetClearErrors) {
  Cluster cluster;
  auto post_raw = [&](const std::string& body) {
    return HttpCall("POST", cluster.Url("/api/tasks"), body, {"Content-Type: application/json"});
  };
  ExpectError(post_raw("{\"service\": \"echo\", "), 400, "invalid_argument");
  ExpectError(post_raw("not json"), 400, "invalid_argument");
  ExpectError(post_raw(""), 400, "invalid_argument");
  ExpectError(post_raw("[1, 2]"), 400, "invalid_argument");
  ExpectError(post_raw(std::string(5000, '[') + std::string(5000, ']')), 400, "invalid_argument");
  for (const json& bad :
       {json{{"payload", 1}}, json{{"service", 5}}, json{{"service", "a b"}},
        json{{"service", "x"}, {"priority", "high"}}, json{{"service", "x"}, {"priority", 11}},
        json{{"service", "x"}, {"max_attempts", 0}}, json{{"service", "x"}, {"timeout_s", "soon"}},
        json{{"service", "x"}, {"min_tier", 9}}, json{{"service", "x"}, {"idempotency_key", 42}},
        json{{"service", "x"}, {"run_at", "yesterday"}}}) {
    HttpResponse r = Post(cluster, "/api/tasks", bad);
    ExpectError(r, 400, "invalid_argument");
  }
  // The message names the field.
  EXPECT_NE(Post(cluster, "/api/tasks", {{"service", "x"}, {"priority", "high"}})
                .Json()["error"]
                .get<std::string>()
                .find("priority"),
            std::string::npos);

  ExpectError(HttpGet(cluster.Url("/api/tasks/123456789")), 404, "not_found");
  ExpectError(HttpGet(cluster.Url("/api/tasks/not-a-number")), 404, "not_found");
  ExpectError(HttpCall("DELETE", cluster.Url("/api/tasks/123456789"), "", {kJson}), 404,
              "not_found");
  ExpectError(HttpGet(cluster.Url("/api/tasks/1?wait=soon")), 400, "invalid_argument");
  ExpectError(HttpGet(cluster.Url("/api/tasks/1?wait=100000")), 400, "invalid_argument");
  ExpectError(HttpGet(cluster.Url("/api/tasks?limit=0")), 400, "invalid_argument");
  ExpectError(HttpGet(cluster.Url("/api/tasks?limit=abc")), 400, "invalid_argument");
  ExpectError(HttpGet(cluster.Url("/api/tasks?status=sleeping")), 400, "invalid_argument");
  ExpectError(HttpGet(cluster.Url("/api/tasks?service=a%20b")), 400, "invalid_argument");
}

TEST(GatewayApiTest, RoutingErrorsAndMethods) {
  Cluster cluster;
  ExpectError(HttpGet(cluster.Url("/nothing/here")), 404, "no_route");
  ExpectError(HttpGet(cluster.Url("/api/admin/nope")), 404, "no_route");
  ExpectError(HttpGet(cluster.Url("/api/tasks/1/extra")), 404, "no_route");

  HttpResponse put = HttpCall("PUT", cluster.Url("/api/tasks/1"), "{}");
  ExpectError(put, 405, "method_not_allowed");
  EXPECT_EQ(put.Header("allow"), "GET, DELETE, HEAD, OPTIONS");
  HttpResponse get_retry = HttpGet(cluster.Url("/api/admin/tasks/1/retry"));
  ExpectError(get_retry, 405, "method_not_allowed");
  EXPECT_EQ(get_retry.Header("allow"), "POST, OPTIONS");
  ExpectError(HttpCall("TRACE", cluster.Url("/api/service/echo/x")), 405, "method_not_allowed");

  HttpResponse options = HttpCall("OPTIONS", cluster.Url("/api/tasks"));
  EXPECT_EQ(options.status, 204);
  EXPECT_EQ(options.Header("allow"), "POST, GET, HEAD, OPTIONS");
  EXPECT_TRUE(options.body.empty());
  ExpectError(HttpCall("OPTIONS", cluster.Url("/nope")), 404, "no_route");

  HttpResponse head = HttpCall("HEAD", cluster.Url("/health"));
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  EXPECT_NE(head.Header("content-length"), "0");

  HttpResponse health = HttpGet(cluster.Url("/health"));
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.Json()["status"], "ok");
  EXPECT_EQ(health.Json()["broker"], "reachable");
}

// ---- Synchronous service calls --------------------------------------------------------------

TEST(GatewayApiTest, ServiceCallsCarryTheRequestAndTheBackendAnswerBothWays) {
  Cluster cluster;
  FakeWorkerOptions httpbin;
  httpbin.endpoint = cluster.workers_endpoint();
  httpbin.worker_id = "fake-1";
  httpbin.services = {"httpbin"};
  httpbin.heartbeat = std::chrono::milliseconds(200);
  httpbin.backend = FakeWorker::DescribeRequest;
  httpbin.record_tasks = true;
  FakeWorker fake(httpbin, nullptr);
  fake.Start();
  FakeWorkerOptions teapot_options = httpbin;
  teapot_options.worker_id = "fake-2";
  teapot_options.services = {"teapot"};
  teapot_options.backend = [](const proto::TaskAssignment& t) {
    proto::TaskResult r;
    r.task_id = t.task_id;
    r.attempt = t.attempt;
    r.result = "<h1>short and stout</h1>";
    r.content_type = "text/html; charset=utf-8";
    r.http_status = 418;
    return r;
  };
  FakeWorker teapot(teapot_options, nullptr);
  teapot.Start();
  ASSERT_TRUE(WaitForService(cluster, "httpbin")) << cluster.Logs();
  ASSERT_TRUE(WaitForService(cluster, "teapot")) << cluster.Logs();

  const std::string body = "{\"q\": \"caf\xc3\xa9\"}";
  HttpResponse r = HttpCall(
      "POST", cluster.Url("/api/service/httpbin/v1/search/?b=2&a=1&a=3"), body,
      {"Content-Type: application/json; charset=utf-8", "X-Trace-Id: abc", "Accept: text/csv",
       "X-API-Key: not-for-backends", "Authorization: Bearer secret", "X-RMA-Timeout: 5"});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.Header("content-type"), "application/x-rma-test");
  EXPECT_FALSE(r.Header("x-rma-task-id").empty());
  EXPECT_EQ(r.Header("x-rma-worker-id"), "fake-1");
  json seen = r.Json();
  EXPECT_EQ(seen["service"], "httpbin");
  EXPECT_EQ(seen["method"], "POST");
  EXPECT_EQ(seen["path"], "/v1/search/");
  EXPECT_EQ(seen["query"], "b=2&a=1&a=3");
  EXPECT_EQ(seen["body"], body);
  EXPECT_EQ(seen["content_type"], "application/json; charset=utf-8");
  EXPECT_EQ(seen["timeout_ms"], 5000);
  EXPECT_EQ(seen["headers"].value("x-trace-id", ""), "abc");
  EXPECT_EQ(seen["headers"].value("accept", ""), "text/csv");
  EXPECT_FALSE(seen["headers"].contains("x-api-key"));
  EXPECT_FALSE(seen["headers"].contains("authorization"));
  EXPECT_FALSE(seen["headers"].contains("x-rma-timeout"));

  // The short route, every forwarded method.
  for (const char* method : {"GET", "PUT", "PATCH", "DELETE"}) {
    HttpResponse m = HttpCall(method, cluster.Url("/api/httpbin/items/7?x=%20y"), "");
    ASSERT_EQ(m.status, 201) << method << " " << m.body;
    EXPECT_EQ(m.Json()["method"], method);
    EXPECT_EQ(m.Json()["path"], "/items/7");
    EXPECT_EQ(m.Json()["query"], "x=%20y");
  }
  HttpResponse root = HttpGet(cluster.Url("/api/service/httpbin"));
  EXPECT_EQ(root.Json()["path"], "/");
  HttpResponse head = HttpCall("HEAD", cluster.Url("/api/httpbin/x"));
  EXPECT_EQ(head.status, 201);
  EXPECT_TRUE(head.body.empty());

  // Whatever the backend answers comes back as is.
  HttpResponse tea = HttpCall("GET", cluster.Url("/api/teapot/brew"));
  EXPECT_EQ(tea.status, 418);
  EXPECT_EQ(tea.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(tea.body, "<h1>short and stout</h1>");

  // Bad calls are refused before reaching anybody.
  const size_t before = fake.tasks().size();
  ExpectError(HttpGet(cluster.Url("/api/service/bad%20name/x")), 400, "invalid_argument");
  RawConnection dots(cluster.http_port());  // curl would resolve the ".." itself
  dots.Send(RawRequest("GET", "/api/service/httpbin/../admin"));
  auto climbed = dots.Read(10s);
  ASSERT_TRUE(climbed);
  EXPECT_EQ(climbed->status, 400);
  ExpectError(HttpGet(cluster.Url("/api/httpbin/a/%2e%2e/b")), 400, "invalid_argument");
  ExpectError(HttpCall("GET", cluster.Url("/api/httpbin/x"), "", {"X-RMA-Timeout: soon"}), 400,
              "invalid_argument");
  ExpectError(HttpCall("GET", cluster.Url("/api/httpbin/x"), "", {"X-RMA-Timeout: 0"}), 400,
              "invalid_argument");
  ExpectError(HttpCall("GET", cluster.Url("/api/httpbin/x"), "", {"X-RMA-Timeout: 100000"}), 400,
              "invalid_argument");
  EXPECT_EQ(fake.tasks().size(), before) << "refused calls never reach a worker";
}

TEST(GatewayApiTest, NoProviderIs503WithTheAvailableServicesTimeoutIs504FailureIs502) {
  Cluster cluster;
  cluster.StartWorker("w", {"--service", "echo=builtin:echo", "--service", "sleep=builtin:sleep",
                            "--service", "fail=builtin:fail", "--slots", "4"});
  ASSERT_TRUE(WaitForService(cluster, "fail")) << cluster.Logs();

  for (const char* path : {"/api/service/rag/query", "/api/rag/query"}) {
    HttpResponse r = HttpCall("POST", cluster.Url(path), "{}", {"Content-Type: application/json"});
    ExpectError(r, 503, "unavailable");
    json j = r.Json();
    EXPECT_EQ(j["error"], "Service 'rag' not available");
    std::set<std::string> available;
    for (const json& name : j["available_services"]) available.insert(name.get<std::string>());
    for (const char* name : {"echo", "fail", "sleep"}) EXPECT_EQ(available.count(name), 1u) << name;
    EXPECT_EQ(available.count("rag"), 0u);
    EXPECT_TRUE(j["suggestion"].is_string() && !j["suggestion"].get<std::string>().empty());
  }

  HttpResponse slow =
      HttpCall("POST", cluster.Url("/api/service/sleep"), "5000", {"X-RMA-Timeout: 0.3"});
  ExpectError(slow, 504, "timeout");
  EXPECT_TRUE(slow.Json()["task_id"].is_string());

  HttpResponse failed = HttpCall("POST", cluster.Url("/api/service/fail"), "boom");
  EXPECT_EQ(failed.status, 502) << failed.body;
  EXPECT_NE(failed.Json().value("error", "").find("boom"), std::string::npos) << failed.body;

  HttpResponse echo =
      HttpCall("POST", cluster.Url("/api/echo"), "ping", {"Content-Type: text/plain"});
  EXPECT_EQ(echo.status, 200);
  EXPECT_EQ(echo.body, "ping");
  EXPECT_EQ(echo.Header("content-type"), "text/plain");
}

// ---- Admin ----------------------------------------------------------------------------------

TEST(GatewayApiTest, AdminQueriesAndActions) {
  Cluster cluster;
  cluster.StartWorker(
      "w", {"--service", "echo=builtin:echo", "--service", "fail=builtin:fail", "--slots", "2"});
  ASSERT_TRUE(WaitForService(cluster, "fail")) << cluster.Logs();
  EXPECT_EQ(WaitForTask(cluster, Submit(cluster, {{"service", "echo"}, {"payload", 1}}))["status"],
            "completed");

  json workers = HttpGet(cluster.Url("/api/admin/workers")).Json();
  ASSERT_EQ(workers["workers"].size(), 1u) << workers.dump();
  EXPECT_EQ(workers["workers"][0]["worker_id"], "w");
  json services = HttpGet(cluster.Url("/api/admin/services")).Json();
  EXPECT_TRUE(services.contains("available_services")) << services.dump();
  json stats = HttpGet(cluster.Url("/api/admin/stats")).Json();
  for (const char* key :
       {"workers", "queue_depth", "tasks", "today", "throughput_per_s", "latency_ms"}) {
    EXPECT_TRUE(stats.contains(key)) << key << " " << stats.dump();
  }
  EXPECT_GE(stats["tasks"]["completed"].get<int>(), 1);
  EXPECT_TRUE(HttpGet(cluster.Url("/api/admin/queues")).Json().contains("queues"));
  EXPECT_EQ(HttpGet(cluster.Url("/api/admin/health")).Json()["broker"], "up");

  // Dead tasks: retry puts one back in its queue, discard forgets another.
  auto dead_task = [&] {
    std::string id = Submit(cluster, {{"service", "fail"}, {"payload", "x"}, {"max_attempts", 1}});
    EXPECT_EQ(WaitForTask(cluster, id)["status"], "dead");
    return id;
  };
  const std::string retry_id = dead_task();
  HttpResponse retried =
      HttpCall("POST", cluster.Url("/api/admin/tasks/" + retry_id + "/retry"), "", {kJson});
  ASSERT_EQ(retried.status, 200) << retried.body;
  EXPECT_EQ(retried.Json()["action"], "retry");
  EXPECT_EQ(WaitForTask(cluster, retry_id)["status"], "dead");  // it ran (and failed) again
  const std::string discard_id = dead_task();
  HttpResponse discarded =
      HttpCall("POST", cluster.Url("/api/admin/tasks/" + discard_id + "/discard"), "", {kJson});
  ASSERT_EQ(discarded.status, 200) << discarded.body;
  ExpectError(HttpGet(cluster.Url("/api/tasks/" + discard_id)), 404, "not_found");

  const std::string alive = Submit(cluster, {{"service", "nobody"}});
  ExpectError(HttpCall("POST", cluster.Url("/api/admin/tasks/" + alive + "/retry"), "", {kJson}),
              409, "failed_precondition");
  ExpectError(HttpCall("POST", cluster.Url("/api/admin/tasks/999/discard"), "", {kJson}), 404,
              "not_found");
  ExpectError(HttpCall("POST", cluster.Url("/api/admin/tasks/abc/retry"), "", {kJson}), 404,
              "not_found");

  ExpectError(HttpCall("POST", cluster.Url("/api/admin/workers/nobody/drain"), "", {kJson}), 404,
              "not_found");
  HttpResponse drained = HttpCall("POST", cluster.Url("/api/admin/workers/w/drain"), "", {kJson});
  ASSERT_EQ(drained.status, 200) << drained.body;
  EXPECT_TRUE(WaitUntil(
      [&] {
        json w = HttpGet(cluster.Url("/api/admin/workers")).Json();
        return w["workers"].size() == 1 && w["workers"][0]["status"] == "draining";
      },
      10s));
  // A drained worker stays connected and gets work again once undrained.
  const std::string waiting = Submit(cluster, {{"service", "echo"}, {"payload", "after"}});
  EXPECT_EQ(HttpGet(cluster.Url("/api/tasks/" + waiting)).Json()["status"], "queued");
  HttpResponse undrained =
      HttpCall("POST", cluster.Url("/api/admin/workers/w/undrain"), "", {kJson});
  ASSERT_EQ(undrained.status, 200) << undrained.body;
  EXPECT_EQ(undrained.Json()["action"], "undrain");
  EXPECT_EQ(HttpGet(cluster.Url("/api/tasks/" + waiting + "?wait=10")).Json()["status"],
            "completed");
  ExpectError(HttpCall("POST", cluster.Url("/api/admin/workers/nobody/undrain"), "", {kJson}), 404,
              "not_found");
}

TEST(GatewayApiTest, AMistypedAdminRouteIs404WithAHintNotAServiceCall) {
  Cluster cluster;
  HttpResponse r = HttpGet(cluster.Url("/api/workers"));
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(r.Json()["code"], "no_route");
  EXPECT_NE(r.Json()["error"].get<std::string>().find("/api/admin/workers"), std::string::npos);
  // A service of that name is still callable by its long route.
  EXPECT_EQ(HttpGet(cluster.Url("/api/service/workers/x")).Json()["code"], "unavailable");
}

// ---- /metrics -------------------------------------------------------------------------------

TEST(GatewayApiTest, MetricsArePrometheusTextThatPromtoolAccepts) {
  Cluster cluster;
  cluster.StartWorker("w", {"--service", "echo=builtin:echo"});
  ASSERT_TRUE(WaitForService(cluster, "echo")) << cluster.Logs();
  EXPECT_EQ(WaitForTask(cluster, Submit(cluster, {{"service", "echo"}, {"payload", 1}}))["status"],
            "completed");
  HttpCall("POST", cluster.Url("/api/service/echo"), "x");
  HttpGet(cluster.Url("/nope"));

  HttpResponse m = HttpGet(cluster.Url("/metrics"));
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.Header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  for (const char* line :
       {"rma_gateway_http_requests_total{route=\"submit_task\",code=\"202\"} 1\n",
        "rma_gateway_http_requests_total{route=\"none\",code=\"404\"} 1\n",
        "rma_gateway_http_requests_total{route=\"service_call\",code=\"200\"} 1\n",
        "rma_gateway_http_request_duration_seconds_bucket{route=\"submit_task\",le=\"+Inf\"} 1\n",
        "rma_tasks_submitted_total{service=\"echo\"} 2\n",
        "rma_tasks_completed_total{service=\"echo\"} 2\n", "rma_queue_depth{service=\"echo\"} 0\n",
        "rma_broker_up 1\n", "rma_gateway_broker_reachable 1\n",
        "rma_task_run_seconds_count{service=\"echo\"} 2\n"}) {
    EXPECT_NE(m.body.find(line), std::string::npos) << line << "\n" << m.body;
  }
  const std::string promtool = RMA_PROMTOOL;
  ASSERT_FALSE(promtool.empty()) << "promtool (Debian package prometheus) is required";
  const std::string file = cluster.dir() + "/metrics.txt";
  std::ofstream(file) << m.body;
  const std::string cmd = promtool + " check metrics < " + file + " > " + file + ".out 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << ReadFile(file + ".out") << "\n" << m.body;

  // Broker gone: the gateway still answers, saying so.
  cluster.broker().Kill();
  ASSERT_TRUE(cluster.broker().Wait(10s));
  HttpResponse down = HttpGet(cluster.Url("/metrics"), 10000);
  ASSERT_EQ(down.status, 200);
  EXPECT_NE(down.body.find("rma_broker_up 0\n"), std::string::npos) << down.body;
  std::ofstream(file) << down.body;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << ReadFile(file + ".out");
  EXPECT_TRUE(WaitUntil([&] { return HttpGet(cluster.Url("/health")).status == 503; }, 10s));
  ExpectError(HttpGet(cluster.Url("/api/tasks/1")), 503, "unavailable");
}

// ---- Keys, rate limits, CORS ----------------------------------------------------------------

TEST(GatewayApiTest, KeysGuardClientAndAdminRoutes) {
  ClusterOptions o;
  o.gateway_args = {"--client-key", "client-key-1", "--admin-key", "admin-key-1:ops"};
  Cluster cluster(o);
  const std::vector<std::string> client = {"X-API-Key: client-key-1"};
  const std::vector<std::string> admin = {"X-API-Key: admin-key-1"};

  EXPECT_EQ(HttpGet(cluster.Url("/health")).status, 200);  // always open

  HttpResponse missing = Post(cluster, "/api/tasks", {{"service", "echo"}});
  ExpectError(missing, 401, "unauthenticated");
  EXPECT_EQ(missing.Header("www-authenticate"), "Bearer realm=\"rma\"");
  ExpectError(Post(cluster, "/api/tasks", {{"service", "echo"}}, {"X-API-Key: wrong-key-99"}), 403,
              "permission_denied");
  EXPECT_EQ(Post(cluster, "/api/tasks", {{"service", "echo"}}, client).status, 202);
  EXPECT_EQ(Post(cluster, "/api/tasks", {{"service", "echo"}}, admin).status, 202);
  EXPECT_EQ(
      Post(cluster, "/api/tasks", {{"service", "echo"}}, {"Authorization: Bearer client-key-1"})
          .status,
      202);
  ExpectError(HttpCall("POST", cluster.Url("/api/service/echo"), "x"), 401, "unauthenticated");
  ExpectError(HttpGet(cluster.Url("/api/tasks/1")), 401, "unauthenticated");

  ExpectError(HttpGet(cluster.Url("/api/admin/workers")), 401, "unauthenticated");
  ExpectError(HttpCall("GET", cluster.Url("/api/admin/workers"), "", client), 403,
              "permission_denied");
  ExpectError(HttpCall("POST", cluster.Url("/api/admin/workers/w/drain"), "", {kJson, client[0]}),
              403, "permission_denied");
  EXPECT_EQ(HttpCall("GET", cluster.Url("/api/admin/workers"), "", admin).status, 200);
  EXPECT_EQ(
      HttpCall("GET", cluster.Url("/api/admin/stats"), "", {"Authorization: Bearer admin-key-1"})
          .status,
      200);

  ExpectError(HttpGet(cluster.Url("/metrics")), 401, "unauthenticated");
  ExpectError(HttpCall("GET", cluster.Url("/metrics"), "", client), 403, "permission_denied");
  EXPECT_EQ(HttpCall("GET", cluster.Url("/metrics"), "", admin).status, 200);
}

TEST(GatewayApiTest, PublicMetricsNeedNoKey) {
  ClusterOptions o;
  o.gateway_args = {"--admin-key", "admin-key-1", "--public-metrics"};
  Cluster cluster(o);
  EXPECT_EQ(HttpGet(cluster.Url("/metrics")).status, 200);
  ExpectError(HttpGet(cluster.Url("/api/admin/queues")), 401, "unauthenticated");
}

TEST(GatewayApiTest, RateLimitsArePerKeyWithRetryAfter) {
  ClusterOptions o;
  o.gateway_args = {"--client-key", "client-key-1", "--client-key", "client-key-2",
                    "--rate-limit", "0.5",          "--rate-burst", "3"};
  Cluster cluster(o);
  auto call = [&](const std::string& key) {
    return HttpCall("GET", cluster.Url("/api/tasks?limit=1"), "", {"X-API-Key: " + key});
  };
  for (int i = 0; i < 3; ++i) EXPECT_EQ(call("client-key-1").status, 200) << i;
  HttpResponse limited = call("client-key-1");
  ExpectError(limited, 429, "rate_limited");
  EXPECT_EQ(limited.Header("retry-after"), "2");
  EXPECT_EQ(call("client-key-2").status, 200) << "another key has its own bucket";
  EXPECT_EQ(HttpGet(cluster.Url("/health")).status, 200) << "/health is never limited";
}

TEST(GatewayApiTest, RateLimitsWithoutKeysArePerClientAddress) {
  ClusterOptions o;
  o.gateway_args = {"--rate-limit", "0.2", "--rate-burst", "2"};
  Cluster cluster(o);
  EXPECT_EQ(HttpGet(cluster.Url("/api/tasks")).status, 200);
  EXPECT_EQ(HttpGet(cluster.Url("/api/tasks")).status, 200);
  ExpectError(HttpGet(cluster.Url("/api/tasks")), 429, "rate_limited");
}

TEST(GatewayApiTest, CorsForConfiguredOrigins) {
  ClusterOptions o;
  o.gateway_args = {"--cors-origin", "https://app.example", "--admin-key", "admin-key-1"};
  Cluster cluster(o);
  HttpResponse allowed = HttpCall("GET", cluster.Url("/api/admin/health"), "",
                                  {"Origin: https://app.example", "X-API-Key: admin-key-1"});
  EXPECT_EQ(allowed.status, 200);
  EXPECT_EQ(allowed.Header("access-control-allow-origin"), "https://app.example");
  EXPECT_EQ(allowed.Header("vary"), "Origin");
  // Errors carry the headers too, so the page can read them.
  HttpResponse refused =
      HttpCall("GET", cluster.Url("/api/admin/health"), "", {"Origin: https://app.example"});
  EXPECT_EQ(refused.status, 401);
  EXPECT_EQ(refused.Header("access-control-allow-origin"), "https://app.example");
  HttpResponse other =
      HttpCall("GET", cluster.Url("/health"), "", {"Origin: https://evil.example"});
  EXPECT_EQ(other.status, 200);
  EXPECT_EQ(other.Header("access-control-allow-origin"), "");

  HttpResponse preflight =
      HttpCall("OPTIONS", cluster.Url("/api/tasks"), "",
               {"Origin: https://app.example", "Access-Control-Request-Method: POST",
                "Access-Control-Request-Headers: content-type, x-api-key"});
  EXPECT_EQ(preflight.status, 204);
  EXPECT_EQ(preflight.Header("access-control-allow-origin"), "https://app.example");
  EXPECT_EQ(preflight.Header("access-control-allow-methods"), "POST, GET, HEAD");
  EXPECT_EQ(preflight.Header("access-control-allow-headers"), "content-type, x-api-key");
  ExpectError(HttpCall("OPTIONS", cluster.Url("/api/tasks"), "",
                       {"Origin: https://evil.example", "Access-Control-Request-Method: POST"}),
              403, "permission_denied");
  ExpectError(HttpCall("OPTIONS", cluster.Url("/api/tasks"), "",
                       {"Origin: https://app.example", "Access-Control-Request-Method: PUT"}),
              403, "permission_denied");
}

// ---- Sizes and malformed HTTP ---------------------------------------------------------------

TEST(GatewayApiTest, BodiesAtTheLimitPassAndOverItGetJson413) {
  ClusterOptions o;
  o.gateway_args = {"--max-body-bytes", "4096"};
  Cluster cluster(o);
  cluster.StartWorker("w", {"--service", "echo=builtin:echo"});
  ASSERT_TRUE(WaitForService(cluster, "echo")) << cluster.Logs();

  const std::string at_limit(4096, 'a');
  HttpResponse ok =
      HttpCall("POST", cluster.Url("/api/service/echo"), at_limit, {"Content-Type: text/plain"});
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, at_limit);
  ExpectError(HttpCall("POST", cluster.Url("/api/service/echo"), at_limit + "a"), 413,
              "payload_too_large");
  ExpectError(HttpCall("POST", cluster.Url("/api/service/echo"), std::string(1 << 20, 'a')), 413,
              "payload_too_large");
  ExpectError(HttpCall("POST", cluster.Url("/api/service/echo"), std::string(8 << 20, 'a')), 413,
              "payload_too_large");

  // POST /api/tasks: a body of exactly the limit is accepted.
  const std::string prefix = R"({"service":"echo","payload":")";
  const std::string task_body = prefix + std::string(4096 - prefix.size() - 2, 'p') + "\"}";
  ASSERT_EQ(task_body.size(), 4096u);
  EXPECT_EQ(HttpCall("POST", cluster.Url("/api/tasks"), task_body, {kJson}).status, 202);
  ExpectError(HttpCall("POST", cluster.Url("/api/tasks"), task_body + " ", {kJson}), 413,
              "payload_too_large");

  // Chunked bodies have no length up front: refused once they pass the limit.
  RawConnection chunked(cluster.http_port());
  std::string request =
      "POST /api/service/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 40; ++i) request += "1000\r\n" + std::string(4096, 'c') + "\r\n";
  chunked.Send(request);
  auto refused = chunked.Read(10s);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 413);
  EXPECT_EQ(nlohmann::json::parse(refused->body)["code"], "payload_too_large");
  EXPECT_EQ(refused->Header("connection"), "close");

  // Expect: 100-continue: go ahead when the declared body fits, 413 at once when it does not.
  RawConnection expecting(cluster.http_port());
  expecting.Send(
      "POST /api/service/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
      "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\n");
  auto go_ahead = expecting.Read(10s);
  ASSERT_TRUE(go_ahead);
  EXPECT_EQ(go_ahead->status, 100);
  expecting.Send("hello");
  auto echoed = expecting.Read(10s);
  ASSERT_TRUE(echoed);
  EXPECT_EQ(echoed->status, 200);
  EXPECT_EQ(echoed->body, "hello");
  expecting.Send(
      "POST /api/service/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
      "Content-Length: 4097\r\n\r\n");
  auto refused_early = expecting.Read(10s);
  ASSERT_TRUE(refused_early);
  EXPECT_EQ(refused_early->status, 413);
  EXPECT_TRUE(expecting.ClosedByServer(10s));

  // Huge header block: 431, JSON.
  HttpResponse big_header =
      HttpCall("GET", cluster.Url("/health"), "", {"X-Big: " + std::string(70000, 'h')});
  ExpectError(big_header, 431, "header_too_large");

  EXPECT_EQ(HttpGet(cluster.Url("/health")).status, 200);
}

TEST(GatewayApiTest, MalformedHttpGetsJson400AndTheGatewayCarriesOn) {
  Cluster cluster;
  for (const std::string& garbage :
       {std::string("GARBAGE\r\n\r\n"), std::string("GET /health HTTP/9.9\r\n\r\n"),
        std::string("GET /health HTTP/1.1\r\nNo-Colon-Here\r\n\r\n"),
        std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15)}) {
    RawConnection c(cluster.http_port());
    c.Send(garbage);
    auto r = c.Read(5s);
    ASSERT_TRUE(r) << garbage;
    EXPECT_GE(r->status, 400) << garbage;
    EXPECT_LT(r->status, 600) << garbage;
    EXPECT_TRUE(c.ClosedByServer(5s)) << garbage;
  }
  EXPECT_EQ(HttpGet(cluster.Url("/health")).status, 200);
}

// ---- Connections ----------------------------------------------------------------------------

TEST(GatewayApiTest, KeepAliveForHttp11ClientsWithoutAConnectionHeader) {
  Cluster cluster;
  cluster.StartWorker("w", {"--service", "echo=builtin:echo"});
  ASSERT_TRUE(WaitForService(cluster, "echo")) << cluster.Logs();
  RawConnection c(cluster.http_port());
  ASSERT_GE(c.fd(), 0);
  // Immediate and deferred answers alternate on one socket.
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(c.Send(RawRequest("GET", "/health")));
    auto health = c.Read(10s);
    ASSERT_TRUE(health) << i;
    EXPECT_EQ(health->status, 200);
    EXPECT_EQ(health->Header("connection"), "keep-alive");
    ASSERT_TRUE(c.Send(RawRequest("POST", "/api/service/echo", "Content-Type: text/plain\r\n",
                                  "n" + std::to_string(i))));
    auto echo = c.Read(10s);
    ASSERT_TRUE(echo) << i;
    EXPECT_EQ(echo->status, 200);
    EXPECT_EQ(echo->body, "n" + std::to_string(i));
    EXPECT_EQ(echo->Header("connection"), "keep-alive");
  }
  EXPECT_TRUE(c.buffered().empty());

  // "Connection: close" and HTTP/1.0 without keep-alive end the connection after the answer.
  RawConnection closing(cluster.http_port());
  closing.Send(RawRequest("GET", "/health", "Connection: close\r\n"));
  auto last = closing.Read(10s);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->Header("connection"), "close");
  EXPECT_TRUE(closing.ClosedByServer(10s));
  RawConnection old(cluster.http_port());
  old.Send("GET /health HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(old.Read(10s));
  EXPECT_TRUE(old.ClosedByServer(10s));
}

TEST(GatewayApiTest, LongPollOutlivesTheHeaderTimeout) {
  ClusterOptions o;
  o.gateway_args = {"--header-timeout-ms", "300"};
  Cluster cluster(o);
  cluster.StartWorker("w", {"--service", "sleep=builtin:sleep"});
  ASSERT_TRUE(WaitForService(cluster, "sleep")) << cluster.Logs();
  const std::string id = Submit(cluster, {{"service", "sleep"}, {"payload", 1500}});
  json done = WaitForTask(cluster, id, 20);
  EXPECT_EQ(done["status"], "completed") << done.dump();
  // A synchronous call that takes longer than the header timeout too.
  HttpResponse call = HttpCall("POST", cluster.Url("/api/service/sleep"), "1000");
  EXPECT_EQ(call.status, 200) << call.body;
}

TEST(GatewayApiTest, WaitingCallsDoNotHoldReactorThreads) {
  ClusterOptions o;
  o.gateway_args = {"--threads", "1"};
  Cluster cluster(o);
  cluster.StartWorker("w", {"--service", "sleep=builtin:sleep", "--slots", "64"});
  ASSERT_TRUE(WaitForService(cluster, "sleep")) << cluster.Logs();
  std::vector<std::future<long>> calls;
  calls.reserve(40);
  for (int i = 0; i < 40; ++i) {
    calls.push_back(std::async(std::launch::async, [&] {
      return HttpCall("POST", cluster.Url("/api/service/sleep"), "60000", {"X-RMA-Timeout: 20"},
                      60000)
          .status;
    }));
  }
  // With one reactor thread and 40 calls waiting, /health and other routes still answer.
  EXPECT_TRUE(WaitUntil(
      [&] { return HttpGet(cluster.Url("/health")).Json().value("pending_requests", 0) >= 40; },
      15s));
  EXPECT_EQ(HttpGet(cluster.Url("/api/tasks?limit=1")).status, 200);
  EXPECT_EQ(HttpGet(cluster.Url("/health")).status, 200);
  for (auto& f : calls) EXPECT_EQ(f.get(), 504);
}

TEST(GatewayApiTest, TooManyWaitingRequestsGet503WithRetryAfter) {
  ClusterOptions o;
  o.gateway_args = {"--max-pending-requests", "2"};
  Cluster cluster(o);
  cluster.StartWorker("w", {"--service", "sleep=builtin:sleep", "--slots", "4"});
  ASSERT_TRUE(WaitForService(cluster, "sleep")) << cluster.Logs();
  std::vector<std::future<long>> calls;
  calls.reserve(2);
  for (int i = 0; i < 2; ++i) {
    calls.push_back(std::async(std::launch::async, [&] {
      return HttpCall("POST", cluster.Url("/api/service/sleep"), "60000", {"X-RMA-Timeout: 10"})
          .status;
    }));
  }
  ASSERT_TRUE(WaitUntil(
      [&] { return HttpGet(cluster.Url("/health")).Json().value("pending_requests", 0) == 2; },
      8s));
  HttpResponse busy = HttpGet(cluster.Url("/api/tasks/1"));
  ExpectError(busy, 503, "resource_exhausted");
  EXPECT_EQ(busy.Header("retry-after"), "1");
  EXPECT_EQ(HttpGet(cluster.Url("/health")).status, 200) << "immediate routes still answer";
  for (auto& f : calls) EXPECT_EQ(f.get(), 504);
  EXPECT_TRUE(
      WaitUntil([&] { return HttpGet(cluster.Url("/api/tasks?limit=1")).status == 200; }, 10s));
}

// ---- OpenAPI --------------------------------------------------------------------------------

// Every operation in docs/openapi.json is served (never a routing 404 or a 405). The unit test
// gateway/openapi_test.cc checks the other direction (every route is documented).
TEST(GatewayApiTest, EveryDocumentedOperationIsServed) {
  std::ifstream in(std::string(RMA_SOURCE_DIR) + "/docs/openapi.json");
  ASSERT_TRUE(in.good());
  json doc = json::parse(in);
  ClusterOptions o;
  o.gateway_args = {"--admin-key", "admin-key-1"};
  Cluster cluster(o);
  const std::vector<std::string> key = {"X-API-Key: admin-key-1"};
  cluster.StartWorker("w", {"--service", "echo=builtin:echo", "--service", "fail=builtin:fail"});
  ASSERT_TRUE(WaitForService(cluster, "fail", {"X-API-Key: admin-key-1"})) << cluster.Logs();
  const std::string task = Submit(cluster, {{"service", "echo"}, {"payload", 1}}, key);
  auto dead = [&] {
    std::string id = Submit(cluster, {{"service", "fail"}, {"max_attempts", 1}}, key);
    EXPECT_EQ(WaitForTask(cluster, id, 15, key)["status"], "dead");
    return id;
  };
  const std::string dead1 = dead();
  const std::string dead2 = dead();
  // Draining the worker last: service calls need it active.
  std::vector<std::pair<std::string, std::string>> operations;
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      if (method != "parameters") operations.emplace_back(path, method);
    }
  }
  std::stable_partition(operations.begin(), operations.end(), [](const auto& op) {
    return op.first.find("/drain") == std::string::npos;
  });
  int checked = 0;
  for (const auto& [path, method] : operations) {
    {
      std::string url = path;
      auto fill = [&](const std::string& param, const std::string& value) {
        size_t pos = url.find("{" + param + "}");
        if (pos != std::string::npos) url.replace(pos, param.size() + 2, value);
      };
      fill("name", "echo");
      fill("path", "some/where");
      if (path.find("/retry") != std::string::npos) fill("id", dead1);
      if (path.find("/discard") != std::string::npos) fill("id", dead2);
      if (path.find("/workers/") != std::string::npos) fill("id", "w");
      fill("id", task);
      std::string upper = method;
      for (char& c : upper) c = static_cast<char>(std::toupper(c));
      std::string body = upper == "POST" && path == "/api/tasks" ? R"({"service":"echo"})" : "";
      HttpResponse r = HttpCall(upper, cluster.Url(url), body, key);
      if (path == "/api/admin/history") {
        // Documented: the history needs PostgreSQL, and this broker runs without a database.
        EXPECT_EQ(r.status, 503) << r.body;
        ++checked;
        continue;
      }
      EXPECT_NE(r.status, 404) << upper << " " << url << " " << r.body;
      EXPECT_NE(r.status, 405) << upper << " " << url << " " << r.body;
      EXPECT_LT(r.status, 500) << upper << " " << url << " " << r.body;
      ++checked;
    }
  }
  EXPECT_GE(checked, 20);
}

}  // namespace
}  // namespace rma::testing
