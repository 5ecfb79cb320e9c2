// /metrics in the Prometheus text exposition format (version 0.0.4): the gateway's own HTTP metrics
// (requests by route and status code, latency histograms by route, pending requests, dropped
// answers) and the pool's metrics from the broker's `metrics` admin document (per-service counters,
// queue depth, in-flight, oldest wait, queue-wait and run-time histograms, workers by tier and
// health). docs/operations.md ("Monitoring") lists every family.
//
// HttpMetrics is recorded from every thread with relaxed atomics (no locks on the request path);
// the render functions are pure.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"

namespace rma::gateway {

class HttpMetrics {
 public:
  // Upper bounds of the latency buckets, in seconds (+Inf implied).
  static const std::vector<double>& LatencyBounds();

  // `route_names`: one label per route index; index route_names.size() is "none" (unrouted).
  explicit HttpMetrics(std::vector<std::string> route_names);

  // route: an index into route_names, or -1 for a request no route took.
  void Record(int route, int status, Duration latency);

  // Appends rma_gateway_http_requests_total and rma_gateway_http_request_duration_seconds.
  void Render(std::string* out) const;

  uint64_t requests(int route, int status) const;

 private:
  static constexpr int kMinStatus = 100;
  static constexpr int kStatuses = 500;  // 100..599
  struct PerRoute {
    std::array<std::atomic<uint64_t>, kStatuses> by_status{};
    std::vector<std::atomic<uint64_t>> buckets;  // per bound, plus +Inf; not cumulative
    std::atomic<uint64_t> sum_us{0};
    std::atomic<uint64_t> count{0};
    explicit PerRoute(size_t bounds) : buckets(bounds + 1) {}
  };
  size_t Slot(int route) const;

  std::vector<std::string> names_;
  std::vector<std::unique_ptr<PerRoute>> routes_;
};

// Gauges and counters the gateway reads when /metrics is asked for.
struct GatewayGauges {
  size_t pending_requests = 0;  // waiting for the broker
  size_t pending_writes = 0;    // answers still being written to slow readers
  uint64_t dropped_responses = 0;
  bool broker_reachable = false;
  uint64_t broker_switches = 0;  // times the gateway moved to another broker endpoint (--ha)
  double start_time_s = 0;       // Unix seconds
  std::string version;
};

void RenderGatewayGauges(const GatewayGauges& g, std::string* out);

// Appends the pool's metrics from the broker's `metrics` document; `broker_up` false appends only
// rma_broker_up 0. Fields missing from the document are left out, never invented.
void RenderBrokerMetrics(const nlohmann::json& doc, bool broker_up, std::string* out);

// A Prometheus label value with \, " and newlines escaped.
std::string EscapeLabelValue(std::string_view v);
// A sample value: integers without a fraction, others in shortest form, +Inf/-Inf/NaN.
std::string FormatSampleValue(double v);

}  // namespace rma::gateway
