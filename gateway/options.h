// GatewayOptions: every tunable of rma-gateway, with the defaults documented in
// docs/configuration.md ("rma-gateway"). Filled by main.cc from a JSON config file, RMA_*
// environment variables and flags (in that order of precedence, flags last); read-only once the
// gateway starts.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "gateway/auth.h"
#include "gateway/rate_limiter.h"

namespace rma::gateway {

struct GatewayOptions {
  // HOST:PORT; port 0 picks a free one (see Gateway::port). "" (not given): 0.0.0.0:8080 when API
  // keys are configured, 127.0.0.1:8080 when not (see CheckExposure).
  std::string listen;
  size_t threads = 2;                           // Pistache reactor threads
  size_t max_body_bytes = 16u << 20;            // largest request body
  size_t max_header_bytes = 64u << 10;          // request line and headers
  Duration submit_timeout = Seconds(10);        // how long to wait for the broker's answer
  Duration default_call_timeout = Seconds(30);  // synchronous service calls without X-RMA-Timeout
  Duration max_call_timeout = Seconds(300);     // largest X-RMA-Timeout
  Duration max_wait = Seconds(300);             // GET /api/tasks/{id}?wait=S upper bound
  Duration header_timeout = Seconds(60);  // a new connection must send a whole request this fast
  Duration metrics_timeout = Seconds(2);  // /metrics waits this long for the broker's part
  size_t max_pending =
      20000;  // requests waiting for the broker at once; more get 503 + Retry-After

  // Connections from one client address at once; more are answered 503 and closed. 0 = no limit
  // (behind a reverse proxy every connection comes from the proxy's address).
  size_t max_connections_per_ip = 256;
  // Bodies larger than this are parsed and encoded on the parse pool, never on a reactor thread,
  // and count against large_body_budget.
  size_t large_body_bytes = 256u << 10;
  // Bytes of large bodies held at once (received, parsed or on their way to the broker); a request
  // whose body does not fit gets 503 busy + Retry-After before its body is read.
  size_t large_body_budget = 128u << 20;

  std::vector<ApiKey> api_keys;  // none: the API is open, and served on loopback only
  bool allow_anonymous = false;  // serve an open API (no keys) on any address and Host
  RateLimit rate_limit;          // per key (per client address without keys); 0 = unlimited
  std::vector<std::string> cors_origins;  // "*" = any
  bool public_metrics = false;            // /metrics without a key even when keys are configured
  // GET /api/leaderboard needs a key (any valid one) instead of being public.
  bool private_leaderboard = false;
  // Keys come from the broker's accounts (broker_keys.h): requests wait for the broker's key set
  // (503 until it arrives) and are never served open; counts as keys for the listen rule.
  bool broker_accounts = false;
};

inline constexpr std::string_view kDefaultListenWithKeys = "0.0.0.0:8080";
inline constexpr std::string_view kDefaultListenWithoutKeys = "127.0.0.1:8080";

// Whether HOST:PORT names a loopback address only: "localhost", 127.0.0.0/8 or [::1].
bool IsLoopbackListen(std::string_view listen);
// Whether a Host header ("127.0.0.1:8080", "localhost", "[::1]:80") names this machine's loopback.
bool IsLoopbackHost(std::string_view host);

// The address to listen on, or why the gateway must not start: with no API key it serves loopback
// only (an open API on a public address would let anyone use the pool) unless allow_anonymous.
// `warning` is set when the choice deserves one in the log.
Result<std::string> CheckExposure(const GatewayOptions& options, std::string* warning);

// Applies a config file's JSON object to `options` (and the broker endpoint). Unknown keys and
// wrongly typed values are errors; absent keys leave the defaults.
Status ApplyConfigJson(const nlohmann::json& j, GatewayOptions* options,
                       std::string* broker_endpoint);
Status LoadConfigFile(const std::string& path, GatewayOptions* options,
                      std::string* broker_endpoint);

// "key" or "key:name" items of --client-key/--admin-key and RMA_CLIENT_KEYS/RMA_ADMIN_KEYS.
ApiKey KeyFromFlag(const std::string& item, Role role);

}  // namespace rma::gateway
