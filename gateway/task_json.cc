// See task_json.h.
#include "gateway/task_json.h"

#include <cmath>
#include <ctime>

namespace rma::gateway {

using nlohmann::json;

namespace {

Result<int64_t> IntField(const json& j, const char* key, int64_t lo, int64_t hi) {
  const json& v = j.at(key);
  if (!v.is_number_integer() &&
      !(v.is_number_float() && std::floor(v.get<double>()) == v.get<double>())) {
    return Status::InvalidArgument(std::string("'") + key + "' must be an integer");
  }
  double d = v.get<double>();
  if (d < static_cast<double>(lo) || d > static_cast<double>(hi)) {
    return Status::InvalidArgument(std::string("'") + key + "' must be between " +
                                   std::to_string(lo) + " and " + std::to_string(hi));
  }
  return static_cast<int64_t>(d);
}

Result<double> NumberField(const json& j, const char* key, double lo, double hi) {
  const json& v = j.at(key);
  if (!v.is_number()) return Status::InvalidArgument(std::string("'") + key + "' must be a number");
  double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) {
    return Status::InvalidArgument(std::string("'") + key + "' is out of range");
  }
  return d;
}

// RFC 3339 "YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM)" to Unix milliseconds.
Result<int64_t> ParseRfc3339(const std::string& s) {
  std::tm tm{};
  int millis = 0;
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr)
    return Status::InvalidArgument("'run_at' must be an RFC 3339 time or Unix seconds");
  if (*end == '.') {
    ++end;
    int digits = 0;
    while (*end >= '0' && *end <= '9') {
      if (digits < 3) millis = millis * 10 + (*end - '0');
      ++digits;
      ++end;
    }
    while (digits++ < 3) millis *= 10;
  }
  int64_t offset_s = 0;
  if (*end == 'Z' || *end == 'z') {
    ++end;
  } else if (*end == '+' || *end == '-') {
    int hh = 0, mm = 0;
    if (std::sscanf(end + 1, "%2d:%2d", &hh, &mm) != 2)
      return Status::InvalidArgument("bad 'run_at' offset");
    offset_s = (hh * 3600 + mm * 60) * (*end == '+' ? 1 : -1);
    end += 6;
  } else {
    return Status::InvalidArgument("'run_at' needs a time zone (Z or +HH:MM)");
  }
  if (*end != '\0') return Status::InvalidArgument("trailing characters in 'run_at'");
  int64_t secs = static_cast<int64_t>(timegm(&tm)) - offset_s;
  return secs * 1000 + millis;
}

json TimeOrNull(int64_t ms) { return ms > 0 ? json(FormatTime(FromUnixMs(ms))) : json(nullptr); }

}  // namespace

Result<proto::Submit> ParseSubmitJson(std::string_view body, const SubmitLimits& limits, Time now) {
  if (!JsonDepthWithin(body, kMaxJsonDepth)) {
    return Status::InvalidArgument("request body nests deeper than " +
                                   std::to_string(kMaxJsonDepth) + " levels");
  }
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument("request body is not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument("request body must be a JSON object");
  proto::Submit s;
  if (!j.contains("service") || !j["service"].is_string()) {
    return Status::InvalidArgument("'service' is required and must be a string");
  }
  s.service = j["service"].get<std::string>();
  if (s.service.empty() || s.service.size() > 128) {
    return Status::InvalidArgument("'service' must be 1 to 128 characters");
  }
  for (char c : s.service) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return Status::InvalidArgument("'service' may hold only letters, digits, '-', '_' and '.'");
    }
  }
  if (j.contains("payload")) {
    s.payload = j["payload"].dump();
    s.content_type = "application/json";
  }
  if (s.payload.size() > limits.max_payload_bytes) {
    return Status::ResourceExhausted("'payload' is larger than " +
                                     std::to_string(limits.max_payload_bytes) + " bytes");
  }
  try {
    if (j.contains("priority") && !j["priority"].is_null()) {
      RMA_ASSIGN_OR_RETURN(int64_t p, IntField(j, "priority", 0, 9));
      s.priority = static_cast<uint32_t>(p);
    }
    if (j.contains("max_attempts") && !j["max_attempts"].is_null()) {
      RMA_ASSIGN_OR_RETURN(int64_t m, IntField(j, "max_attempts", 1, 100));
      s.max_attempts = static_cast<uint32_t>(m);
    }
    if (j.contains("timeout_s") && !j["timeout_s"].is_null()) {
      RMA_ASSIGN_OR_RETURN(double t,
                           NumberField(j, "timeout_s", 0.001, ToSecondsF(limits.max_timeout)));
      s.timeout_ms = static_cast<uint32_t>(std::max(1.0, t * 1000.0));
    }
    if (j.contains("idempotency_key") && !j["idempotency_key"].is_null()) {
      if (!j["idempotency_key"].is_string())
        return Status::InvalidArgument("'idempotency_key' must be a string");
      s.idempotency_key = j["idempotency_key"].get<std::string>();
      if (s.idempotency_key.empty() || s.idempotency_key.size() > 256) {
        return Status::InvalidArgument("'idempotency_key' must be 1 to 256 characters");
      }
    }
    if (j.contains("min_tier") && !j["min_tier"].is_null()) {
      RMA_ASSIGN_OR_RETURN(int64_t t, IntField(j, "min_tier", 1, 3));
      s.min_tier = static_cast<uint32_t>(t);
    }
    if (j.contains("min_gpu_memory_gb") && !j["min_gpu_memory_gb"].is_null()) {
      RMA_ASSIGN_OR_RETURN(double g, NumberField(j, "min_gpu_memory_gb", 0, 1e6));
      s.min_gpu_memory_gb = g;
    }
    if (j.contains("run_at") && !j["run_at"].is_null()) {
      if (j["run_at"].is_string()) {
        RMA_ASSIGN_OR_RETURN(int64_t ms, ParseRfc3339(j["run_at"].get<std::string>()));
        s.run_at_ms = ms;
      } else {
        RMA_ASSIGN_OR_RETURN(double secs, NumberField(j, "run_at", 0, 1e11));
        s.run_at_ms = static_cast<int64_t>(secs * 1000.0);
      }
    }
    if (j.contains("delay_s") && !j["delay_s"].is_null()) {
      RMA_ASSIGN_OR_RETURN(double d, NumberField(j, "delay_s", 0, 365.0 * 86400));
      s.run_at_ms = ToUnixMs(now) + static_cast<int64_t>(d * 1000.0);
    }
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("bad field: ") + e.what());
  }
  return s;
}

