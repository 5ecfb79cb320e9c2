// See metrics.h.
#include "gateway/metrics.h"

#include <charconv>
#include <cmath>

namespace rma::gateway {

using nlohmann::json;

namespace {

void Family(std::string* out, std::string_view name, std::string_view type, std::string_view help) {
  *out += "# HELP ";
  *out += name;
  *out += ' ';
  *out += help;
  *out += "\n# TYPE ";
  *out += name;
  *out += ' ';
  *out += type;
  *out += '\n';
}

// name{labels} value — `labels` already formatted (`a="b",c="d"`) or empty.
void Sample(std::string* out, std::string_view name, std::string_view labels, double value) {
  *out += name;
  if (!labels.empty()) {
    *out += '{';
    *out += labels;
    *out += '}';
  }
  *out += ' ';
  *out += FormatSampleValue(value);
  *out += '\n';
}

std::string Label(std::string_view name, std::string_view value) {
  std::string l(name);
  l += "=\"";
  l += EscapeLabelValue(value);
  l += '"';
  return l;
}

double Number(const json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0;
}

bool Has(const json& j, const char* key) { return j.is_object() && j.contains(key); }

}  // namespace

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatSampleValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, ptr) : std::to_string(v);
}

const std::vector<double>& HttpMetrics::LatencyBounds() {
  static const std::vector<double> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                              0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                              5,      10,    30,     60,    120,  300};
  return kBounds;
}

HttpMetrics::HttpMetrics(std::vector<std::string> route_names) : names_(std::move(route_names)) {
  names_.emplace_back("none");
  for (size_t i = 0; i < names_.size(); ++i) {
    routes_.push_back(std::make_unique<PerRoute>(LatencyBounds().size()));
  }
}

size_t HttpMetrics::Slot(int route) const {
  if (route < 0 || static_cast<size_t>(route) >= routes_.size() - 1) return routes_.size() - 1;
  return static_cast<size_t>(route);
}

void HttpMetrics::Record(int route, int status, Duration latency) {
  PerRoute& r = *routes_[Slot(route)];
  if (status < kMinStatus || status >= kMinStatus + kStatuses) status = 500;
  r.by_status[static_cast<size_t>(status - kMinStatus)].fetch_add(1, std::memory_order_relaxed);
  const double secs = ToSecondsF(latency);
  const auto& bounds = LatencyBounds();
  size_t b = 0;
  while (b < bounds.size() && secs > bounds[b]) ++b;
  r.buckets[b].fetch_add(1, std::memory_order_relaxed);
  r.sum_us.fetch_add(static_cast<uint64_t>(std::max<int64_t>(0, latency.count())),
                     std::memory_order_relaxed);
  r.count.fetch_add(1, std::memory_order_relaxed);
}

uint64_t HttpMetrics::requests(int route, int status) const {
  if (status < kMinStatus || status >= kMinStatus + kStatuses) return 0;
  return routes_[Slot(route)]->by_status[static_cast<size_t>(status - kMinStatus)].load();
}

void HttpMetrics::Render(std::string* out) const {
  Family(out, "rma_gateway_http_requests_total", "counter",
         "HTTP requests answered by the gateway, by route and status code.");
  for (size_t i = 0; i < routes_.size(); ++i) {
    for (int s = 0; s < kStatuses; ++s) {
      uint64_t n = routes_[i]->by_status[static_cast<size_t>(s)].load(std::memory_order_relaxed);
      if (n == 0) continue;
      Sample(out, "rma_gateway_http_requests_total",
             Label("route", names_[i]) + "," + Label("code", std::to_string(s + kMinStatus)),
             static_cast<double>(n));
    }
  }
  Family(out, "rma_gateway_http_request_duration_seconds", "histogram",
         "Time from a request's arrival to its answer being written, by route.");
  const auto& bounds = LatencyBounds();
  for (size_t i = 0; i < routes_.size(); ++i) {
    const PerRoute& r = *routes_[i];
    uint64_t count = r.count.load(std::memory_order_relaxed);
    if (count == 0) continue;
    const std::string route = Label("route", names_[i]);
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= bounds.size(); ++b) {
      cumulative += r.buckets[b].load(std::memory_order_relaxed);
      std::string le = b < bounds.size() ? FormatSampleValue(bounds[b]) : "+Inf";
      Sample(out, "rma_gateway_http_request_duration_seconds_bucket", route + "," + Label("le", le),
             static_cast<double>(cumulative));
    }
    // The count is the +Inf bucket, so the two always agree even while requests are recorded.
    Sample(out, "rma_gateway_http_request_duration_seconds_sum", route,
           static_cast<double>(r.sum_us.load(std::memory_order_relaxed)) / 1e6);
    Sample(out, "rma_gateway_http_request_duration_seconds_count", route,
           static_cast<double>(cumulative));
  }
}

