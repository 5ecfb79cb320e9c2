// The broker's JSON config file (docs/configuration.md): read at start by main.cc, before the
// loop exists. Unknown keys and wrong types are errors naming the key.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "broker/config.h"
#include "broker/reputation_config.h"

namespace rma::broker {

namespace {

using nlohmann::json;

// A duration given as a number of `unit`s (fractions allowed), under a key that names the unit.
Status ReadDuration(const json& j, const char* key, Duration unit, const char* unit_name,
                    Duration* out) {
  if (!j.contains(key)) return Status::Ok();
  if (!j[key].is_number() || j[key].get<double>() < 0) {
    return Status::InvalidArgument(std::string("'") + key + "' must be a non-negative number of " +
                                   unit_name);
  }
  *out = Duration(static_cast<int64_t>(j[key].get<double>() * static_cast<double>(unit.count())));
  return Status::Ok();
}

Status ReadDurationMs(const json& j, const char* key, Duration* out) {
  return ReadDuration(j, key, Ms(1), "milliseconds", out);
}

Status ReadDurationS(const json& j, const char* key, Duration* out) {
  return ReadDuration(j, key, Seconds(1), "seconds", out);
}

template <typename T>
Status ReadNumber(const json& j, const char* key, T* out) {
  if (!j.contains(key)) return Status::Ok();
  if (!j[key].is_number() || j[key].get<double>() < 0) {
    return Status::InvalidArgument(std::string("'") + key + "' must be a non-negative number");
  }
  *out = j[key].get<T>();
  return Status::Ok();
}

Status CheckKeys(const json& j, std::initializer_list<const char*> allowed,
                 const std::string& where) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || it.key() == a;
    if (!ok) return Status::InvalidArgument("unknown key '" + it.key() + "' in " + where);
  }
  return Status::Ok();
}

}  // namespace

