// rma-worker: the agent a volunteer runs. Parses flags and environment, detects the machine (or
// declares a simulated one), builds the service handlers and runs the Agent until it has drained
// after SIGTERM/SIGINT.
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <csignal>

#include "common/log.h"
#include "common/signals.h"
#include "common/version.h"
#include "worker/agent.h"
#include "worker/detect.h"
#include "worker/identity.h"

int main(int argc, char** argv) {
  using namespace rma;
  using namespace rma::worker;
  AgentOptions options;
  std::vector<std::string> service_specs;
  std::string data_dir = DefaultDataDir();
  std::string simulate;
  std::string generic_spec = "builtin:echo";
  std::string log_level = "info";
  int64_t heartbeat_ms = 5000;
  int64_t drain_grace_ms = 30000;

  CLI::App app{"rma-worker: offer this machine's hardware and services to an rma compute pool"};
  app.set_version_flag("--version", std::string(kVersion));
  app.add_option("--broker", options.broker, "broker worker endpoint")
      ->envname("RMA_BROKER")
      ->capture_default_str();
  app.add_option("--service", service_specs,
                 "NAME=HANDLER, repeatable; HANDLER is builtin:echo|sleep|fail, "
                 "http://HOST:PORT[/health] or "
                 "exec:COMMAND")
      ->envname("RMA_SERVICES")
      ->delimiter(',');
  app.add_option("--slots", options.slots, "tasks run at once")
      ->envname("RMA_SLOTS")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--name", options.name, "human name shown on the dashboard (default: host name)")
      ->envname("RMA_NAME");
  app.add_option("--worker-id", options.worker_id, "identity (default: kept in --data-dir)")
      ->envname("RMA_WORKER_ID");
  app.add_option("--data-dir", data_dir, "where the identity is kept")
      ->envname("RMA_DATA_DIR")
      ->capture_default_str();
  app.add_option("--token", options.token, "worker token the broker expects")
      ->envname("RMA_WORKER_TOKEN");
  app.add_option("--simulate", simulate,
                 "declare simulated gpu|cpu|storage hardware (broker needs --allow-simulated)")
      ->envname("RMA_SIMULATE")
      ->check(CLI::IsMember({"gpu", "cpu", "storage"}));
  app.add_option("--generic", generic_spec,
                 "handler for generic work (gpu-worker, cpu-worker, processing)")
      ->envname("RMA_GENERIC")
      ->capture_default_str();
  app.add_option("--heartbeat-ms", heartbeat_ms, "heartbeat interval until the broker sets its own")
      ->envname("RMA_HEARTBEAT_MS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{3600000}));
  app.add_option("--drain-grace-ms", drain_grace_ms,
                 "on SIGTERM, how long in-flight tasks may finish")
      ->envname("RMA_DRAIN_GRACE_MS")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->envname("RMA_LOG_LEVEL")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (Status s = SetUpLogging("worker", log_level); !s.ok()) {
    std::fprintf(stderr, "rma-worker: %s\n", s.message().c_str());
    return 2;
  }
  auto signals = SignalWatcher::Create({SIGINT, SIGTERM});
  if (!signals.ok()) {
    spdlog::error("{}", signals.status().ToString());
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);

  if (options.worker_id.empty()) {
    auto id = LoadOrCreateWorkerId(data_dir);
    if (!id.ok()) {
      spdlog::error("{}", id.status().message());
      return 1;
    }
    options.worker_id = *id;
  }
  if (options.name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    options.name = host;
  }
  if (!simulate.empty()) {
    auto caps = SimulatedCapabilities(simulate);
    if (!caps.ok()) {
      spdlog::error("{}", caps.status().message());
      return 2;
    }
    options.capabilities = *caps;
    options.simulated = true;
  } else {
    options.capabilities = DetectCapabilities(data_dir);
  }
  const proto::Capabilities& c = options.capabilities;
  spdlog::info(
      "{}: {} cores ({}), {:.1f} GB RAM ({:.1f} available), {:.0f} GB disk ({:.0f} free), {}, {}",
      options.simulated ? "declared (simulated)" : "detected", c.cpu_cores, c.cpu_model, c.ram_gb,
      c.ram_available_gb, c.disk_gb, c.disk_free_gb, c.has_gpu ? c.gpu_type : "no GPU",
      c.os + " " + c.arch);

  std::vector<ServiceBinding> services;
  for (const std::string& spec : service_specs) {
    size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      spdlog::error("--service '{}' must be NAME=HANDLER", spec);
      return 2;
    }
    std::string name = spec.substr(0, eq);
    auto handler = MakeHandler(spec.substr(eq + 1));
    if (!handler.ok()) {
      spdlog::error("--service {}: {}", name, handler.status().message());
      return 2;
    }
    services.push_back({name, spec.substr(eq + 1), *handler, true});
  }
  auto generic = MakeHandler(generic_spec);
  if (!generic.ok()) {
    spdlog::error("--generic: {}", generic.status().message());
    return 2;
  }
  options.generic_handler = *generic;
  options.heartbeat = Ms(heartbeat_ms);
  options.drain_grace = Ms(drain_grace_ms);

  SystemClock clock;
  Agent agent(std::move(options), std::move(services), &clock);
  Status s = agent.Run(*signals);
  if (!s.ok()) {
    spdlog::error("{}", s.ToString());
    return 1;
  }
  return 0;
}
