// Attack 2 of issue 12: cross-site requests. Any web page a pool user (or admin) visits can make
// their browser send requests to a gateway it can reach — a loopback one, one on the LAN — without
// a CORS preflight, as long as the request is "simple": a POST with Content-Type text/plain, a
// form or multipart body, or no body at all. The page cannot read the answer, but it does not need
// to: the task is created, the worker is drained. Now: state-changing JSON routes need
// Content-Type: application/json (which a browser sends across sites only after a preflight that
// only configured origins pass), and any state-changing request with an Origin that is neither
// allowed nor the gateway's own, or with Sec-Fetch-Site: cross-site, is refused 403.
#include <gtest/gtest.h>

#include "tests/security/gateway_attack.h"

namespace rma::testing {
namespace {

using namespace attack;

TEST(GatewayCrossSiteTest, ACrossSiteTextPlainPostCreatesNoTask) {
  Cluster cluster;
  cluster.StartWorker("w", {"--service", "echo=builtin:echo"});
  ASSERT_TRUE(WaitForService(cluster, "echo")) << cluster.Logs();
  // What <form enctype="text/plain"> or fetch(..., {mode: "no-cors"}) sends from evil.example.
  const std::string body = R"({"service": "echo", "payload": "csrf-marker"})";
  HttpResponse from_page = HttpCall("POST", cluster.Url("/api/tasks"), body,
                                    {"Content-Type: text/plain", "Origin: http://evil.example",
                                     "Sec-Fetch-Site: cross-site", "Sec-Fetch-Mode: no-cors"});
  EXPECT_TRUE(from_page.status == 403 || from_page.status == 415) << from_page.body;
  // Even without Origin (an older browser, a privacy extension stripping it) text/plain is refused.
  HttpResponse no_origin =
      HttpCall("POST", cluster.Url("/api/tasks"), body, {"Content-Type: text/plain"});
  EXPECT_EQ(no_origin.status, 415) << no_origin.body;
  EXPECT_EQ(CodeOf(no_origin), "unsupported_media_type");
  HttpResponse form = HttpCall("POST", cluster.Url("/api/tasks"), body,
                               {"Content-Type: application/x-www-form-urlencoded"});
  EXPECT_EQ(form.status, 415) << form.body;
  // Nothing else submits here: any task is the attacker's.
  EXPECT_TRUE(ListTasks(cluster).empty())
      << "a cross-site POST made a task: " << ListTasks(cluster);
}

TEST(GatewayCrossSiteTest, ABodilessCrossOriginPostDrainsNoWorker) {
  Cluster cluster;
  cluster.StartWorker("victim", {"--service", "echo=builtin:echo"});
  ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 30s)) << cluster.Logs();
  // navigator.sendBeacon / fetch(..., {method: "POST", mode: "no-cors"}) from evil.example.
  HttpResponse drain = HttpCall("POST", cluster.Url("/api/admin/workers/victim/drain"), "",
                                {"Origin: http://evil.example"});
  EXPECT_EQ(drain.status, 403) << drain.body;
  EXPECT_EQ(CodeOf(drain), "cross_origin_refused") << drain.body;
  // Without Origin but cross-site by the browser's own account.
  HttpResponse fetch_site = HttpCall("POST", cluster.Url("/api/admin/workers/victim/drain"), "",
                                     {kJson, "Sec-Fetch-Site: cross-site"});
  EXPECT_EQ(fetch_site.status, 403) << fetch_site.body;
  // Bodyless and without Content-Type, from no page at all: still not a JSON request.
  HttpResponse bare = HttpCall("POST", cluster.Url("/api/admin/workers/victim/drain"));
  EXPECT_EQ(bare.status, 415) << bare.body;
  // The worker still takes work.
  const std::string status = WorkerStatus(cluster, "victim");
  EXPECT_TRUE(status == "idle" || status == "busy" || status == "full")
      << "the worker was drained: " << status;
}

TEST(GatewayCrossSiteTest, CrossSiteServiceCallsAreRefusedToo) {
  Cluster cluster;
  cluster.StartWorker("w", {"--service", "echo=builtin:echo"});
  ASSERT_TRUE(WaitForService(cluster, "echo")) << cluster.Logs();
  HttpResponse call = HttpCall("POST", cluster.Url("/api/service/echo"), "x",
                               {"Content-Type: text/plain", "Origin: https://evil.example"});
  EXPECT_EQ(call.status, 403) << call.body;
  EXPECT_EQ(CodeOf(call), "cross_origin_refused") << call.body;
}

TEST(GatewayCrossSiteTest, TheGatewaysOwnPagesAndAllowedOriginsStillWork) {
  ClusterOptions o;
  o.gateway_args = {"--cors-origin", "https://app.example"};
  Cluster cluster(o);
  cluster.StartWorker("w", {"--service", "echo=builtin:echo"});
  ASSERT_TRUE(WaitForService(cluster, "echo")) << cluster.Logs();
  const std::string own = "http://127.0.0.1:" + std::to_string(cluster.http_port());
  const std::string body = R"({"service": "echo", "payload": 1})";
  HttpResponse same = HttpCall("POST", cluster.Url("/api/tasks"), body,
                               {kJson, "Origin: " + own, "Sec-Fetch-Site: same-origin"});
  EXPECT_EQ(same.status, 202) << same.body;
  HttpResponse allowed =
      HttpCall("POST", cluster.Url("/api/tasks"), body,
               {kJson, "Origin: https://app.example", "Sec-Fetch-Site: cross-site"});
  EXPECT_EQ(allowed.status, 202) << allowed.body;
  EXPECT_EQ(allowed.Header("access-control-allow-origin"), "https://app.example");
  HttpResponse script = HttpCall("POST", cluster.Url("/api/tasks"), body, {kJson});
  EXPECT_EQ(script.status, 202) << script.body;
  EXPECT_EQ(HttpCall("POST", cluster.Url("/api/tasks"), body,
                     {"Content-Type: application/json; charset=utf-8"})
                .status,
            202);
}

}  // namespace
}  // namespace rma::testing
