// rma-gateway: reads the config file, environment and flags (flags win), starts the Gateway and
// serves until SIGINT or SIGTERM.
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <CLI/CLI.hpp>

#include <csignal>

#include "common/files.h"
#include "common/log.h"
#include "common/signals.h"
#include "common/version.h"
#include "gateway/gateway.h"
#include "protocol/broker_list.h"
#include "protocol/curve_keys.h"

namespace {

// Every waiting request holds a second descriptor of its connection (gateway.h): lift the soft
// descriptor limit to the hard one so a few hundred waiting calls do not run out.
void RaiseDescriptorLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) spdlog::warn("could not raise the descriptor limit");
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace rma;
  gateway::GatewayOptions defaults;
  gateway::BrokerClientOptions broker;
  std::string config_file;
  std::string broker_endpoint = broker.endpoint;
  std::string listen = defaults.listen;
  size_t threads = defaults.threads;
  size_t max_body_bytes = defaults.max_body_bytes;
  int64_t call_timeout_ms = ToMs(defaults.default_call_timeout);
  int64_t max_call_timeout_ms = ToMs(defaults.max_call_timeout);
  int64_t max_wait_ms = ToMs(defaults.max_wait);
  int64_t header_timeout_ms = ToMs(defaults.header_timeout);
  size_t max_pending = defaults.max_pending;
  std::vector<std::string> client_keys;
  std::vector<std::string> admin_keys;
  double rate_limit = 0;
  double rate_burst = 0;
  std::vector<std::string> cors_origins;
  bool public_metrics = false;
  bool allow_anonymous = false;
  size_t max_connections_per_ip = defaults.max_connections_per_ip;
  size_t large_body_budget = defaults.large_body_budget;
  std::string log_level = "info";
  std::string port_file;

  CLI::App app{
      "rma-gateway: the HTTP API, admin API, metrics and dashboard of an rma compute pool"};
  // "NAME VERSION", the first line help2man reads when it writes the man page.
  app.set_version_flag("--version", std::string("rma-gateway ") + kVersion);
  app.add_option("--config", config_file, "JSON config file (flags and environment override it)")
      ->envname("RMA_GATEWAY_CONFIG");
  auto* o_broker = app.add_option("--broker", broker_endpoint,
                                  "broker client endpoint, or several (A,B,C) of brokers run with "
                                  "--ha: the gateway follows the one that leads")
                       ->envname("RMA_BROKER")
                       ->capture_default_str();
  std::string broker_secret_file;
  app.add_option("--broker-secret-file", broker_secret_file,
                 "file holding the broker's client secret (its --client-secret; mode 600)")
      ->envname("RMA_BROKER_SECRET_FILE");
  std::string broker_key;
  std::string curve_secret_file;
  app.add_option("--broker-key", broker_key,
                 "the broker's CURVE public key (Z85, or a file holding it): encrypts the link to "
                 "the broker and logs in with this gateway's key (--curve-secret-file)")
      ->envname("RMA_BROKER_KEY");
  app.add_option("--curve-secret-file", curve_secret_file,
                 "this gateway's CURVE secret key, made on first start if missing (its public key "
                 "goes next to it as .pub, for the broker's --client-keys-file)")
      ->envname("RMA_CURVE_SECRET_FILE");
  auto* o_listen = app.add_option("--listen", listen,
                                  "HOST:PORT to serve HTTP on (port 0: any free port); default "
                                  "0.0.0.0:8080 with API keys, 127.0.0.1:8080 without")
                       ->envname("RMA_LISTEN");
  auto* o_threads = app.add_option("--threads", threads, "HTTP reactor threads")
                        ->envname("RMA_HTTP_THREADS")
                        ->capture_default_str()
                        ->check(CLI::Range(1, 64));
  auto* o_body = app.add_option("--max-body-bytes", max_body_bytes, "largest request body accepted")
                     ->envname("RMA_MAX_BODY_BYTES")
                     ->capture_default_str()
                     ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
  auto* o_call = app.add_option("--call-timeout-ms", call_timeout_ms,
                                "default timeout of synchronous service calls")
                     ->envname("RMA_CALL_TIMEOUT_MS")
                     ->capture_default_str()
                     ->check(CLI::Range(int64_t{1}, int64_t{3600000}));
  auto* o_max_call = app.add_option("--max-call-timeout-ms", max_call_timeout_ms,
                                    "largest X-RMA-Timeout a caller may ask for")
                         ->envname("RMA_MAX_CALL_TIMEOUT_MS")
                         ->capture_default_str()
                         ->check(CLI::Range(int64_t{1}, int64_t{3600000}));
  auto* o_wait = app.add_option("--max-wait-ms", max_wait_ms, "largest ?wait= of a long-poll")
                     ->envname("RMA_MAX_WAIT_MS")
                     ->capture_default_str()
                     ->check(CLI::Range(int64_t{0}, int64_t{3600000}));
  auto* o_header = app.add_option("--header-timeout-ms", header_timeout_ms,
                                  "a new connection must send a whole request within this time")
                       ->envname("RMA_HEADER_TIMEOUT_MS")
                       ->capture_default_str()
                       ->check(CLI::Range(int64_t{100}, int64_t{3600000}));
  auto* o_pending =
      app.add_option("--max-pending-requests", max_pending,
                     "requests that may wait for the broker at once; more get 503 + Retry-After")
          ->envname("RMA_MAX_PENDING_REQUESTS")
          ->capture_default_str()
          ->check(CLI::Range(size_t{1}, size_t{10000000}));
  app.add_option("--client-key", client_keys,
                 "client API key, KEY or KEY:NAME (repeatable; env: comma-separated)")
      ->envname("RMA_CLIENT_KEYS")
      ->delimiter(',');
  app.add_option("--admin-key", admin_keys,
                 "admin API key, KEY or KEY:NAME (repeatable; env: comma-separated)")
      ->envname("RMA_ADMIN_KEYS")
      ->delimiter(',');
  auto* o_rate = app.add_option("--rate-limit", rate_limit,
                                "requests per second per key (per address without keys); 0: none")
                     ->envname("RMA_RATE_LIMIT")
                     ->check(CLI::Range(0.0, 1e9));
  auto* o_burst = app.add_option("--rate-burst", rate_burst, "token bucket size (0: the rate)")
                      ->envname("RMA_RATE_BURST")
                      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--cors-origin", cors_origins,
                 "origin allowed to call the API from a browser, or * (repeatable)")
      ->envname("RMA_CORS_ORIGINS")
      ->delimiter(',');
  auto* o_public = app.add_flag("--public-metrics", public_metrics,
                                "serve /metrics without a key even when keys are configured")
                       ->envname("RMA_PUBLIC_METRICS");
  bool private_leaderboard = false;
  auto* o_private_board =
      app.add_flag("--private-leaderboard", private_leaderboard,
                   "GET /api/leaderboard needs an API key (by default anyone may read it)")
          ->envname("RMA_PRIVATE_LEADERBOARD");
  bool broker_accounts = false;
  auto* o_accounts =
      app.add_flag("--broker-accounts", broker_accounts,
                   "API keys come from the broker's accounts (a broker with --db): requests wait "
                   "for its key set and the API is never open, so the gateway may serve other "
                   "machines without static keys")
          ->envname("RMA_BROKER_ACCOUNTS");
  auto* o_anonymous =
      app.add_flag("--allow-anonymous", allow_anonymous,
                   "serve an open API (no API keys) on a non-loopback address or behind a proxy; "
                   "without it a gateway without keys serves loopback only")
          ->envname("RMA_ALLOW_ANONYMOUS");
  auto* o_per_ip = app.add_option("--max-connections-per-ip", max_connections_per_ip,
                                  "connections one client address may hold open (0: no limit)")
                       ->envname("RMA_MAX_CONNECTIONS_PER_IP")
                       ->capture_default_str()
                       ->check(CLI::Range(size_t{0}, size_t{1000000}));
  auto* o_budget =
      app.add_option("--large-body-budget-bytes", large_body_budget,
                     "bytes of large (> 256 KiB) request bodies held at once; more get 503 busy")
          ->envname("RMA_LARGE_BODY_BUDGET_BYTES")
          ->capture_default_str()
          ->check(CLI::Range(size_t{1} << 20, size_t{1} << 40));
  app.add_option("--port-file", port_file, "write the bound HTTP port here (useful with port 0)")
      ->envname("RMA_PORT_FILE");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->envname("RMA_LOG_LEVEL")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (Status s = SetUpLogging("gateway", log_level); !s.ok()) {
    std::fprintf(stderr, "rma-gateway: %s\n", s.message().c_str());
    return 2;
  }
  gateway::GatewayOptions options;
  if (!config_file.empty()) {
    if (Status s = gateway::LoadConfigFile(config_file, &options, &broker.endpoint); !s.ok()) {
      spdlog::error("{}", s.ToString());
      return 2;
    }
  }
  if (o_broker->count() > 0) broker.endpoint = broker_endpoint;
  if (auto brokers = proto::ParseBrokerList(broker.endpoint); !brokers.ok()) {
    spdlog::error("--broker: {}", brokers.status().message());
    return 2;
  }
  if (!broker_secret_file.empty()) {
    Result<std::string> secret = ReadSecretFile(broker_secret_file);
    if (!secret.ok()) {
      spdlog::error("--broker-secret-file: {}", secret.status().message());
      return 2;
    }
    broker.secret = std::move(*secret);
  }
  if (broker_key.empty() && !curve_secret_file.empty()) {
    spdlog::error("--curve-secret-file needs --broker-key (the broker's public key)");
    return 2;
  }
  if (!broker_key.empty()) {
    if (!broker.secret.empty()) {
      spdlog::error("--broker-key and --broker-secret-file: the broker takes one credential");
      return 2;
    }
    if (curve_secret_file.empty()) {
      spdlog::error("--broker-key needs --curve-secret-file (this gateway's own key)");
      return 2;
    }
    auto key = proto::ResolvePublicKey(broker_key);
    if (!key.ok()) {
      spdlog::error("--broker-key: {}", key.status().message());
      return 2;
    }
    auto mine = proto::LoadOrCreateSecretKeyFile(curve_secret_file);
    if (!mine.ok()) {
      spdlog::error("--curve-secret-file: {}", mine.status().message());
      return 2;
    }
    spdlog::info("CURVE: broker key {}, this gateway's key {}", *key, mine->public_key);
    broker.broker_key = std::move(*key);
    broker.curve = std::move(*mine);
  }
  if (o_listen->count() > 0) options.listen = listen;
  if (o_threads->count() > 0) options.threads = threads;
  if (o_body->count() > 0) options.max_body_bytes = max_body_bytes;
  if (o_call->count() > 0) options.default_call_timeout = Ms(call_timeout_ms);
  if (o_max_call->count() > 0) options.max_call_timeout = Ms(max_call_timeout_ms);
  if (o_wait->count() > 0) options.max_wait = Ms(max_wait_ms);
  if (o_header->count() > 0) options.header_timeout = Ms(header_timeout_ms);
  if (o_pending->count() > 0) options.max_pending = max_pending;
  if (o_rate->count() > 0) options.rate_limit.rate_per_s = rate_limit;
  if (o_burst->count() > 0) options.rate_limit.burst = rate_burst;
  if (o_public->count() > 0) options.public_metrics = public_metrics;
  if (o_private_board->count() > 0) options.private_leaderboard = private_leaderboard;
  if (o_anonymous->count() > 0) options.allow_anonymous = allow_anonymous;
  if (o_accounts->count() > 0) options.broker_accounts = broker_accounts;
  if (o_per_ip->count() > 0) options.max_connections_per_ip = max_connections_per_ip;
  if (o_budget->count() > 0) options.large_body_budget = large_body_budget;
  for (const std::string& k : client_keys) {
    options.api_keys.push_back(gateway::KeyFromFlag(k, gateway::Role::kClient));
  }
  for (const std::string& k : admin_keys) {
    options.api_keys.push_back(gateway::KeyFromFlag(k, gateway::Role::kAdmin));
  }
  options.cors_origins.insert(options.cors_origins.end(), cors_origins.begin(), cors_origins.end());
  if (options.default_call_timeout > options.max_call_timeout) {
    spdlog::error("--call-timeout-ms exceeds --max-call-timeout-ms");
    return 2;
  }
  broker.limits.max_payload_bytes = options.max_body_bytes;

  auto signals = SignalWatcher::Create({SIGINT, SIGTERM});
  if (!signals.ok()) {
    spdlog::error("{}", signals.status().ToString());
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);
  RaiseDescriptorLimit();
  // Large request bodies always get their own mappings, returned to the system when freed: glibc
  // would otherwise raise its mmap threshold after the first large free and keep such bodies in
  // per-thread heaps, so the process would grow with every thread that ever held one (the body
  // budget bounds what is held at once, not what the allocator keeps).
  mallopt(M_MMAP_THRESHOLD, 1 << 20);

  gateway::Gateway gw(options, broker);
  if (Status s = gw.Start(); !s.ok()) {
    spdlog::error("{}", s.ToString());
    return 1;
  }
  if (!port_file.empty()) {
    if (Status s = WriteFileAtomically(port_file, std::to_string(gw.port()) + "\n"); !s.ok()) {
      spdlog::error("{}", s.ToString());
      return 1;
    }
  }
  signals->Wait(-1);
  spdlog::info("gateway stopping");
  gw.Stop();
  return 0;
}
