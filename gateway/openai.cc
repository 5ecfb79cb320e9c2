// See openai.h.
#include "gateway/openai.h"

#include <algorithm>

#include "gateway/metrics.h"

namespace rma::gateway {

using nlohmann::json;

Result<OpenAiRequest> ParseOpenAiRequest(std::string_view body) {
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return Status::InvalidArgument(
        "We could not parse the JSON body of your request: it is not valid JSON.");
  }
  if (!doc.is_object()) return Status::InvalidArgument("The request body must be a JSON object.");
  auto model = doc.find("model");
  if (model == doc.end() || !model->is_string() || model->get_ref<const std::string&>().empty()) {
    return Status::InvalidArgument("you must provide a model parameter");
  }
  OpenAiRequest r;
  r.model = model->get<std::string>();
  if (r.model.size() > kMaxModelNameBytes) {
    return Status::InvalidArgument("model must be at most " + std::to_string(kMaxModelNameBytes) +
                                   " bytes");
  }
  auto stream = doc.find("stream");
  r.stream = stream != doc.end() && stream->is_boolean() && stream->get<bool>();
  return r;
}

namespace {

std::string_view ErrorType(int status) {
  if (status == 401) return "authentication_error";
  if (status == 402) return "insufficient_quota";  // credits enforced, balance too low
  if (status == 403) return "permission_error";
  if (status == 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

}  // namespace

HttpReply OpenAiErrorReply(int status, std::string_view message, std::string_view code) {
  json error = {{"message", message}, {"type", ErrorType(status)}, {"param", nullptr}};
  error["code"] = code.empty() ? json(nullptr) : json(code);
  HttpReply r;
  r.status = status;
  r.body = json{{"error", std::move(error)}}.dump();
  return r;
}

HttpReply ToOpenAiError(HttpReply reply) {
  json doc = json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  std::string message = "the request failed";
  std::string code;
  if (doc.is_object()) {
    if (auto e = doc.find("error"); e != doc.end() && e->is_string()) message = *e;
    if (auto c = doc.find("code"); c != doc.end() && c->is_string()) code = *c;
  }
  if (reply.status == 404 && code == "not_found") code = "model_not_found";
  HttpReply out = OpenAiErrorReply(reply.status, message, code);
  out.headers = std::move(reply.headers);
  return out;
}

namespace {

std::optional<Usage> UsageFrom(const json& doc) {
  if (!doc.is_object()) return std::nullopt;
  auto u = doc.find("usage");
  if (u == doc.end() || !u->is_object()) return std::nullopt;
  Usage usage;
  auto read = [&](const char* name, uint64_t* out) {
    auto v = u->find(name);
    if (v != u->end() && v->is_number_unsigned()) *out = v->get<uint64_t>();
  };
  read("prompt_tokens", &usage.prompt_tokens);
  read("completion_tokens", &usage.completion_tokens);
  return usage;
}

}  // namespace

std::optional<Usage> UsageOf(std::string_view body, bool event_stream) {
  if (!event_stream) {
    return UsageFrom(json::parse(body, nullptr, /*allow_exceptions=*/false));
  }
  // The usage chunk is among the last events: read backwards, a bounded number of events.
  constexpr int kEventsRead = 8;
  size_t end = body.size();
  for (int i = 0; i < kEventsRead && end > 0; ++i) {
    const size_t at = body.rfind("data:", end - 1);
    if (at == std::string_view::npos) break;
    std::string_view event = body.substr(at + 5, end - at - 5);
    end = at;
    while (!event.empty() && (event.front() == ' ')) event.remove_prefix(1);
    if (event.rfind("{", 0) != 0 || event.find("\"usage\"") == std::string_view::npos) continue;
    if (auto usage = UsageFrom(json::parse(event, nullptr, false))) return usage;
  }
  return std::nullopt;
}

json ModelList(const json& broker_doc) {
  json data = json::array();
  if (broker_doc.is_object() && broker_doc.contains("models") && broker_doc["models"].is_array()) {
    for (const json& m : broker_doc["models"]) {
      if (!m.is_object() || !m.contains("id") || !m["id"].is_string()) continue;
      json created = m.contains("created") && m["created"].is_number() ? m["created"] : json(0);
      data.push_back(
          {{"id", m["id"]}, {"object", "model"}, {"created", created}, {"owned_by", "rma"}});
    }
  }
  return {{"object", "list"}, {"data", std::move(data)}};
}

// ---- ModelMetrics -------------------------------------------------------------------------------

void ModelMetrics::Record(std::string_view model, int status, std::optional<Duration> first_byte,
                          std::optional<Usage> usage) {
  const std::vector<double>& bounds = HttpMetrics::LatencyBounds();
  MutexLock lock(&mu_);
  auto it = models_.find(model);
  if (it == models_.end()) {
    std::string label = models_.size() < kMaxModels ? std::string(model) : std::string("other");
    it = models_.try_emplace(std::move(label)).first;
  }
  PerModel& m = it->second;
  ++m.requests[status];
  if (usage) {
    m.prompt_tokens += usage->prompt_tokens;
    m.completion_tokens += usage->completion_tokens;
  }
  if (first_byte) {
    if (m.first_byte_buckets.empty()) m.first_byte_buckets.resize(bounds.size() + 1);
    const double s = ToSecondsF(*first_byte);
    const size_t b =
        static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), s) - bounds.begin());
    ++m.first_byte_buckets[b];
    m.first_byte_sum_s += s;
    ++m.first_byte_count;
  }
}

