// Test support: a whole pool as real processes — rma-broker on 127.0.0.1 ports it chooses,
// optionally rma-gateway on a free port, and any number of rma-worker processes — with short
// heartbeats so liveness tests run in seconds. Everything is stopped when the Cluster is destroyed.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace rma::testing {

struct ClusterOptions {
  int heartbeat_ms = 200;  // 0: the programs' defaults
  int liveness = 3;        // 0: the broker's default
  bool gateway = true;
  std::vector<std::string> broker_args;   // extra flags
  std::vector<std::string> gateway_args;  // extra flags
  std::string log_level = "info";
};

class Cluster {
 public:
  explicit Cluster(ClusterOptions options = {});
  ~Cluster();

  const std::string& dir() const { return dir_; }
  const std::string& workers_endpoint() const { return workers_endpoint_; }
  const std::string& clients_endpoint() const { return clients_endpoint_; }
  int http_port() const { return http_port_; }
  std::string Url(const std::string& path) const;

  Process& broker() { return broker_; }
  Process& gateway() { return gateway_; }

  // Starts a worker named `name` (also its worker id) with extra flags such as --service and
  // --slots.
  Process& StartWorker(const std::string& name, const std::vector<std::string>& args);
  Process& worker(const std::string& name) { return *workers_.at(name); }

  // Stops the broker (SIGKILL when `kill`, else SIGTERM) and starts it again on the same endpoints.
  void RestartBroker(bool kill = false, const std::vector<std::string>& extra_args = {});

  // Waits until the admin API lists `count` live workers (optionally: providing `service`).
  bool WaitForLiveWorkers(size_t count, std::chrono::milliseconds timeout,
                          const std::string& service = "");
  // The admin API's worker record of `worker_id`, or null.
  nlohmann::json WorkerRecord(const std::string& worker_id);

  // Logs of every process, for failure messages.
  std::string Logs();

 private:
  void StartBroker(const std::vector<std::string>& endpoints_args,
                   const std::vector<std::string>& extra_args);

  ClusterOptions options_;
  std::string dir_;
  std::string workers_endpoint_;
  std::string clients_endpoint_;
  int http_port_ = 0;
  int broker_starts_ = 0;
  Process broker_;
  Process gateway_;
  std::map<std::string, std::unique_ptr<Process>> workers_;
};

// One run of rmactl (the real program) with `args` and `env`: its exit code (-1: did not end
// within a minute) and what it printed (stdout and stderr), logged in the cluster's directory.
struct CliResult {
  int exit_code = -1;
  std::string output;
};
CliResult Rmactl(Cluster& cluster, const std::vector<std::string>& args,
                 const std::map<std::string, std::string>& env = {});

// The reputation state the admin API shows for worker `worker_id` ("" when it has none).
std::string ReputationState(Cluster& cluster, const std::string& worker_id);

// Waits (up to `timeout`) until the gateway's admin API lists `service` as available; `headers`
// carry an admin key when the gateway has keys.
bool WaitForService(const Cluster& c, const std::string& service,
                    const std::vector<std::string>& headers = {},
                    std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace rma::testing