json TaskJson(const proto::TaskView& t, bool with_result) {
  json j = {{"task_id", ToString(t.task_id)},
            {"service", t.service},
            {"status", proto::TaskStatusName(t.status)},
            {"priority", t.priority},
            {"attempts", t.attempts},
            {"max_attempts", t.max_attempts},
            {"worker_id", t.worker_id.empty() ? json(nullptr) : json(t.worker_id)},
            {"error", t.error.empty() ? json(nullptr) : json(t.error)},
            {"created_at", TimeOrNull(t.created_at_ms)},
            {"started_at", TimeOrNull(t.started_at_ms)},
            {"completed_at", TimeOrNull(t.completed_at_ms)}};
  if (!t.error_code.empty()) j["error_code"] = t.error_code;
  if (!t.idempotency_key.empty()) j["idempotency_key"] = t.idempotency_key;
  if (t.waiting_for_provider) j["waiting_for_provider"] = true;
  if (t.http_status != 0) j["http_status"] = t.http_status;
  if (!with_result) return j;
  if (t.status != proto::TaskStatus::kCompleted) {
    j["result"] = nullptr;
    return j;
  }
  if (!t.content_type.empty()) j["content_type"] = t.content_type;
  bool is_json = t.content_type.find("json") != std::string::npos;
  if (is_json && JsonDepthWithin(t.result, kMaxJsonDepth)) {
    json parsed = json::parse(t.result.view(), nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_discarded()) {
      j["result"] = std::move(parsed);
      return j;
    }
  }
  if (IsValidUtf8(t.result)) {
    j["result"] = t.result;
  } else {
    j["result"] = Base64Encode(t.result);
    j["result_encoding"] = "base64";
  }
  return j;
}

json MsgpackToJson(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return nullptr;
    case msgpack::type::BOOLEAN:
      return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER:
      return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER:
      return o.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return o.via.f64;
    case msgpack::type::STR:
      return std::string(o.via.str.ptr, o.via.str.size);
    case msgpack::type::BIN:
      return Base64Encode(std::string_view(o.via.bin.ptr, o.via.bin.size));
    case msgpack::type::ARRAY: {
      json a = json::array();
      for (uint32_t i = 0; i < o.via.array.size; ++i)
        a.push_back(MsgpackToJson(o.via.array.ptr[i]));
      return a;
    }
    case msgpack::type::MAP: {
      json m = json::object();
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        const msgpack::object& k = o.via.map.ptr[i].key;
        std::string key = k.type == msgpack::type::STR ? std::string(k.via.str.ptr, k.via.str.size)
                                                       : MsgpackToJson(k).dump();
        m[key] = MsgpackToJson(o.via.map.ptr[i].val);
      }
      return m;
    }
    default:
      return nullptr;
  }
}

json ErrorJson(std::string_view message, std::string_view code) {
  return {{"error", std::string(message)}, {"code", std::string(code)}};
}

bool JsonDepthWithin(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return true;
}

std::string Base64Encode(std::string_view in) {
  static constexpr char kTable[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                 static_cast<uint8_t>(in[i + 2]);
    out += kTable[(v >> 18) & 63];
    out += kTable[(v >> 12) & 63];
    out += kTable[(v >> 6) & 63];
    out += kTable[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    out += kTable[(v >> 18) & 63];
    out += kTable[(v >> 12) & 63];
    out += i + 1 < in.size() ? kTable[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t extra;
    if (c < 0x80) {
      extra = 0;
    } else if ((c & 0xe0) == 0xc0 && c >= 0xc2) {
      extra = 1;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2;
    } else if ((c & 0xf8) == 0xf0 && c <= 0xf4) {
      extra = 3;
    } else {
      return false;
    }
    if (extra > s.size() - i - 1) return false;
    for (size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += extra + 1;
  }
  return true;
}

}  // namespace rma::gateway