void ModelMetrics::Render(std::string* out) const {
  const std::vector<double>& bounds = HttpMetrics::LatencyBounds();
  MutexLock lock(&mu_);
  std::string& o = *out;
  o += "# HELP rma_gateway_openai_requests_total OpenAI-compatible requests by model and status.\n";
  o += "# TYPE rma_gateway_openai_requests_total counter\n";
  for (const auto& [model, m] : models_) {
    for (const auto& [status, n] : m.requests) {
      o += "rma_gateway_openai_requests_total{model=\"" + EscapeLabelValue(model) + "\",code=\"" +
           std::to_string(status) + "\"} " + std::to_string(n) + "\n";
    }
  }
  o += "# HELP rma_gateway_openai_tokens_total Tokens reported in answers' usage, by model.\n";
  o += "# TYPE rma_gateway_openai_tokens_total counter\n";
  for (const auto& [model, m] : models_) {
    const std::string label = EscapeLabelValue(model);
    o += "rma_gateway_openai_tokens_total{model=\"" + label + "\",kind=\"prompt\"} " +
         std::to_string(m.prompt_tokens) + "\n";
    o += "rma_gateway_openai_tokens_total{model=\"" + label + "\",kind=\"completion\"} " +
         std::to_string(m.completion_tokens) + "\n";
  }
  o += "# HELP rma_gateway_openai_first_byte_seconds Time from request to the first byte of a "
       "streamed answer, by model.\n";
  o += "# TYPE rma_gateway_openai_first_byte_seconds histogram\n";
  for (const auto& [model, m] : models_) {
    if (m.first_byte_count == 0) continue;
    const std::string label = EscapeLabelValue(model);
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= bounds.size(); ++i) {
      cumulative += m.first_byte_buckets[i];
      const std::string le = i < bounds.size() ? FormatSampleValue(bounds[i]) : "+Inf";
      o += "rma_gateway_openai_first_byte_seconds_bucket{model=\"" + label + "\",le=\"" + le +
           "\"} " + std::to_string(cumulative) + "\n";
    }
    o += "rma_gateway_openai_first_byte_seconds_sum{model=\"" + label + "\"} " +
         FormatSampleValue(m.first_byte_sum_s) + "\n";
    o += "rma_gateway_openai_first_byte_seconds_count{model=\"" + label + "\"} " +
         std::to_string(m.first_byte_count) + "\n";
  }
}

}  // namespace rma::gateway
