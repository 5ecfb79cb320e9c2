// See options.h.
#include "gateway/options.h"

#include <cctype>
#include <fstream>
#include <sstream>

namespace rma::gateway {

using nlohmann::json;

namespace {

Status CheckKeys(const json& j, std::initializer_list<const char*> allowed,
                 const std::string& where) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || it.key() == a;
    if (!ok) return Status::InvalidArgument("unknown key '" + it.key() + "' in " + where);
  }
  return Status::Ok();
}

Status ReadCount(const json& j, const char* key, size_t lo, size_t hi, size_t* out) {
  if (!j.contains(key)) return Status::Ok();
  const json& v = j[key];
  if (!v.is_number_unsigned() || v.get<uint64_t>() < lo || v.get<uint64_t>() > hi) {
    return Status::InvalidArgument(std::string("'") + key + "' must be an integer between " +
                                   std::to_string(lo) + " and " + std::to_string(hi));
  }
  *out = static_cast<size_t>(v.get<uint64_t>());
  return Status::Ok();
}

Status ReadMs(const json& j, const char* key, int64_t lo, int64_t hi, Duration* out) {
  size_t ms = 0;
  if (!j.contains(key)) return Status::Ok();
  RMA_RETURN_IF_ERROR(ReadCount(j, key, static_cast<size_t>(lo), static_cast<size_t>(hi), &ms));
  *out = Ms(static_cast<int64_t>(ms));
  return Status::Ok();
}

Status ReadRate(const json& j, const std::string& where, RateLimit* out) {
  RMA_RETURN_IF_ERROR(CheckKeys(j, {"rate_per_s", "burst"}, where));
  for (const char* key : {"rate_per_s", "burst"}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_number() || j[key].get<double>() < 0 || j[key].get<double>() > 1e9) {
      return Status::InvalidArgument(std::string("'") + key + "' in " + where +
                                     " must be a number >= 0");
    }
  }
  if (j.contains("rate_per_s")) out->rate_per_s = j["rate_per_s"].get<double>();
  if (j.contains("burst")) out->burst = j["burst"].get<double>();
  return Status::Ok();
}

}  // namespace

ApiKey KeyFromFlag(const std::string& item, Role role) {
  ApiKey k;
  k.role = role;
  size_t colon = item.find(':');
  k.key = item.substr(0, colon);
  if (colon != std::string::npos) k.name = item.substr(colon + 1);
  return k;
}

Status ApplyConfigJson(const json& j, GatewayOptions* o, std::string* broker_endpoint) {
  if (!j.is_object()) return Status::InvalidArgument("the config must be a JSON object");
  RMA_RETURN_IF_ERROR(CheckKeys(j,
                                {"broker",
                                 "listen",
                                 "threads",
                                 "max_body_bytes",
                                 "max_header_bytes",
                                 "submit_timeout_ms",
                                 "call_timeout_ms",
                                 "max_call_timeout_ms",
                                 "max_wait_ms",
                                 "header_timeout_ms",
                                 "metrics_timeout_ms",
                                 "max_pending_requests",
                                 "api_keys",
                                 "rate_limit",
                                 "cors_origins",
                                 "public_metrics",
                                 "private_leaderboard",
                                 "allow_anonymous",
                                 "max_connections_per_ip",
                                 "large_body_budget_bytes",
                                 "broker_accounts"},
                                "the config"));
  for (const char* key : {"broker", "listen"}) {
    if (j.contains(key) && !j[key].is_string()) {
      return Status::InvalidArgument(std::string("'") + key + "' must be a string");
    }
  }
  if (j.contains("broker")) *broker_endpoint = j["broker"].get<std::string>();
  if (j.contains("listen")) o->listen = j["listen"].get<std::string>();
  RMA_RETURN_IF_ERROR(ReadCount(j, "threads", 1, 64, &o->threads));
  RMA_RETURN_IF_ERROR(ReadCount(j, "max_body_bytes", 1024, size_t{1} << 30, &o->max_body_bytes));
  RMA_RETURN_IF_ERROR(
      ReadCount(j, "max_header_bytes", 1024, size_t{1} << 20, &o->max_header_bytes));
  RMA_RETURN_IF_ERROR(ReadMs(j, "submit_timeout_ms", 1, 600000, &o->submit_timeout));
  RMA_RETURN_IF_ERROR(ReadMs(j, "call_timeout_ms", 1, 3600000, &o->default_call_timeout));
  RMA_RETURN_IF_ERROR(ReadMs(j, "max_call_timeout_ms", 1, 3600000, &o->max_call_timeout));
  RMA_RETURN_IF_ERROR(ReadMs(j, "max_wait_ms", 0, 3600000, &o->max_wait));
  RMA_RETURN_IF_ERROR(ReadMs(j, "header_timeout_ms", 100, 3600000, &o->header_timeout));
  RMA_RETURN_IF_ERROR(ReadMs(j, "metrics_timeout_ms", 10, 60000, &o->metrics_timeout));
  RMA_RETURN_IF_ERROR(ReadCount(j, "max_pending_requests", 1, 10000000, &o->max_pending));
  RMA_RETURN_IF_ERROR(
      ReadCount(j, "max_connections_per_ip", 0, 1000000, &o->max_connections_per_ip));
  RMA_RETURN_IF_ERROR(ReadCount(j, "large_body_budget_bytes", size_t{1} << 20, size_t{1} << 40,
                                &o->large_body_budget));
  for (auto [key, out] : {std::pair{"public_metrics", &o->public_metrics},
                          std::pair{"private_leaderboard", &o->private_leaderboard},
                          std::pair{"allow_anonymous", &o->allow_anonymous},
                          std::pair{"broker_accounts", &o->broker_accounts}}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_boolean())
      return Status::InvalidArgument(std::string("'") + key + "' must be a boolean");
    *out = j[key].get<bool>();
  }
  if (j.contains("rate_limit")) {
    if (!j["rate_limit"].is_object()) {
      return Status::InvalidArgument("'rate_limit' must be an object");
    }
    RMA_RETURN_IF_ERROR(ReadRate(j["rate_limit"], "'rate_limit'", &o->rate_limit));
  }
  if (j.contains("cors_origins")) {
    const json& c = j["cors_origins"];
    if (!c.is_array()) return Status::InvalidArgument("'cors_origins' must be an array of strings");
    for (const json& origin : c) {
      if (!origin.is_string()) {
        return Status::InvalidArgument("'cors_origins' must be an array of strings");
      }
      o->cors_origins.push_back(origin.get<std::string>());
    }
  }
  if (j.contains("api_keys")) {
    const json& keys = j["api_keys"];
    if (!keys.is_array()) return Status::InvalidArgument("'api_keys' must be an array");
    for (const json& e : keys) {
      if (!e.is_object() || !e.contains("key") || !e["key"].is_string()) {
        return Status::InvalidArgument("each entry of 'api_keys' needs a string 'key'");
      }
      RMA_RETURN_IF_ERROR(
          CheckKeys(e, {"key", "role", "name", "rate_per_s", "burst"}, "an 'api_keys' entry"));
      ApiKey k;
      k.key = e["key"].get<std::string>();
      if (e.contains("role")) {
        auto role = e["role"].is_string() ? ParseRole(e["role"].get<std::string>()) : std::nullopt;
        if (!role) return Status::InvalidArgument("'role' must be \"client\" or \"admin\"");
        k.role = *role;
      }
      if (e.contains("name")) {
        if (!e["name"].is_string()) return Status::InvalidArgument("'name' must be a string");
        k.name = e["name"].get<std::string>();
      }
      if (e.contains("rate_per_s") || e.contains("burst")) {
        RateLimit limit = o->rate_limit;
        json rate = json::object();
        for (const char* key : {"rate_per_s", "burst"}) {
          if (e.contains(key)) rate[key] = e[key];
        }
        RMA_RETURN_IF_ERROR(ReadRate(rate, "an 'api_keys' entry", &limit));
        k.limit = limit;
      }
      o->api_keys.push_back(std::move(k));
    }
  }
  return Status::Ok();
}