Status LoadConfigFile(const std::string& path, BrokerConfig* config) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot open config file '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (j.is_discarded() || !j.is_object()) {
    return Status::InvalidArgument("config file '" + path + "' is not a JSON object");
  }
  RMA_RETURN_IF_ERROR(CheckKeys(j,
                                {"heartbeat_ms",
                                 "liveness",
                                 "offline_retention_ms",
                                 "reattach_grace_ms",
                                 "default_max_attempts",
                                 "default_timeout_ms",
                                 "max_timeout_ms",
                                 "max_queue_time_ms",
                                 "retry_backoff_base_ms",
                                 "retry_backoff_max_ms",
                                 "max_requeues",
                                 "result_ttl_ms",
                                 "max_finished_in_memory",
                                 "max_queued_per_service",
                                 "max_wait_ms",
                                 "tier_cpu_min_cores",
                                 "tier_cpu_min_ram_gb",
                                 "allow_simulated",
                                 "catalog",
                                 "max_recommendations",
                                 "service_limits",
                                 "max_payload_bytes",
                                 "max_unfinished_tasks",
                                 "max_unfinished_bytes",
                                 "max_result_bytes_in_memory",
                                 "max_waiters_per_task",
                                 "max_waiters_per_client",
                                 "max_services",
                                 "max_services_per_worker",
                                 "max_running_per_ready",
                                 "aging_s",
                                 "tier_weights",
                                 "contribution_half_life_s",
                                 "reputation",
                                 "probation_slots",
                                 "verify_wait_ms"},
                                "config file"));
  RMA_RETURN_IF_ERROR(ReadDurationMs(j, "heartbeat_ms", &config->heartbeat_interval));
  RMA_RETURN_IF_ERROR(ReadNumber(j, "liveness", &config->liveness));
  RMA_RETURN_IF_ERROR(ReadDurationMs(j, "offline_retention_ms", &config->offline_retention));
  if (j.contains("reattach_grace_ms")) {
    Duration grace{0};
    RMA_RETURN_IF_ERROR(ReadDurationMs(j, "reattach_grace_ms", &grace));
    config->reattach_grace = grace;
  }
  RMA_RETURN_IF_ERROR(ReadNumber(j, "default_max_attempts", &config->default_max_attempts));
  RMA_RETURN_IF_ERROR(ReadDurationMs(j, "default_timeout_ms", &config->default_timeout));
  RMA_RETURN_IF_ERROR(ReadDurationMs(j, "max_timeout_ms", &config->max_timeout));
  RMA_RETURN_IF_ERROR(ReadDurationMs(j, "max_queue_time_ms", &config->max_queue_time));
  RMA_RETURN_IF_ERROR(ReadDurationMs(j, "retry_backoff_base_ms", &config->retry_backoff_base));
  RMA_RETURN_IF_ERROR(ReadDurationMs(j, "retry_backoff_max_ms", &config->retry_backoff_max));
  RMA_RETURN_IF_ERROR(ReadNumber(j, "max_requeues", &config->max_requeues));
  RMA_RETURN_IF_ERROR(ReadDurationMs(j, "result_ttl_ms", &config->result_ttl));
  RMA_RETURN_IF_ERROR(ReadNumber(j, "max_finished_in_memory", &config->max_finished_in_memory));
  RMA_RETURN_IF_ERROR(ReadNumber(j, "max_queued_per_service", &config->max_queued_per_service));
  RMA_RETURN_IF_ERROR(ReadDurationMs(j, "max_wait_ms", &config->max_wait));
  RMA_RETURN_IF_ERROR(ReadNumber(j, "tier_cpu_min_cores", &config->tiers.cpu_min_cores));
  RMA_RETURN_IF_ERROR(ReadNumber(j, "tier_cpu_min_ram_gb", &config->tiers.cpu_min_ram_gb));
  RMA_RETURN_IF_ERROR(ReadNumber(j, "max_recommendations", &config->max_recommendations));
  RMA_RETURN_IF_ERROR(ReadNumber(j, "max_payload_bytes", &config->limits.max_payload_bytes));
  RMA_RETURN_IF_ERROR(ReadNumber(j, "max_unfinished_tasks", &config->max_unfinished_tasks));
  RMA_RETURN_IF_ERROR(ReadNumber(j, "max_unfinished_bytes", &config->max_unfinished_bytes));
  RMA_RETURN_IF_ERROR(
      ReadNumber(j, "max_result_bytes_in_memory", &config->max_result_bytes_in_memory));
  RMA_RETURN_IF_ERROR(ReadNumber(j, "max_waiters_per_task", &config->max_waiters_per_task));
  RMA_RETURN_IF_ERROR(ReadNumber(j, "max_waiters_per_client", &config->max_waiters_per_client));
  RMA_RETURN_IF_ERROR(ReadNumber(j, "max_services", &config->max_services));
  RMA_RETURN_IF_ERROR(ReadNumber(j, "max_services_per_worker", &config->max_services_per_worker));
  RMA_RETURN_IF_ERROR(ReadNumber(j, "max_running_per_ready", &config->max_running_per_ready));
  RMA_RETURN_IF_ERROR(ReadDurationS(j, "aging_s", &config->aging));
  RMA_RETURN_IF_ERROR(ReadNumber(j, "probation_slots", &config->probation_slots));
  RMA_RETURN_IF_ERROR(ReadDurationMs(j, "verify_wait_ms", &config->verify_wait));
  if (j.contains("reputation")) {
    auto reputation = ParseReputationConfig(j["reputation"]);
    if (!reputation.ok()) return reputation.status().WithContext("reputation");
    config->reputation = *reputation;
  }
  RMA_RETURN_IF_ERROR(
      ReadDurationS(j, "contribution_half_life_s", &config->contribution_half_life));
  if (j.contains("tier_weights")) {
    const json& w = j["tier_weights"];
    if (!w.is_array() || w.size() != 3) {
      return Status::InvalidArgument(
          "'tier_weights' must be an array of 3 numbers (GPU, CPU, storage)");
    }
    for (size_t i = 0; i < 3; ++i) {
      if (!w[i].is_number() || w[i].get<double>() < 0) {
        return Status::InvalidArgument("'tier_weights' must hold non-negative numbers");
      }
      config->tier_weights[i] = w[i].get<double>();
    }
  }
  if (j.contains("allow_simulated")) {
    if (!j["allow_simulated"].is_boolean())
      return Status::InvalidArgument("'allow_simulated' must be a boolean");
    config->allow_simulated = j["allow_simulated"].get<bool>();
  }
  if (j.contains("catalog")) {
    if (!j["catalog"].is_array()) return Status::InvalidArgument("'catalog' must be an array");
    config->catalog.clear();
    for (const json& e : j["catalog"]) {
      if (!e.is_object() || !e.contains("service") || !e["service"].is_string()) {
        return Status::InvalidArgument("each catalog entry needs a string 'service'");
      }
      RMA_RETURN_IF_ERROR(
          CheckKeys(e,
                    {"service", "tier", "image", "port", "min_gpu_memory_gb", "min_ram_gb",
                     "credit_multiplier", "min_credits", "trusted_only", "verify"},
                    "catalog entry"));
      CatalogEntry c;
      c.service = e["service"].get<std::string>();
      RMA_RETURN_IF_ERROR(ReadNumber(e, "tier", &c.tier));
      if (c.tier < 1 || c.tier > 3)
        return Status::InvalidArgument("catalog 'tier' must be 1, 2 or 3");
      if (e.contains("image")) {
        if (!e["image"].is_string())
          return Status::InvalidArgument("catalog 'image' must be a string");
        c.image = e["image"].get<std::string>();
      }
      RMA_RETURN_IF_ERROR(ReadNumber(e, "port", &c.port));
      RMA_RETURN_IF_ERROR(ReadNumber(e, "min_gpu_memory_gb", &c.min_gpu_memory_gb));
      RMA_RETURN_IF_ERROR(ReadNumber(e, "min_ram_gb", &c.min_ram_gb));
      if (e.contains("trusted_only")) {
        if (!e["trusted_only"].is_boolean())
          return Status::InvalidArgument("catalog 'trusted_only' must be true or false");
        c.trusted_only = e["trusted_only"].get<bool>();
      }
      if (e.contains("verify")) {
        auto verify = ParseVerifySpec(e["verify"]);
        if (!verify.ok()) {
          return verify.status().WithContext("catalog entry '" + c.service + "': verify");
        }
        c.verify = *verify;
      }
      // Credits (docs/accounts.md): a price multiplier and the balance a submission needs.
      for (auto [key, table] : {std::pair{"credit_multiplier", &config->credits.multipliers},
                                std::pair{"min_credits", &config->credits.min_credits}}) {
        if (!e.contains(key)) continue;
        if (!e[key].is_number() || e[key].get<double>() < 0) {
          return Status::InvalidArgument(std::string("catalog '") + key +
                                         "' must be a number >= 0");
        }
        (*table)[c.service] = e[key].get<double>();
      }
      config->catalog.push_back(std::move(c));
    }
  }
  if (j.contains("service_limits")) {
    if (!j["service_limits"].is_object())
      return Status::InvalidArgument("'service_limits' must be an object");
    for (auto it = j["service_limits"].begin(); it != j["service_limits"].end(); ++it) {
      if (!it.value().is_object())
        return Status::InvalidArgument("service_limits entries must be objects");
      RMA_RETURN_IF_ERROR(
          CheckKeys(it.value(), {"max_concurrency", "rate_per_s", "burst"}, "service_limits"));
      ServiceLimit l;
      RMA_RETURN_IF_ERROR(ReadNumber(it.value(), "max_concurrency", &l.max_concurrency));
      RMA_RETURN_IF_ERROR(ReadNumber(it.value(), "rate_per_s", &l.rate_per_s));
      RMA_RETURN_IF_ERROR(ReadNumber(it.value(), "burst", &l.burst));
      config->service_limits[it.key()] = l;
    }
  }
  return Status::Ok();
}

}  // namespace rma::broker