void RenderGatewayGauges(const GatewayGauges& g, std::string* out) {
  Family(out, "rma_gateway_pending_requests", "gauge",
         "Requests waiting for the broker (submissions, long-polls, synchronous calls).");
  Sample(out, "rma_gateway_pending_requests", "", static_cast<double>(g.pending_requests));
  Family(out, "rma_gateway_pending_writes", "gauge",
         "Answers still being written to clients that read slowly.");
  Sample(out, "rma_gateway_pending_writes", "", static_cast<double>(g.pending_writes));
  Family(out, "rma_gateway_dropped_responses_total", "counter",
         "Answers not delivered because the client had gone or stopped reading.");
  Sample(out, "rma_gateway_dropped_responses_total", "", static_cast<double>(g.dropped_responses));
  Family(out, "rma_gateway_broker_reachable", "gauge",
         "1 when the broker answered the gateway's heartbeats recently.");
  Sample(out, "rma_gateway_broker_reachable", "", g.broker_reachable ? 1 : 0);
  Family(out, "rma_gateway_broker_switches_total", "counter",
         "Times the gateway moved to another of its broker endpoints (a standby answered, or the "
         "leader was lost).");
  Sample(out, "rma_gateway_broker_switches_total", "", static_cast<double>(g.broker_switches));
  Family(out, "rma_gateway_start_time_seconds", "gauge",
         "Start time of the gateway process, in Unix seconds.");
  Sample(out, "rma_gateway_start_time_seconds", "", g.start_time_s);
  Family(out, "rma_gateway_build_info", "gauge", "Always 1; the version is in the label.");
  Sample(out, "rma_gateway_build_info", Label("version", g.version), 1);
}

