// rma-worker: the agent a volunteer runs. Parses flags, RMA_* environment variables and the JSON
// config file (flags and environment win over the file), detects the machine (or declares a
// simulated one), builds the service handlers and runs the Agent until it has drained after
// SIGTERM/SIGINT. Exit codes: 0 after a drain, 1 when a runtime error stopped it, 2 for bad
// configuration, 3 when the broker refused the worker (restarting cannot help either way).
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <csignal>
#include <map>
#include <thread>

#include "common/files.h"
#include "common/log.h"
#include "common/signals.h"
#include "common/version.h"
#include "protocol/broker_list.h"
#include "protocol/curve_keys.h"
#include "worker/agent.h"
#include "worker/config.h"
#include "worker/detect.h"
#include "worker/gpu.h"
#include "worker/identity.h"

namespace {

using namespace rma;
using namespace rma::worker;

// Applies a config-file value to a flag that was given neither on the command line nor in the
// environment.
template <typename T, typename U>
void FromFile(CLI::App& app, const char* flag, const std::optional<U>& file_value, T* target) {
  if (file_value && app.get_option(flag)->count() == 0) *target = static_cast<T>(*file_value);
}

std::string GpuLine(const std::vector<GpuInfo>& gpus, const GpuSource* source) {
  if (source == nullptr) return "GPU: none (no NVIDIA driver library, no nvidia-smi)";
  if (gpus.empty()) return "GPU: none (" + std::string(source->name()) + " reports no device)";
  std::string line = "GPU (via " + std::string(source->name()) + "):";
  for (size_t i = 0; i < gpus.size(); ++i) {
    line += fmt::format(" [{}] {} {:.1f} GB, {:.0f}% busy", i, gpus[i].name, gpus[i].memory_gb,
                        gpus[i].utilization * 100);
  }
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  AgentOptions options;
  SessionOptions& session = options.session;
  // One task per core by default: right for exec and CPU-bound backends; an http backend that
  // batches (vLLM) or a builtin can take more (--slots).
  session.slots = std::max(1u, std::thread::hardware_concurrency());
  std::string config_path;
  std::vector<std::string> service_flags;
  std::vector<std::string> label_flags;
  std::string data_dir = DefaultDataDir();
  std::string simulate;
  std::string worker_type;
  std::string generic_spec = "builtin:echo";
  std::string log_level = "info";
  int64_t heartbeat_ms = 5000;
  int64_t drain_grace_ms = 30000;
  int64_t health_interval_ms = 5000;
  int64_t health_timeout_ms = 2000;
  uint32_t health_failures = 2;
  int64_t connect_timeout_ms = 2000;
  int64_t max_output_bytes = 16 << 20;

  CLI::App app{"rma-worker: offer this machine's hardware and services to an rma compute pool"};
  // "NAME VERSION", the first line help2man reads when it writes the man page.
  app.set_version_flag("--version", std::string("rma-worker ") + kVersion);
  app.add_option("--config", config_path, "JSON configuration file (flags win over it)")
      ->envname("RMA_CONFIG");
  app.add_option("--broker", options.broker,
                 "broker worker endpoint, or several (A,B,C) of brokers run with --ha: the worker "
                 "follows the one that leads")
      ->envname("RMA_BROKER")
      ->capture_default_str();
  app.add_option("--service", service_flags,
                 "NAME=HANDLER, repeatable; HANDLER is builtin:echo|sleep|fail, "
                 "http://HOST:PORT[/BASE][#/HEALTH] or exec:COMMAND (environment: RMA_SERVICES, "
                 "entries separated by commas)");
  std::vector<std::string> model_flags;
  app.add_option(
      "--model", model_flags,
      "NAME=MODEL, repeatable: service NAME serves MODEL (without any, an http service's "
      "models are read from its backend's /v1/models)");
  app.add_option("--slots", session.slots, "tasks run at once (default: this machine's cores)")
      ->envname("RMA_SLOTS")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--name", session.name, "human name shown on the dashboard (default: host name)")
      ->envname("RMA_NAME");
  app.add_option("--worker-id", session.worker_id, "identity (default: kept in --data-dir)")
      ->envname("RMA_WORKER_ID");
  app.add_option("--data-dir", data_dir, "where the identity is kept")
      ->envname("RMA_DATA_DIR")
      ->capture_default_str();
  std::string token_file;
  app.add_option("--token", session.token,
                 "worker token the broker expects (prefer --token-file: a flag shows in the "
                 "process list)")
      ->envname("RMA_WORKER_TOKEN");
  std::string broker_key;
  app.add_option("--broker-key", broker_key,
                 "the broker's CURVE public key (Z85, or a file holding it): encrypts the link; "
                 "this worker's own key is made in --data-dir (worker.key) on first start")
      ->envname("RMA_BROKER_KEY");
  app.add_option("--token-file", token_file, "file holding the worker token (mode 600)")
      ->envname("RMA_WORKER_TOKEN_FILE");
  std::string enrol_token;
  app.add_option("--enrol", enrol_token,
                 "one-time enrolment token from the pool's operator (rma_enrol_...): the broker "
                 "binds this worker's key to the token's account; needs --broker-key")
      ->envname("RMA_ENROL_TOKEN");
  bool new_key = false;
  app.add_flag("--new-key", new_key,
               "replace this worker's key (worker.key in --data-dir) with a new one, for a key "
               "that was revoked or leaked; the new key needs enrolling (--enrol) too");
  app.add_option("--simulate", simulate,
                 "declare simulated gpu|cpu|storage hardware (broker needs --allow-simulated)")
      ->envname("RMA_SIMULATE")
      ->check(CLI::IsMember({"gpu", "cpu", "storage"}));
  app.add_option("--worker-type", worker_type,
                 "declare the worker gpu|cpu|storage (the broker still checks the hardware)")
      ->envname("RMA_WORKER_TYPE")
      ->check(CLI::IsMember({"gpu", "cpu", "storage"}));
  app.add_option("--label", label_flags, "KEY=VALUE shown with the worker, repeatable");
  app.add_option("--generic", generic_spec,
                 "handler for generic work (gpu-worker, cpu-worker, processing)")
      ->envname("RMA_GENERIC")
      ->capture_default_str();
  app.add_option("--heartbeat-ms", heartbeat_ms, "heartbeat interval until the broker sets its own")
      ->envname("RMA_HEARTBEAT_MS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}));
  app.add_option("--drain-grace-ms", drain_grace_ms,
                 "on SIGTERM, how long in-flight tasks may finish")
      ->envname("RMA_DRAIN_GRACE_MS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{86400000}));
  app.add_option("--health-interval-ms", health_interval_ms, "how often http services are probed")
      ->envname("RMA_HEALTH_INTERVAL_MS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}));
  app.add_option("--health-timeout-ms", health_timeout_ms, "how long one health probe may take")
      ->envname("RMA_HEALTH_TIMEOUT_MS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{600000}));
  app.add_option("--health-failures", health_failures,
                 "failed probes in a row before a service is withdrawn")
      ->envname("RMA_HEALTH_FAILURES")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--connect-timeout-ms", connect_timeout_ms,
                 "how long connecting to an http backend may take")
      ->envname("RMA_CONNECT_TIMEOUT_MS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{600000}));
  app.add_option("--max-output-bytes", max_output_bytes,
                 "largest result a handler may return (backend body, command stdout)")
      ->envname("RMA_MAX_OUTPUT_BYTES")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->envname("RMA_LOG_LEVEL")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  WorkerConfig file;
  if (!config_path.empty()) {
    auto loaded = LoadWorkerConfig(config_path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "rma-worker: %s\n", loaded.status().message().c_str());
      return 2;
    }
    file = std::move(*loaded);
  }
  FromFile(app, "--log-level", file.log_level, &log_level);
  if (Status s = SetUpLogging("worker", log_level); !s.ok()) {
    std::fprintf(stderr, "rma-worker: %s\n", s.message().c_str());
    return 2;
  }
  FromFile(app, "--broker", file.broker, &options.broker);
  FromFile(app, "--slots", file.slots, &session.slots);
  FromFile(app, "--name", file.name, &session.name);
  FromFile(app, "--worker-id", file.worker_id, &session.worker_id);
  FromFile(app, "--data-dir", file.data_dir, &data_dir);
  FromFile(app, "--token", file.token, &session.token);
  FromFile(app, "--broker-key", file.broker_key, &broker_key);
  FromFile(app, "--enrol", file.enrol_token, &enrol_token);
  FromFile(app, "--simulate", file.simulate, &simulate);
  FromFile(app, "--worker-type", file.worker_type, &worker_type);
  FromFile(app, "--generic", file.generic, &generic_spec);
  FromFile(app, "--heartbeat-ms", file.heartbeat_ms, &heartbeat_ms);
  FromFile(app, "--drain-grace-ms", file.drain_grace_ms, &drain_grace_ms);
  FromFile(app, "--health-interval-ms", file.health_interval_ms, &health_interval_ms);
  FromFile(app, "--health-timeout-ms", file.health_timeout_ms, &health_timeout_ms);
  if (auto brokers = proto::ParseBrokerList(options.broker); !brokers.ok()) {
    std::fprintf(stderr, "rma-worker: --broker: %s\n", brokers.status().message().c_str());
    return 2;
  }
  FromFile(app, "--health-failures", file.health_failures, &health_failures);
  FromFile(app, "--connect-timeout-ms", file.connect_timeout_ms, &connect_timeout_ms);
  FromFile(app, "--max-output-bytes", file.max_output_bytes, &max_output_bytes);

  // Services: the file's, then RMA_SERVICES or --service (a later definition of a name wins).
  std::vector<ServiceConfig> services = file.services;
  if (service_flags.empty()) {
    if (const char* env = std::getenv("RMA_SERVICES"); env != nullptr && *env != '\0') {
      service_flags = SplitServiceList(env);
    }
  }
  for (const std::string& flag : service_flags) {
    auto parsed = ParseServiceFlag(flag);
    if (!parsed.ok()) {
      spdlog::error("--service {}", parsed.status().message());
      return 2;
    }
    auto same = std::find_if(services.begin(), services.end(),
                             [&](const ServiceConfig& s) { return s.name == parsed->name; });
    if (same != services.end()) {
      *same = std::move(*parsed);
    } else {
      services.push_back(std::move(*parsed));
    }
  }
  for (const std::string& flag : model_flags) {
    auto parsed = ParseModelFlag(flag);
    auto service =
        !parsed.ok() ? services.end()
                     : std::find_if(services.begin(), services.end(), [&](const ServiceConfig& s) {
                         return s.name == parsed->first;
                       });
    Status added = !parsed.ok() ? parsed.status()
                   : service == services.end()
                       ? Status::InvalidArgument("no service '" + parsed->first + "'")
                       : AddModel(&*service, parsed->second);
    if (!added.ok()) {
      spdlog::error("--model {}: {}", PrintableTail(flag, 200), added.message());
      return 2;
    }
  }
  std::map<std::string, std::string> labels = file.labels;
  for (const std::string& flag : label_flags) {
    auto label = ParseLabel(flag);
    if (!label.ok()) {
      spdlog::error("--label {}", label.status().message());
      return 2;
    }
    labels[label->first] = label->second;
  }

  if (!enrol_token.empty() || app.get_option("--enrol")->count() > 0) {
    if (Status s = CheckEnrolToken(enrol_token); !s.ok()) {
      spdlog::error("--enrol: {}", s.message());
      return 2;
    }
    if (broker_key.empty()) {
      spdlog::error("--enrol: enrolment binds the worker's CURVE key: pass --broker-key too");
      return 2;
    }
  }
  if (new_key && broker_key.empty()) {
    spdlog::error("--new-key: the key is this worker's CURVE identity: pass --broker-key too");
    return 2;
  }

  auto signals = SignalWatcher::Create({SIGINT, SIGTERM});
  if (!signals.ok()) {
    spdlog::error("{}", signals.status().ToString());
    return 1;
  }
  // A peer that goes away mid-write (a backend, a command's stdin) is an error to handle, not a
  // reason to die.
  std::signal(SIGPIPE, SIG_IGN);

  if (!broker_key.empty()) {
    if (!session.token.empty() || !token_file.empty()) {
      spdlog::error("--broker-key and a worker token: a CURVE worker is its key, not a token");
      return 2;
    }
    auto key = proto::ResolvePublicKey(broker_key);
    if (!key.ok()) {
      spdlog::error("--broker-key: {}", key.status().message());
      return 2;
    }
    auto mine = new_key ? ReplaceWorkerKey(data_dir) : LoadOrCreateWorkerKey(data_dir);
    if (!mine.ok()) {
      spdlog::error("this worker's key: {}", mine.status().message());
      return 1;
    }
    if (new_key) {
      spdlog::info(
          "--new-key: this worker has a new key, {}, in {}/worker.key (the old one is gone){}",
          mine->public_key, data_dir,
          enrol_token.empty() ? "; the broker takes it once it is enrolled (--enrol TOKEN) "
                                "or listed in its --worker-keys-file"
                              : "");
    }
    spdlog::info("CURVE: broker key {}, this worker's key {}{}", *key, mine->public_key,
                 enrol_token.empty() ? "" : "; enrolling it with a one-time token");
    session.enrol_token = enrol_token;
    options.broker_key = std::move(*key);
    options.curve = std::move(*mine);
  }
  if (!token_file.empty()) {
    auto token = ReadSecretFile(token_file);
    if (!token.ok()) {
      spdlog::error("{}", token.status().message());
      return 2;
    }
    session.token = std::move(*token);
  }
  {
    auto secret = LoadOrCreateWorkerSecret(data_dir);
    if (!secret.ok()) {
      spdlog::error("{}", secret.status().message());
      return 1;
    }
    session.worker_secret = std::move(*secret);
  }
  if (session.worker_id.empty()) {
    auto id = LoadOrCreateWorkerId(data_dir);
    if (!id.ok()) {
      spdlog::error("{}", id.status().message());
      return 1;
    }
    session.worker_id = *id;
  }
  if (session.name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    session.name = host;
  }

  std::shared_ptr<GpuSource> gpu_source;
  if (!simulate.empty()) {
    auto caps = SimulatedCapabilities(simulate);
    if (!caps.ok()) {
      spdlog::error("{}", caps.status().message());
      return 2;
    }
    session.capabilities = *caps;
    session.simulated = true;
    options.sampler = MakeFixedSampler(Readings{0, caps->ram_available_gb, 0});
  } else {
    gpu_source = FindGpuSource();
    std::vector<GpuInfo> gpus;
    session.capabilities = DetectCapabilities(data_dir, gpu_source.get(), &gpus);
    spdlog::info("{}", GpuLine(gpus, gpu_source.get()));
    options.sampler = MakeSystemSampler(gpu_source);
  }
  if (!worker_type.empty()) session.capabilities.worker_type = worker_type;
  session.capabilities.labels = labels;
  const proto::Capabilities& c = session.capabilities;
  spdlog::info(
      "{}: {} cores ({}), {:.1f} GiB RAM ({:.1f} available), {:.0f} GB disk ({:.0f} free) under "
      "{}, {} {}{}",
      session.simulated ? "declared (simulated)" : "detected", c.cpu_cores, c.cpu_model, c.ram_gb,
      c.ram_available_gb, c.disk_gb, c.disk_free_gb, data_dir, c.os, c.arch,
      c.has_gpu ? fmt::format(", {} x {} ({:.1f} GB)", c.gpu_count, c.gpu_type, c.gpu_memory_gb)
                : ", no GPU");

  HandlerOptions defaults;
  defaults.connect_timeout = Ms(connect_timeout_ms);
  defaults.health_timeout = Ms(health_timeout_ms);
  defaults.max_output_bytes = static_cast<size_t>(max_output_bytes);
  std::vector<ServiceBinding> bindings;
  for (const ServiceConfig& s : services) {
    auto handler = MakeHandler(s.handler, s.Resolve(defaults));
    if (!handler.ok()) {
      spdlog::error("service {}: {}", s.name, handler.status().message());
      return 2;
    }
    bindings.push_back({s.name, s.handler, *handler, s.models});
  }
  auto generic = MakeHandler(generic_spec, defaults);
  if (!generic.ok()) {
    spdlog::error("--generic: {}", generic.status().message());
    return 2;
  }
  session.generic_handler = *generic;
  session.heartbeat = Ms(heartbeat_ms);
  session.drain_grace = Ms(drain_grace_ms);
  session.first_probe_wait = Ms(std::max<int64_t>(health_timeout_ms, connect_timeout_ms) + 500);
  options.monitor.interval = Ms(health_interval_ms);
  options.monitor.failures_to_withdraw = health_failures;

  SystemClock clock;
  Agent agent(std::move(options), bindings, &clock);
  Status s = agent.Run(*signals);
  if (!s.ok()) {
    spdlog::error("{}", s.ToString());
    if (s.code() == StatusCode::kPermissionDenied) return 3;
    if (s.code() == StatusCode::kInvalidArgument) return 2;
    return 1;
  }
  return 0;
}
