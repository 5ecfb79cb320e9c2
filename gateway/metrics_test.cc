// Unit tests of the Prometheus rendering (the e2e test runs promtool over a live /metrics).
#include "gateway/metrics.h"

#include <gtest/gtest.h>

namespace rma::gateway {
namespace {

using nlohmann::json;

bool Contains(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST(HttpMetricsTest, CountsByRouteAndStatusWithCumulativeBuckets) {
  HttpMetrics m({"submit_task", "get_task"});
  m.Record(0, 202, Ms(1));
  m.Record(0, 202, Ms(3));
  m.Record(1, 404, Ms(40));
  m.Record(-1, 400, Duration(100));
  m.Record(7, 999, Seconds(1000));  // out-of-range route and status: "none", 500
  EXPECT_EQ(m.requests(0, 202), 2u);
  EXPECT_EQ(m.requests(-1, 500), 1u);
  std::string out;
  m.Render(&out);
  EXPECT_TRUE(Contains(out, "# TYPE rma_gateway_http_requests_total counter\n"));
  EXPECT_TRUE(
      Contains(out, "rma_gateway_http_requests_total{route=\"submit_task\",code=\"202\"} 2\n"));
  EXPECT_TRUE(Contains(out, "rma_gateway_http_requests_total{route=\"none\",code=\"400\"} 1\n"));
  EXPECT_TRUE(Contains(out, "rma_gateway_http_requests_total{route=\"none\",code=\"500\"} 1\n"));
  EXPECT_TRUE(Contains(
      out,
      "rma_gateway_http_request_duration_seconds_bucket{route=\"submit_task\",le=\"0.001\"} 1\n"));
  EXPECT_TRUE(Contains(
      out,
      "rma_gateway_http_request_duration_seconds_bucket{route=\"submit_task\",le=\"0.005\"} 2\n"));
  EXPECT_TRUE(Contains(
      out, "rma_gateway_http_request_duration_seconds_bucket{route=\"none\",le=\"300\"} 1\n"));
  EXPECT_TRUE(Contains(
      out, "rma_gateway_http_request_duration_seconds_bucket{route=\"none\",le=\"+Inf\"} 2\n"));
  EXPECT_TRUE(
      Contains(out, "rma_gateway_http_request_duration_seconds_count{route=\"submit_task\"} 2\n"));
  EXPECT_TRUE(Contains(
      out, "rma_gateway_http_request_duration_seconds_sum{route=\"submit_task\"} 0.004\n"));
}

TEST(BrokerMetricsTest, RendersTheBrokerDocument) {
  json doc = {
      {"services",
       json::array(
           {{{"name", "echo"},
             {"providers", 2},
             {"queue_depth", 3},
             {"in_flight", 1},
             {"oldest_wait_s", 0.25},
             {"counters", {{"submitted", 10}, {"completed", 8}}},
             {"queue_wait",
              {{"bounds_s", {0.001, 0.01}}, {"cumulative", {4, 7}}, {"count", 8}, {"sum_s", 0.5}}},
             {"run_time",
              {{"bounds_s", {0.001, 0.01}},
               {"cumulative", {1, 2}},
               {"count", 2},
               {"sum_s", 0.01}}}}})},
      {"workers_by_tier", {{"1", 0}, {"2", 2}, {"3", 1}}},
      {"workers_by_health", {{"healthy", 3}, {"late", 0}, {"offline", 1}}},
      {"tasks_in_memory", 12},
      {"refusals", {{"not_lease_holder", 4}, {"handshake_refused", 2}}},
      {"budgets", {{"unfinished_tasks", {{"used", 5}, {"limit", 100000}}}}},
      {"store_available", true}};
  std::string out;
  RenderBrokerMetrics(doc, true, &out);
  EXPECT_TRUE(Contains(out, "rma_broker_up 1\n"));
  EXPECT_TRUE(Contains(out, "rma_tasks_submitted_total{service=\"echo\"} 10\n"));
  EXPECT_TRUE(Contains(out, "rma_tasks_completed_total{service=\"echo\"} 8\n"));
  EXPECT_FALSE(Contains(out, "rma_tasks_dead_total{"));  // absent from the document
  EXPECT_TRUE(Contains(out, "rma_queue_depth{service=\"echo\"} 3\n"));
  EXPECT_TRUE(Contains(out, "rma_queue_oldest_wait_seconds{service=\"echo\"} 0.25\n"));
  EXPECT_TRUE(
      Contains(out, "rma_task_queue_wait_seconds_bucket{service=\"echo\",le=\"0.01\"} 7\n"));
  EXPECT_TRUE(
      Contains(out, "rma_task_queue_wait_seconds_bucket{service=\"echo\",le=\"+Inf\"} 8\n"));
  EXPECT_TRUE(Contains(out, "rma_task_queue_wait_seconds_count{service=\"echo\"} 8\n"));
  EXPECT_TRUE(Contains(out, "rma_task_run_seconds_sum{service=\"echo\"} 0.01\n"));
  EXPECT_TRUE(Contains(out, "rma_workers{tier=\"2\"} 2\n"));
  EXPECT_TRUE(Contains(out, "rma_workers_by_health{health=\"offline\"} 1\n"));
  EXPECT_TRUE(Contains(out, "rma_broker_tasks_in_memory 12\n"));
  EXPECT_TRUE(Contains(out, "rma_broker_store_available 1\n"));
  EXPECT_TRUE(Contains(out, "rma_broker_refused_total{reason=\"not_lease_holder\"} 4\n"));
  EXPECT_TRUE(Contains(out, "rma_broker_refused_total{reason=\"handshake_refused\"} 2\n"));
  EXPECT_TRUE(Contains(out, "rma_broker_budget_used{budget=\"unfinished_tasks\"} 5\n"));
  EXPECT_TRUE(Contains(out, "rma_broker_budget_limit{budget=\"unfinished_tasks\"} 100000\n"));
}

TEST(BrokerMetricsTest, BrokerDownOrGarbageRendersOnlyUp) {
  std::string down;
  RenderBrokerMetrics(json::object(), false, &down);
  EXPECT_EQ(down,
            "# HELP rma_broker_up 1 when the broker answered the metrics query.\n"
            "# TYPE rma_broker_up gauge\nrma_broker_up 0\n");
  std::string garbage;
  RenderBrokerMetrics(json{{"services", 5}, {"workers_by_tier", "x"}}, true, &garbage);
  EXPECT_TRUE(Contains(garbage, "rma_broker_up 1\n"));
  EXPECT_FALSE(Contains(garbage, "service="));
}

TEST(MetricsFormatTest, EscapesLabelsAndFormatsNumbers) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(FormatSampleValue(3), "3");
  EXPECT_EQ(FormatSampleValue(0.25), "0.25");
  EXPECT_EQ(FormatSampleValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatSampleValue(1e20), "1e+20");
}

}  // namespace
}  // namespace rma::gateway
