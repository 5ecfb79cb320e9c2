// rma-gateway: parses flags and environment, starts the Gateway and serves until SIGINT or SIGTERM.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <csignal>

#include "common/files.h"
#include "common/log.h"
#include "common/signals.h"
#include "common/version.h"
#include "gateway/gateway.h"

int main(int argc, char** argv) {
  using namespace rma;
  gateway::GatewayOptions options;
  gateway::BrokerClientOptions broker;
  std::string log_level = "info";
  std::string port_file;
  int64_t call_timeout_ms = 30000;

  CLI::App app{
      "rma-gateway: the HTTP API, admin API, metrics and dashboard of an rma compute pool"};
  app.set_version_flag("--version", std::string(kVersion));
  app.add_option("--broker", broker.endpoint, "broker client endpoint")
      ->envname("RMA_BROKER")
      ->capture_default_str();
  app.add_option("--listen", options.listen, "HOST:PORT to serve HTTP on (port 0: any free port)")
      ->envname("RMA_LISTEN")
      ->capture_default_str();
  app.add_option("--threads", options.threads, "HTTP reactor threads")
      ->envname("RMA_HTTP_THREADS")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--max-body-bytes", options.max_body_bytes, "largest request body accepted")
      ->envname("RMA_MAX_BODY_BYTES")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
  app.add_option("--call-timeout-ms", call_timeout_ms,
                 "default timeout of synchronous service calls")
      ->envname("RMA_CALL_TIMEOUT_MS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{300000}));
  app.add_option("--port-file", port_file, "write the bound HTTP port here (useful with port 0)")
      ->envname("RMA_PORT_FILE");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->envname("RMA_LOG_LEVEL")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (Status s = SetUpLogging("gateway", log_level); !s.ok()) {
    std::fprintf(stderr, "rma-gateway: %s\n", s.message().c_str());
    return 2;
  }
  options.default_call_timeout = Ms(call_timeout_ms);
  broker.limits.max_payload_bytes = options.max_body_bytes;
  auto signals = SignalWatcher::Create({SIGINT, SIGTERM});
  if (!signals.ok()) {
    spdlog::error("{}", signals.status().ToString());
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);

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
