// Test support for the gateway's security tests (issue 12): small helpers shared by the attack
// tests in tests/security/gateway_*_test.cc and http_*_test.cc. Each of those tests plays an
// attacker against real processes (rma-broker, rma-gateway, rma-worker from BinDir(), so
// RMA_BIN_DIR=<dir> runs them against another build's binaries — how they were shown to fail
// before the fixes) over raw sockets or libcurl. Header-only; used from the test's main thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/gateway/raw_http.h"
#include "tests/support/cluster.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace rma::testing::attack {

using namespace std::chrono_literals;
using nlohmann::json;

inline const std::string kJson = "Content-Type: application/json";

// The error code of a JSON error answer ("" for anything else).
inline std::string CodeOf(const HttpResponse& r) {
  json j = r.Json();
  return j.is_object() ? j.value("code", "") : "";
}

// The gateway's own view of a worker ("" when it has none).
inline std::string WorkerStatus(const Cluster& c, const std::string& worker_id,
                                const std::vector<std::string>& headers = {}) {
  json j = HttpCall("GET", c.Url("/api/admin/workers"), "", headers, 5000).Json();
  if (!j.is_object() || !j.contains("workers")) return "";
  for (const json& w : j["workers"]) {
    if (w.value("worker_id", "") == worker_id) return w.value("status", "");
  }
  return "";
}

// Tasks the gateway lists for `headers`' key (all of them without keys).
inline json ListTasks(const Cluster& c, const std::vector<std::string>& headers = {}) {
  json j = HttpCall("GET", c.Url("/api/tasks?limit=1000"), "", headers, 10000).Json();
  return j.is_object() && j.contains("tasks") ? j["tasks"] : json::array();
}

// Peak resident memory of a process (VmHWM), in bytes; 0 when unknown.
inline size_t PeakRssBytes(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

// The p-th percentile (0..100) of `samples`, nearest rank.
inline double Percentile(std::vector<double> samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(samples.size()));
  return samples[std::min(rank, samples.size() - 1)];
}

}  // namespace rma::testing::attack
