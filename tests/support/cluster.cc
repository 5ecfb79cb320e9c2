// See cluster.h.
#include "tests/support/cluster.h"

#include <sstream>
#include <stdexcept>

namespace rma::testing {

using namespace std::chrono_literals;

Cluster::Cluster(ClusterOptions options)
    : options_(std::move(options)), dir_(TempDir("rma-cluster")) {
  StartBroker({"--workers", "tcp://127.0.0.1:*", "--clients", "tcp://127.0.0.1:*"}, {});
  if (options_.gateway) {
    std::vector<std::string> args = {"--broker",    clients_endpoint_, "--listen",
                                     "127.0.0.1:0", "--port-file",     dir_ + "/gateway.port",
                                     "--log-level", options_.log_level};
    args.insert(args.end(), options_.gateway_args.begin(), options_.gateway_args.end());
    gateway_ = Process::Start("rma-gateway", args, dir_ + "/gateway.log");
    std::string port = WaitForFile(dir_ + "/gateway.port", 20s);
    if (port.empty()) throw std::runtime_error("gateway did not start:\n" + gateway_.Log());
    http_port_ = std::stoi(port);
    bool up = WaitUntil([&] { return HttpGet(Url("/health"), 2000).status == 200; }, 20s);
    if (!up) throw std::runtime_error("gateway never reached the broker:\n" + Logs());
  }
}

Cluster::~Cluster() {
  for (auto& [name, w] : workers_) w->Kill();
  gateway_.Kill();
  broker_.Kill();
}

void Cluster::StartBroker(const std::vector<std::string>& endpoint_args,
                          const std::vector<std::string>& extra) {
  const std::string file = dir_ + "/broker.endpoints";
  std::remove(file.c_str());
  std::vector<std::string> args = endpoint_args;
  std::vector<std::string> more = {"--endpoints-file", file, "--log-level", options_.log_level};
  if (options_.heartbeat_ms > 0) {
    more.insert(more.end(), {"--heartbeat-ms", std::to_string(options_.heartbeat_ms)});
  }
  if (options_.liveness > 0)
    more.insert(more.end(), {"--liveness", std::to_string(options_.liveness)});
  args.insert(args.end(), more.begin(), more.end());
  args.insert(args.end(), options_.broker_args.begin(), options_.broker_args.end());
  args.insert(args.end(), extra.begin(), extra.end());
  broker_ = Process::Start("rma-broker", args,
                           dir_ + "/broker." + std::to_string(broker_starts_++) + ".log");
  std::string endpoints = WaitForFile(file, 20s);
  if (endpoints.empty()) throw std::runtime_error("broker did not start:\n" + broker_.Log());
  std::istringstream in(endpoints);
  std::getline(in, workers_endpoint_);
  std::getline(in, clients_endpoint_);
}

void Cluster::RestartBroker(bool kill, const std::vector<std::string>& extra_args) {
  broker_.Signal(kill ? 9 : 15);
  if (!broker_.Wait(20s)) throw std::runtime_error("broker did not stop");
  StartBroker({"--workers", workers_endpoint_, "--clients", clients_endpoint_}, extra_args);
}

std::string Cluster::Url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(http_port_) + path;
}

Process& Cluster::StartWorker(const std::string& name, const std::vector<std::string>& args) {
  std::vector<std::string> all = {"--broker",    workers_endpoint_,
                                  "--worker-id", name,
                                  "--name",      name,
                                  "--data-dir",  dir_ + "/worker-" + name,
                                  "--log-level", options_.log_level};
  if (options_.heartbeat_ms > 0) {
    all.insert(all.end(), {"--heartbeat-ms", std::to_string(options_.heartbeat_ms)});
  }
  all.insert(all.end(), args.begin(), args.end());
  auto p = std::make_unique<Process>(
      Process::Start("rma-worker", all, dir_ + "/worker-" + name + ".log"));
  Process& ref = *p;
  workers_[name] = std::move(p);
  return ref;
}

nlohmann::json Cluster::WorkerRecord(const std::string& worker_id) {
  HttpResponse r = HttpGet(Url("/api/admin/workers"), 5000);
  nlohmann::json j = r.Json();
  if (!j.is_object() || !j.contains("workers")) return nullptr;
  for (const auto& w : j["workers"]) {
    if (w.value("worker_id", "") == worker_id) return w;
  }
  return nullptr;
}

bool Cluster::WaitForLiveWorkers(size_t count, std::chrono::milliseconds timeout,
                                 const std::string& service) {
  return WaitUntil(
      [&] {
        HttpResponse r = HttpGet(Url("/api/admin/workers"), 5000);
        nlohmann::json j = r.Json();
        if (!j.is_object() || !j.contains("workers")) return false;
        size_t live = 0;
        for (const auto& w : j["workers"]) {
          if (w.value("status", "") == "offline") continue;
          if (!service.empty()) {
            bool has = false;
            for (const auto& s : w["services"]) has = has || s == service;
            if (!has) continue;
          }
          ++live;
        }
        return live == count;
      },
      timeout);
}

std::string Cluster::Logs() {
  std::string out = "=== broker ===\n" + broker_.Log();
  if (options_.gateway) out += "=== gateway ===\n" + gateway_.Log();
  for (auto& [name, w] : workers_) out += "=== worker " + name + " ===\n" + w->Log();
  return out;
}

std::string ReputationState(Cluster& cluster, const std::string& worker_id) {
  nlohmann::json w = cluster.WorkerRecord(worker_id);
  if (!w.is_object() || !w.contains("reputation") || !w["reputation"].is_object()) return "";
  return w["reputation"].value("state", "");
}

CliResult Rmactl(Cluster& cluster, const std::vector<std::string>& args,
                 const std::map<std::string, std::string>& env) {
  static int n = 0;
  const std::string log = cluster.dir() + "/rmactl." + std::to_string(n++) + ".log";
  Process p = Process::Start("rmactl", args, log, env);
  CliResult r;
  auto code = p.Wait(std::chrono::seconds(60));
  r.exit_code = code ? *code : -1;
  r.output = ReadFile(log);
  return r;
}

bool WaitForService(const Cluster& c, const std::string& service,
                    const std::vector<std::string>& headers, std::chrono::milliseconds timeout) {
  return WaitUntil(
      [&] {
        nlohmann::json j = HttpCall("GET", c.Url("/api/admin/services"), "", headers, 5000).Json();
        if (!j.is_object() || !j.contains("services")) return false;
        for (const nlohmann::json& s : j["services"]) {
          if (s.value("name", "") == service && s.value("available", false)) return true;
        }
        return false;
      },
      timeout);
}

}  // namespace rma::testing