void RenderBrokerMetrics(const json& doc, bool broker_up, std::string* out) {
  Family(out, "rma_broker_up", "gauge", "1 when the broker answered the metrics query.");
  Sample(out, "rma_broker_up", "", broker_up ? 1 : 0);
  if (!broker_up || !doc.is_object()) return;

  const json empty_array = json::array();
  const json& services =
      Has(doc, "services") && doc["services"].is_array() ? doc["services"] : empty_array;
  auto service_label = [](const json& s) {
    return Label("service", s.is_object() && s.contains("name") && s["name"].is_string()
                                ? s["name"].get<std::string>()
                                : std::string());
  };

  static constexpr std::pair<const char*, const char*> kCounters[] = {
      {"submitted", "Tasks submitted (including synchronous calls)."},
      {"completed", "Tasks completed with a result."},
      {"failed", "Attempts that failed (each retry counts)."},
      {"retried", "Retries scheduled after a failed attempt."},
      {"dead", "Tasks dead-lettered after max_attempts failures."},
      {"cancelled", "Tasks cancelled by a client or an admin."},
      {"expired", "Tasks that waited longer than the maximum queue time."},
      {"requeued", "Tasks given back to their queue because their worker was lost."},
      {"rejected", "Submissions refused (no provider for a call, queue full, bad input)."},
  };
  for (const auto& [key, help] : kCounters) {
    const std::string name = std::string("rma_tasks_") + key + "_total";
    Family(out, name, "counter", help);
    for (const json& s : services) {
      if (!Has(s, "counters") || !Has(s["counters"], key)) continue;
      Sample(out, name, service_label(s), Number(s["counters"], key));
    }
  }
  static constexpr std::array<std::array<const char*, 3>, 4> kGauges = {{
      {"queue_depth", "rma_queue_depth",
       "Tasks waiting in the service's queue (including delayed)."},
      {"in_flight", "rma_tasks_in_flight", "Tasks running on workers."},
      {"oldest_wait_s", "rma_queue_oldest_wait_seconds",
       "How long the oldest queued task has waited."},
      {"providers", "rma_service_providers", "Live workers that provide the service."},
  }};
  for (const auto& [key, name, help] : kGauges) {
    Family(out, name, "gauge", help);
    for (const json& s : services) {
      if (!Has(s, key)) continue;
      Sample(out, name, service_label(s), Number(s, key));
    }
  }
  static constexpr std::array<std::array<const char*, 3>, 2> kHistograms = {{
      {"queue_wait", "rma_task_queue_wait_seconds",
       "Time tasks waited in the queue before running."},
      {"run_time", "rma_task_run_seconds", "Time tasks ran on a worker."},
  }};
  for (const auto& [key, name, help] : kHistograms) {
    Family(out, name, "histogram", help);
    for (const json& s : services) {
      if (!Has(s, key)) continue;
      const json& h = s[key];
      if (!Has(h, "bounds_s") || !Has(h, "cumulative") || !h["bounds_s"].is_array() ||
          !h["cumulative"].is_array() || h["bounds_s"].size() != h["cumulative"].size()) {
        continue;
      }
      const std::string label = service_label(s);
      const std::string bucket = std::string(name) + "_bucket";
      double last = 0;
      for (size_t i = 0; i < h["bounds_s"].size(); ++i) {
        const json& bound = h["bounds_s"][i];
        const json& count = h["cumulative"][i];
        if (!bound.is_number() || !count.is_number()) continue;
        last = std::max(last, count.get<double>());
        Sample(out, bucket, label + "," + Label("le", FormatSampleValue(bound.get<double>())),
               last);
      }
      const double total = std::max(last, Number(h, "count"));
      Sample(out, bucket, label + "," + Label("le", "+Inf"), total);
      Sample(out, std::string(name) + "_sum", label, Number(h, "sum_s"));
      Sample(out, std::string(name) + "_count", label, total);
    }
  }
  // A family with one sample per key of an object of counts: {"<label value>": n, ...}.
  auto by_label = [&](const char* key, const char* name, const char* type, const char* help,
                      const char* label) {
    if (!Has(doc, key) || !doc[key].is_object()) return;
    Family(out, name, type, help);
    for (const auto& [value, n] : doc[key].items()) {
      if (n.is_number()) Sample(out, name, Label(label, value), n.get<double>());
    }
  };
  by_label("workers_by_tier", "rma_workers", "gauge",
           "Live workers by tier (1 GPU, 2 CPU, 3 storage).", "tier");
  by_label("workers_by_health", "rma_workers_by_health", "gauge",
           "Known workers by health (healthy, late, offline).", "health");
  by_label("workers_by_reputation", "rma_workers_by_reputation", "gauge",
           "Known workers by reputation state (good, probation, suspect, quarantined, banned).",
           "state");
  by_label("reputation_transitions", "rma_reputation_transitions_total", "counter",
           "Worker reputation changes, by the state entered.", "to");
  by_label("verifications", "rma_verifications_total", "counter",
           "Verification by replication: results sampled, and how their checks ended (agreed, "
           "tie_broken, no_majority, unverified).",
           "outcome");
  if (Has(doc, "workers") && doc["workers"].is_array()) {
    // One series per known worker (live, late or offline until the broker's
    // --offline-retention-ms): what "worker X has been offline for 5 minutes" alerts on.
    Family(out, "rma_worker_up", "gauge", "1 while the worker is live, 0 once it is offline.");
    auto worker_labels = [](const json& w, bool with_tier) {
      auto text = [&](const char* key) {
        return w.contains(key) && w[key].is_string() ? w[key].get<std::string>() : std::string();
      };
      std::string labels =
          Label("worker_id", text("worker_id")) + "," + Label("name", text("name"));
      if (with_tier) labels += "," + Label("tier", FormatSampleValue(Number(w, "tier")));
      return labels;
    };
    for (const json& w : doc["workers"]) {
      if (!w.is_object()) continue;
      const bool alive = w.contains("alive") && w["alive"].is_boolean() && w["alive"].get<bool>();
      Sample(out, "rma_worker_up", worker_labels(w, true), alive ? 1 : 0);
    }
    Family(out, "rma_worker_heartbeat_age_seconds", "gauge",
           "Seconds since the broker last heard from the worker.");
    for (const json& w : doc["workers"]) {
      if (!w.is_object()) continue;
      Sample(out, "rma_worker_heartbeat_age_seconds", worker_labels(w, false),
             Number(w, "heartbeat_age_s"));
    }
  }
  if (Has(doc, "tasks_in_memory")) {
    Family(out, "rma_broker_tasks_in_memory", "gauge",
           "Tasks the broker holds in memory (queued, running and recently finished).");
    Sample(out, "rma_broker_tasks_in_memory", "", Number(doc, "tasks_in_memory"));
  }
  if (Has(doc, "refusals") && doc["refusals"].is_object()) {
    Family(out, "rma_broker_refused_total", "counter",
           "Peer messages and connections the broker refused, by reason (docs/security.md).");
    for (const auto& [reason, count] : doc["refusals"].items()) {
      if (count.is_number())
        Sample(out, "rma_broker_refused_total", Label("reason", reason), count.get<double>());
    }
  }
  if (Has(doc, "budgets") && doc["budgets"].is_object()) {
    Family(out, "rma_broker_budget_used", "gauge",
           "What each broker budget holds now (docs/configuration.md, Budgets).");
    for (const auto& [name, b] : doc["budgets"].items()) {
      if (Has(b, "used"))
        Sample(out, "rma_broker_budget_used", Label("budget", name), Number(b, "used"));
    }
    Family(out, "rma_broker_budget_limit", "gauge", "Each broker budget's limit.");
    for (const auto& [name, b] : doc["budgets"].items()) {
      if (Has(b, "limit"))
        Sample(out, "rma_broker_budget_limit", Label("budget", name), Number(b, "limit"));
    }
  }
  if (Has(doc, "store_available") && doc["store_available"].is_boolean()) {
    Family(out, "rma_broker_store_available", "gauge",
           "1 when the broker's task store accepts writes.");
    Sample(out, "rma_broker_store_available", "", doc["store_available"].get<bool>() ? 1 : 0);
  }
  // High availability: the broker that answered leads (a standby answers nothing but not_leader).
  if (Has(doc, "ha") && doc["ha"].is_object() && Has(doc["ha"], "epoch")) {
    Family(out, "rma_broker_ha_epoch", "gauge",
           "The epoch of the leading broker (--ha); it grows by one at every takeover.");
    Sample(out, "rma_broker_ha_epoch", "", Number(doc["ha"], "epoch"));
  }
}

}  // namespace rma::gateway
