// See config.h. nlohmann::json exceptions stay inside this file.
#include "worker/config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <initializer_list>

#include "protocol/names.h"

namespace rma::worker {

namespace {

using nlohmann::json;

constexpr size_t kMaxFileBytes = 1u << 20;
constexpr size_t kMaxServices = 256;
constexpr size_t kMaxLabels = 64;
constexpr size_t kMaxLabelBytes = 256;
// As READY's enrol_token (protocol/message_fields.h).
constexpr size_t kMaxEnrolTokenBytes = 128;

Status Bad(const std::string& key, const std::string& why) {
  return Status::InvalidArgument(key + ": " + why);
}

Status CheckKeys(const json& object, const std::string& where,
                 std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : object.items()) {
    bool known = false;
    for (std::string_view a : allowed) known = known || key == a;
    if (!known) {
      std::string name = where;
      if (!name.empty()) name += '.';
      name += key;
      return Status::InvalidArgument("unknown key '" + name + "'");
    }
  }
  return Status::Ok();
}

Status ReadString(const json& object, const std::string& where, const char* key,
                  std::optional<std::string>* out, size_t max_bytes = 4096) {
  auto it = object.find(key);
  if (it == object.end()) return Status::Ok();
  std::string name = (where.empty() ? "" : where + ".") + key;
  if (!it->is_string()) return Bad(name, "must be a string");
  std::string v = it->get<std::string>();
  if (v.size() > max_bytes) return Bad(name, "longer than " + std::to_string(max_bytes) + " bytes");
  *out = std::move(v);
  return Status::Ok();
}

template <typename T>
Status ReadInt(const json& object, const std::string& where, const char* key, int64_t min,
               int64_t max, std::optional<T>* out) {
  auto it = object.find(key);
  if (it == object.end()) return Status::Ok();
  std::string name = (where.empty() ? "" : where + ".") + key;
  if (!it->is_number_integer()) return Bad(name, "must be an integer");
  int64_t v = it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                  ? max + 1
                  : it->get<int64_t>();
  if (v < min || v > max) {
    return Bad(name, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  }
  *out = static_cast<T>(v);
  return Status::Ok();
}

constexpr int64_t kDay = 24LL * 3600 * 1000;

Status ParseService(const std::string& name, const json& value, ServiceConfig* out) {
  const std::string where = "services." + name;
  RMA_RETURN_IF_ERROR(CheckServiceName(name).WithContext(where));
  out->name = name;
  if (value.is_string()) {
    out->handler = value.get<std::string>();
  } else if (value.is_object()) {
    RMA_RETURN_IF_ERROR(
        CheckKeys(value, where,
                  {"handler", "health", "connect_timeout_ms", "health_timeout_ms", "timeout_ms",
                   "max_output_bytes", "content_type", "kill_grace_ms", "stream", "models"}));
    std::optional<std::string> handler;
    RMA_RETURN_IF_ERROR(ReadString(value, where, "handler", &handler, 64 * 1024));
    if (!handler) return Bad(where + ".handler", "is required");
    out->handler = *handler;
    RMA_RETURN_IF_ERROR(ReadString(value, where, "health", &out->health));
    if (out->health && (out->health->empty() || (*out->health)[0] != '/')) {
      return Bad(where + ".health", "must start with '/'");
    }
    RMA_RETURN_IF_ERROR(
        ReadInt(value, where, "connect_timeout_ms", 1, 600'000, &out->connect_timeout_ms));
    RMA_RETURN_IF_ERROR(
        ReadInt(value, where, "health_timeout_ms", 1, 600'000, &out->health_timeout_ms));
    RMA_RETURN_IF_ERROR(ReadInt(value, where, "timeout_ms", 1, kDay, &out->timeout_ms));
    RMA_RETURN_IF_ERROR(
        ReadInt(value, where, "max_output_bytes", 1, 1LL << 30, &out->max_output_bytes));
    RMA_RETURN_IF_ERROR(ReadString(value, where, "content_type", &out->content_type, 256));
    RMA_RETURN_IF_ERROR(ReadInt(value, where, "kill_grace_ms", 0, 600'000, &out->kill_grace_ms));
    if (auto stream = value.find("stream"); stream != value.end()) {
      if (!stream->is_boolean()) return Bad(where + ".stream", "must be true or false");
      out->stream = stream->get<bool>();
    }
    if (auto models = value.find("models"); models != value.end()) {
      if (!models->is_array()) return Bad(where + ".models", "must be an array of model names");
      for (const json& m : *models) {
        if (!m.is_string()) return Bad(where + ".models", "must be an array of model names");
        RMA_RETURN_IF_ERROR(AddModel(out, m.get<std::string>()).WithContext(where + ".models"));
      }
    }
  } else {
    return Bad(where, "must be a handler spec string or an object with \"handler\"");
  }
  if (out->handler.empty()) return Bad(where, "the handler is empty");
  return Status::Ok();
}

}  // namespace

HandlerOptions ServiceConfig::Resolve(HandlerOptions defaults) const {
  if (health) defaults.health_path = *health;
  if (connect_timeout_ms) defaults.connect_timeout = Ms(*connect_timeout_ms);
  if (health_timeout_ms) defaults.health_timeout = Ms(*health_timeout_ms);
  if (timeout_ms) defaults.default_timeout = Ms(*timeout_ms);
  if (max_output_bytes) defaults.max_output_bytes = static_cast<size_t>(*max_output_bytes);
  if (content_type) defaults.content_type = *content_type;
  if (kill_grace_ms) defaults.kill_grace = Ms(*kill_grace_ms);
  if (stream) defaults.stream_output = *stream;
  return defaults;
}

Status CheckServiceName(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return Status::InvalidArgument("a service name has 1 to 64 characters");
  }
  if (std::isalnum(static_cast<unsigned char>(name[0])) == 0) {
    return Status::InvalidArgument("service name '" + std::string(name) +
                                   "' must start with a letter or digit");
  }
  for (char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '.' && c != '_' && c != '-') {
      return Status::InvalidArgument("service name '" + PrintableTail(name, 64) +
                                     "' may hold only letters, digits, '.', '_' and '-'");
    }
  }
  return Status::Ok();
}

std::vector<std::string> SplitServiceList(std::string_view list) {
  auto starts_entry = [](std::string_view rest) {
    size_t eq = rest.find('=');
    if (eq == std::string_view::npos || !CheckServiceName(rest.substr(0, eq)).ok()) return false;
    std::string_view handler = rest.substr(eq + 1);
    for (std::string_view prefix : {"builtin:", "http://", "https://", "exec:"}) {
      if (handler.substr(0, prefix.size()) == prefix) return true;
    }
    return false;
  };
  // Stray separators around the list (a trailing comma in a unit file) are not part of any entry.
  while (!list.empty() && (list.front() == ',' || list.front() == ' ')) list.remove_prefix(1);
  while (!list.empty() && (list.back() == ',' || list.back() == ' ')) list.remove_suffix(1);
  std::vector<std::string> out;
  size_t begin = 0;
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i] == ',' && starts_entry(list.substr(i + 1))) {
      out.emplace_back(list.substr(begin, i - begin));
      begin = i + 1;
    }
  }
  out.emplace_back(list.substr(begin));
  out.erase(std::remove(out.begin(), out.end(), std::string()), out.end());
  return out;
}

Status CheckEnrolToken(std::string_view token) {
  if (token.empty() || token.size() > kMaxEnrolTokenBytes) {
    return Status::InvalidArgument("an enrolment token has 1 to " +
                                   std::to_string(kMaxEnrolTokenBytes) + " characters, not " +
                                   std::to_string(token.size()));
  }
  for (size_t i = 0; i < token.size(); ++i) {
    const auto c = static_cast<unsigned char>(token[i]);
    if (c <= ' ' || c > '~') {
      return Status::InvalidArgument(
          "an enrolment token holds printable ASCII characters without spaces; character " +
          std::to_string(i + 1) +
          " is not one (a token looks like rma_enrol_ followed by hex digits: paste it whole)");
    }
  }
  return Status::Ok();
}

Result<ServiceConfig> ParseServiceFlag(std::string_view flag) {
  size_t eq = flag.find('=');
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == flag.size()) {
    return Status::InvalidArgument("'" + PrintableTail(flag, 200) + "' must be NAME=HANDLER");
  }
  ServiceConfig s;
  s.name = std::string(flag.substr(0, eq));
  RMA_RETURN_IF_ERROR(CheckServiceName(s.name));
  s.handler = std::string(flag.substr(eq + 1));
  return s;
}

Status AddModel(ServiceConfig* service, const std::string& model) {
  RMA_RETURN_IF_ERROR(proto::CheckModelName(model));
  if (std::find(service->models.begin(), service->models.end(), model) != service->models.end()) {
    return Status::Ok();
  }
  if (service->models.size() >= proto::kMaxModelsPerService) {
    return Status::InvalidArgument("a service serves at most " +
                                   std::to_string(proto::kMaxModelsPerService) + " models");
  }
  service->models.push_back(model);
  return Status::Ok();
}

Result<std::pair<std::string, std::string>> ParseModelFlag(std::string_view flag) {
  size_t eq = flag.find('=');
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == flag.size()) {
    return Status::InvalidArgument("'" + PrintableTail(flag, 200) + "' must be SERVICE=MODEL");
  }
  std::string service(flag.substr(0, eq));
  RMA_RETURN_IF_ERROR(CheckServiceName(service));
  std::string model(flag.substr(eq + 1));
  RMA_RETURN_IF_ERROR(proto::CheckModelName(model));
  return std::make_pair(std::move(service), std::move(model));
}

