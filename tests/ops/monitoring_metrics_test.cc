// The monitoring examples against a real pool: every metric that the Grafana dashboard
// (deploy/grafana/rma-pool.json) and the alert rules (deploy/prometheus/rma-alerts.yml) name must
// be exported by a gateway's /metrics — scraped here from a pool started with tests/support's
// Cluster, with a worker and some finished work, so per-service and per-worker series exist — and
// every dashboard query must be PromQL that promtool accepts. A renamed metric fails this test
// instead of silently blanking a panel or an alert. Runs on the test's main thread.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "tests/support/cluster.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Names of the samples in a Prometheus text exposition (histograms as _bucket, _sum, _count).
std::set<std::string> SampleNames(const std::string& text) {
  std::set<std::string> names;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    names.insert(line.substr(0, line.find_first_of("{ ")));
  }
  return names;
}

// Every "expr" string anywhere in a Grafana dashboard.
void CollectExprs(const json& j, std::vector<std::string>* out) {
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      if (key == "expr" && value.is_string()) {
        out->push_back(value.get<std::string>());
      } else {
        CollectExprs(value, out);
      }
    }
  } else if (j.is_array()) {
    for (const json& v : j) CollectExprs(v, out);
  }
}

// The metric names (rma_...) a PromQL expression uses.
std::set<std::string> MetricsIn(const std::string& expr) {
  std::set<std::string> names;
  static const std::regex kName(R"(\brma_[a-z0-9_]+)");
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), kName);
       it != std::sregex_iterator(); ++it) {
    names.insert(it->str());
  }
  return names;
}

std::vector<std::string> AlertExprs() {
  std::vector<std::string> exprs;
  std::istringstream in(ReadFile(RMA_ALERT_RULES));
  std::string line;
  static const std::regex kExpr(R"(^\s*expr:\s*(.+)$)");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_match(line, m, kExpr)) exprs.push_back(m[1]);
  }
  return exprs;
}

std::vector<std::string> DashboardExprs() {
  json dashboard = json::parse(ReadFile(RMA_GRAFANA_DASHBOARD), nullptr, false);
  EXPECT_TRUE(dashboard.is_object()) << RMA_GRAFANA_DASHBOARD << " is not JSON";
  std::vector<std::string> exprs;
  CollectExprs(dashboard, &exprs);
  return exprs;
}

TEST(MonitoringMetricsTest, EveryMetricTheDashboardAndAlertsUseIsExported) {
  Cluster cluster;
  cluster.StartWorker("w", {"--service", "echo=builtin:echo", "--service", "fail=builtin:fail"});
  ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 20s, "echo")) << cluster.Logs();
  // Finished work, so every per-service family has samples; a failure for the failure counters.
  for (const char* service : {"echo", "fail"}) {
    HttpResponse submitted = HttpPostJson(
        cluster.Url("/api/tasks"), {{"service", service}, {"payload", "x"}, {"max_attempts", 1}});
    ASSERT_EQ(submitted.status, 202) << submitted.body;
    const std::string id = submitted.Json()["task_id"];
    HttpResponse done = HttpGet(cluster.Url("/api/tasks/" + id + "?wait=20"));
    ASSERT_EQ(done.status, 200) << done.body;
  }
  HttpGet(cluster.Url("/metrics"));  // the scrape below then has HTTP metrics of its own route too
  HttpResponse metrics = HttpGet(cluster.Url("/metrics"));
  ASSERT_EQ(metrics.status, 200) << metrics.body;
  const std::set<std::string> exported = SampleNames(metrics.body);
  ASSERT_TRUE(exported.count("rma_broker_up")) << metrics.body;

  std::vector<std::string> alerts = AlertExprs();
  std::vector<std::string> panels = DashboardExprs();
  ASSERT_GE(alerts.size(), 7u) << "alert rules not found in " << RMA_ALERT_RULES;
  ASSERT_GE(panels.size(), 10u) << "queries not found in " << RMA_GRAFANA_DASHBOARD;
  std::set<std::string> used;
  for (const auto* list : {&alerts, &panels}) {
    for (const std::string& expr : *list) {
      for (const std::string& name : MetricsIn(expr)) {
        used.insert(name);
        EXPECT_TRUE(exported.count(name)) << name << " (in `" << expr << "`) is not in /metrics";
      }
    }
  }
  // The alerts cover what operators were promised (docs/deploy.md): these metrics at least.
  for (const char* needed : {"rma_worker_heartbeat_age_seconds", "rma_workers", "rma_queue_depth",
                             "rma_service_providers", "rma_tasks_dead_total",
                             "rma_broker_store_available", "rma_broker_up"}) {
    EXPECT_TRUE(used.count(needed)) << needed << " is used by no alert or panel";
  }
}

TEST(MonitoringMetricsTest, EveryDashboardQueryIsValidPromQL) {
  // promtool has no expression checker, but it parses recording rules: one per panel query, with
  // Grafana's interval variables replaced by a duration.
  std::vector<std::string> exprs = DashboardExprs();
  ASSERT_FALSE(exprs.empty());
  const std::string dir = TempDir("rma-grafana-promql");
  std::ofstream rules(dir + "/panels.yml");
  rules << "groups:\n  - name: grafana\n    rules:\n";
  for (size_t i = 0; i < exprs.size(); ++i) {
    std::string expr = std::regex_replace(exprs[i], std::regex(R"(\$__(rate_)?interval)"), "5m");
    expr = std::regex_replace(expr, std::regex("'"), "''");
    rules << "      - record: panel_" << i << "\n        expr: '" << expr << "'\n";
  }
  rules.close();
  Process check =
      Process::Start(RMA_PROMTOOL, {"check", "rules", dir + "/panels.yml"}, dir + "/promtool.log");
  EXPECT_EQ(check.Wait(60s), 0) << check.Log();
}

}  // namespace
}  // namespace rma::testing
