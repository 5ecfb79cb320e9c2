// GatewayOptions: every tunable of rma-gateway, with the defaults documented in
// docs/configuration.md ("rma-gateway"). Filled by main.cc from a JSON config file, RMA_*
// environment variables and flags (in that order of precedence, flags last); read-only once the
// gateway starts.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "gateway/auth.h"
#include "gateway/rate_limiter.h"

namespace rma::gateway {

struct GatewayOptions {
  std::string listen = "0.0.0.0:8080";    // HOST:PORT; port 0 picks a free one (see Gateway::port)
  size_t threads = 2;                     // Pistache reactor threads
  size_t max_body_bytes = 16u << 20;      // largest request body
  size_t max_header_bytes = 64u << 10;    // request line and headers
  Duration submit_timeout = Seconds(10);  // how long to wait for the broker's answer
  Duration default_call_timeout = Seconds(30);  // synchronous service calls without X-RMA-Timeout
  Duration max_call_timeout = Seconds(300);     // largest X-RMA-Timeout
  Duration max_wait = Seconds(300);             // GET /api/tasks/{id}?wait=S upper bound
  Duration header_timeout = Seconds(60);  // a new connection must send a whole request this fast
  Duration metrics_timeout = Seconds(2);  // /metrics waits this long for the broker's part
  size_t max_pending =
      20000;  // requests waiting for the broker at once; more get 503 + Retry-After

  std::vector<ApiKey> api_keys;  // none: the API is open (development)
  RateLimit rate_limit;          // per key (per client address without keys); 0 = unlimited
  std::vector<std::string> cors_origins;  // "*" = any
  bool public_metrics = false;            // /metrics without a key even when keys are configured
};

// Applies a config file's JSON object to `options` (and the broker endpoint). Unknown keys and
// wrongly typed values are errors; absent keys leave the defaults.
Status ApplyConfigJson(const nlohmann::json& j, GatewayOptions* options,
                       std::string* broker_endpoint);
Status LoadConfigFile(const std::string& path, GatewayOptions* options,
                      std::string* broker_endpoint);

// "key" or "key:name" items of --client-key/--admin-key and RMA_CLIENT_KEYS/RMA_ADMIN_KEYS.
ApiKey KeyFromFlag(const std::string& item, Role role);

}  // namespace rma::gateway