Result<std::pair<std::string, std::string>> ParseLabel(std::string_view flag) {
  size_t eq = flag.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return Status::InvalidArgument("label '" + PrintableTail(flag, 200) + "' must be KEY=VALUE");
  }
  std::string key(flag.substr(0, eq));
  std::string value(flag.substr(eq + 1));
  if (key.size() > kMaxLabelBytes || value.size() > kMaxLabelBytes) {
    return Status::InvalidArgument("label '" + key.substr(0, 64) + "' is too long");
  }
  return std::make_pair(std::move(key), std::move(value));
}

Result<WorkerConfig> ParseWorkerConfig(std::string_view json_text) {
  json doc;
  try {
    doc = json::parse(json_text.begin(), json_text.end());
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("not valid JSON: ") + e.what());
  }
  if (!doc.is_object()) return Status::InvalidArgument("the configuration must be a JSON object");
  RMA_RETURN_IF_ERROR(CheckKeys(doc, "",
                                {"broker",
                                 "broker_key",
                                 "enrol_token",
                                 "name",
                                 "worker_id",
                                 "data_dir",
                                 "token",
                                 "simulate",
                                 "worker_type",
                                 "generic",
                                 "log_level",
                                 "slots",
                                 "heartbeat_ms",
                                 "drain_grace_ms",
                                 "health_interval_ms",
                                 "health_timeout_ms",
                                 "health_failures",
                                 "connect_timeout_ms",
                                 "max_output_bytes",
                                 "labels",
                                 "services"}));
  WorkerConfig c;
  RMA_RETURN_IF_ERROR(ReadString(doc, "", "broker", &c.broker));
  RMA_RETURN_IF_ERROR(ReadString(doc, "", "name", &c.name, 256));
  RMA_RETURN_IF_ERROR(ReadString(doc, "", "worker_id", &c.worker_id, 128));
  RMA_RETURN_IF_ERROR(ReadString(doc, "", "data_dir", &c.data_dir));
  RMA_RETURN_IF_ERROR(ReadString(doc, "", "token", &c.token));
  RMA_RETURN_IF_ERROR(ReadString(doc, "", "broker_key", &c.broker_key));
  RMA_RETURN_IF_ERROR(ReadString(doc, "", "enrol_token", &c.enrol_token));
  if (c.enrol_token)
    RMA_RETURN_IF_ERROR(CheckEnrolToken(*c.enrol_token).WithContext("enrol_token"));
  RMA_RETURN_IF_ERROR(ReadString(doc, "", "simulate", &c.simulate));
  if (c.simulate && *c.simulate != "gpu" && *c.simulate != "cpu" && *c.simulate != "storage") {
    return Bad("simulate", "must be gpu, cpu or storage");
  }
  RMA_RETURN_IF_ERROR(ReadString(doc, "", "worker_type", &c.worker_type));
  if (c.worker_type && *c.worker_type != "gpu" && *c.worker_type != "cpu" &&
      *c.worker_type != "storage") {
    return Bad("worker_type", "must be gpu, cpu or storage");
  }
  RMA_RETURN_IF_ERROR(ReadString(doc, "", "generic", &c.generic, 64 * 1024));
  RMA_RETURN_IF_ERROR(ReadString(doc, "", "log_level", &c.log_level));
  RMA_RETURN_IF_ERROR(ReadInt(doc, "", "slots", 1, 4096, &c.slots));
  RMA_RETURN_IF_ERROR(ReadInt(doc, "", "heartbeat_ms", 10, 3'600'000, &c.heartbeat_ms));
  RMA_RETURN_IF_ERROR(ReadInt(doc, "", "drain_grace_ms", 0, kDay, &c.drain_grace_ms));
  RMA_RETURN_IF_ERROR(ReadInt(doc, "", "health_interval_ms", 10, 3'600'000, &c.health_interval_ms));
  RMA_RETURN_IF_ERROR(ReadInt(doc, "", "health_timeout_ms", 1, 600'000, &c.health_timeout_ms));
  RMA_RETURN_IF_ERROR(ReadInt(doc, "", "health_failures", 1, 100, &c.health_failures));
  RMA_RETURN_IF_ERROR(ReadInt(doc, "", "connect_timeout_ms", 1, 600'000, &c.connect_timeout_ms));
  RMA_RETURN_IF_ERROR(ReadInt(doc, "", "max_output_bytes", 1, 1LL << 30, &c.max_output_bytes));
  if (auto it = doc.find("labels"); it != doc.end()) {
    if (!it->is_object()) return Bad("labels", "must be an object of strings");
    if (it->size() > kMaxLabels) return Bad("labels", "more than 64 labels");
    for (const auto& [key, value] : it->items()) {
      if (!value.is_string()) return Bad("labels." + key, "must be a string");
      auto label = ParseLabel(key + "=" + value.get<std::string>());
      if (!label.ok()) return label.status().WithContext("labels");
      c.labels.insert(*label);
    }
  }
  if (auto it = doc.find("services"); it != doc.end()) {
    if (!it->is_object()) return Bad("services", "must be an object of NAME: HANDLER");
    if (it->size() > kMaxServices) return Bad("services", "more than 256 services");
    for (const auto& [name, value] : it->items()) {
      ServiceConfig s;
      RMA_RETURN_IF_ERROR(ParseService(name, value, &s));
      c.services.push_back(std::move(s));
    }
  }
  return c;
}

Result<WorkerConfig> LoadWorkerConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read configuration file '" + path + "'");
  std::string text;
  char buf[16 * 1024];
  while (in && text.size() <= kMaxFileBytes) {
    in.read(buf, sizeof buf);
    text.append(buf, static_cast<size_t>(in.gcount()));
  }
  if (text.size() > kMaxFileBytes) {
    return Status::InvalidArgument("configuration file '" + path + "' is larger than 1 MiB");
  }
  auto config = ParseWorkerConfig(text);
  if (!config.ok()) return config.status().WithContext(path);
  return config;
}

}  // namespace rma::worker