namespace {

// The host part of HOST:PORT or of a Host header ("[::1]:80" -> "::1", "a.b:1" -> "a.b"); the
// whole text when it has no port.
std::string_view HostPart(std::string_view s) {
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    return close == std::string_view::npos ? std::string_view() : s.substr(1, close - 1);
  }
  size_t colon = s.rfind(':');
  if (colon != std::string_view::npos && s.find(':') != colon) return s;  // bare IPv6
  return colon == std::string_view::npos ? s : s.substr(0, colon);
}

bool IsLoopbackName(std::string_view host) {
  std::string lower(host);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "localhost" || lower == "::1") return true;
  // 127.0.0.0/8 in dotted decimal, four parts.
  if (lower.rfind("127.", 0) != 0) return false;
  int parts = 0;
  size_t pos = 0;
  while (pos <= lower.size()) {
    size_t dot = lower.find('.', pos);
    if (dot == std::string::npos) dot = lower.size();
    std::string_view part(lower.data() + pos, dot - pos);
    if (part.empty() || part.size() > 3 ||
        part.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(std::string(part)) > 255) {
      return false;
    }
    ++parts;
    pos = dot + 1;
  }
  return parts == 4;
}

}  // namespace

bool IsLoopbackListen(std::string_view listen) { return IsLoopbackName(HostPart(listen)); }

bool IsLoopbackHost(std::string_view host) { return IsLoopbackName(HostPart(host)); }

Result<std::string> CheckExposure(const GatewayOptions& o, std::string* warning) {
  const bool keys = !o.api_keys.empty() || o.broker_accounts;
  if (o.listen.empty()) {
    if (keys) return std::string(kDefaultListenWithKeys);
    *warning = "no API keys configured: serving on " + std::string(kDefaultListenWithoutKeys) +
               " only (loopback); set --admin-key/--client-key to serve other machines";
    return std::string(kDefaultListenWithoutKeys);
  }
  if (keys || IsLoopbackListen(o.listen)) return o.listen;
  if (!o.allow_anonymous) {
    return Status::FailedPrecondition(
        "refusing to serve " + o.listen +
        " without API keys: anyone who can reach it could use the pool and its admin API. "
        "Configure keys (--admin-key/--client-key, RMA_ADMIN_KEYS/RMA_CLIENT_KEYS or the "
        "config file's api_keys), listen on 127.0.0.1, or pass --allow-anonymous "
        "(RMA_ALLOW_ANONYMOUS=1) to serve an open pool on purpose");
  }
  *warning = "serving an OPEN API on " + o.listen +
             " (--allow-anonymous, no API keys): anyone who can reach it may submit tasks, call "
             "services and use the admin API";
  return o.listen;
}

Status LoadConfigFile(const std::string& path, GatewayOptions* options,
                      std::string* broker_endpoint) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot open config file '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (j.is_discarded()) return Status::InvalidArgument("config file '" + path + "' is not JSON");
  return ApplyConfigJson(j, options, broker_endpoint).WithContext("config file '" + path + "'");
}

}  // namespace rma::gateway
