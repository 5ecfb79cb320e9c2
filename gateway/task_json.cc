// See task_json.h.
#include "gateway/task_json.h"

#include <cctype>
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

namespace {

// "service": required, [A-Za-z0-9._-]{1,128}.
Status ReadService(const json& j, proto::Submit* s) {
  if (!j.contains("service") || !j["service"].is_string()) {
    return Status::InvalidArgument("'service' is required and must be a string");
  }
  s->service = j["service"].get<std::string>();
  if (s->service.empty() || s->service.size() > 128) {
    return Status::InvalidArgument("'service' must be 1 to 128 characters");
  }
  for (char c : s->service) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return Status::InvalidArgument("'service' may hold only letters, digits, '-', '_' and '.'");
    }
  }
  return Status::Ok();
}

Status CheckPayloadSize(const proto::Submit& s, const SubmitLimits& limits) {
  if (s.payload.size() > limits.max_payload_bytes) {
    return Status::ResourceExhausted("'payload' is larger than " +
                                     std::to_string(limits.max_payload_bytes) + " bytes");
  }
  return Status::Ok();
}

// Every optional field but the payload; null is the same as absent.
Status ReadOptionalFields(const json& j, const SubmitLimits& limits, Time now, proto::Submit* s) {
  auto has = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
  try {
    if (has("priority")) {
      RMA_ASSIGN_OR_RETURN(int64_t p, IntField(j, "priority", 0, 9));
      s->priority = static_cast<uint32_t>(p);
    }
    if (has("max_attempts")) {
      RMA_ASSIGN_OR_RETURN(int64_t m, IntField(j, "max_attempts", 1, 100));
      s->max_attempts = static_cast<uint32_t>(m);
    }
    if (has("timeout_s")) {
      RMA_ASSIGN_OR_RETURN(double t,
                           NumberField(j, "timeout_s", 0.001, ToSecondsF(limits.max_timeout)));
      s->timeout_ms = static_cast<uint32_t>(std::max(1.0, t * 1000.0));
    }
    if (has("idempotency_key")) {
      if (!j["idempotency_key"].is_string())
        return Status::InvalidArgument("'idempotency_key' must be a string");
      s->idempotency_key = j["idempotency_key"].get<std::string>();
      if (s->idempotency_key.empty() || s->idempotency_key.size() > 256) {
        return Status::InvalidArgument("'idempotency_key' must be 1 to 256 characters");
      }
    }
    if (has("min_tier")) {
      RMA_ASSIGN_OR_RETURN(int64_t t, IntField(j, "min_tier", 1, 3));
      s->min_tier = static_cast<uint32_t>(t);
    }
    if (has("min_gpu_memory_gb")) {
      RMA_ASSIGN_OR_RETURN(double g, NumberField(j, "min_gpu_memory_gb", 0, 1e6));
      s->min_gpu_memory_gb = g;
    }
    if (has("run_at")) {
      if (j["run_at"].is_string()) {
        RMA_ASSIGN_OR_RETURN(int64_t ms, ParseRfc3339(j["run_at"].get<std::string>()));
        s->run_at_ms = ms;
      } else {
        RMA_ASSIGN_OR_RETURN(double secs, NumberField(j, "run_at", 0, 1e11));
        s->run_at_ms = static_cast<int64_t>(secs * 1000.0);
      }
    }
    if (has("trusted_only")) {
      if (!j["trusted_only"].is_boolean())
        return Status::InvalidArgument("'trusted_only' must be true or false");
      s->trusted_only = j["trusted_only"].get<bool>();
    }
    if (has("delay_s")) {
      RMA_ASSIGN_OR_RETURN(double d, NumberField(j, "delay_s", 0, 365.0 * 86400));
      s->run_at_ms = ToUnixMs(now) + static_cast<int64_t>(d * 1000.0);
    }
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("bad field: ") + e.what());
  }
  return Status::Ok();
}

const std::vector<std::string_view>& SubmitFields() {
  static const std::vector<std::string_view> kFields = {
      "payload",  "service",           "priority", "max_attempts", "timeout_s",   "idempotency_key",
      "min_tier", "min_gpu_memory_gb", "run_at",   "delay_s",      "trusted_only"};
  return kFields;
}

}  // namespace

Result<proto::Submit> ParseSubmitJson(std::string body, const SubmitLimits& limits, Time now) {
  // nlohmann's lexer takes a NUL byte for the end of its input and ignores what follows
  // ({"service":"x"}\0anything parses); JSON never holds a raw NUL, so neither form accepts one.
  if (body.find('\0') != std::string::npos) {
    return Status::InvalidArgument("request body is not valid JSON");
  }
  if (!JsonDepthWithin(body, kMaxJsonDepth)) {
    return Status::InvalidArgument("request body nests deeper than " +
                                   std::to_string(kMaxJsonDepth) + " levels");
  }
  proto::Submit s;
  if (body.size() <= limits.document_max_bytes) {
    json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return Status::InvalidArgument("request body is not valid JSON");
    if (!j.is_object()) return Status::InvalidArgument("request body must be a JSON object");
    RMA_RETURN_IF_ERROR(ReadService(j, &s));
    if (j.contains("payload")) {
      s.payload = j["payload"].dump();
      s.content_type = "application/json";
    }
    RMA_RETURN_IF_ERROR(CheckPayloadSize(s, limits));
    RMA_RETURN_IF_ERROR(ReadOptionalFields(j, limits, now, &s));
    return s;
  }
  // The large form: no document of the body, ever (see task_json.h).
  if (!json::accept(body)) return Status::InvalidArgument("request body is not valid JSON");
  std::vector<JsonSlice> found;
  if (!ScanJsonObject(body, kMaxJsonDepth, SubmitFields(), &found).ok()) {
    return Status::InvalidArgument("request body must be a JSON object");
  }
  json fields = json::object();
  for (size_t i = 1; i < SubmitFields().size(); ++i) {  // [0] is the payload
    const JsonSlice& f = found[i];
    if (!f.present) continue;
    const std::string name(SubmitFields()[i]);
    if (f.end - f.begin > kMaxSubmitFieldBytes) {
      return Status::InvalidArgument("'" + name + "' is too large");
    }
    fields[name] = json::parse(std::string_view(body).substr(f.begin, f.end - f.begin), nullptr,
                               /*allow_exceptions=*/false);
    if (fields[name].is_discarded()) return Status::InvalidArgument("'" + name + "' is malformed");
  }
  RMA_RETURN_IF_ERROR(ReadService(fields, &s));
  if (found[0].present) {
    CompactJsonInPlace(&body, found[0].begin, found[0].end);
    s.payload = Bytes(std::move(body));
    s.content_type = "application/json";
  }
  RMA_RETURN_IF_ERROR(CheckPayloadSize(s, limits));
  RMA_RETURN_IF_ERROR(ReadOptionalFields(fields, limits, now, &s));
  return s;
}

// ---- The scanner ------------------------------------------------------------------------------

namespace {

class JsonScanner {
 public:
  explicit JsonScanner(std::string_view text) : t_(text) {}

  size_t pos() const { return i_; }
  bool AtEnd() const { return i_ >= t_.size(); }
  char Peek() const { return t_[i_]; }
  void Skip() { ++i_; }

  void Whitespace() {
    while (i_ < t_.size() &&
           (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\n' || t_[i_] == '\r')) {
      ++i_;
    }
  }

  // At '"': past the closing quote. Sets *escaped when the string holds a backslash.
  bool String(bool* escaped) {
    *escaped = false;
    ++i_;
    while (i_ < t_.size()) {
      const auto c = static_cast<unsigned char>(t_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        *escaped = true;
        if (++i_ >= t_.size()) return false;
        const char e = t_[i_];
        if (e == 'u') {
          if (t_.size() - i_ < 5) return false;
          for (size_t k = 1; k <= 4; ++k) {
            if (!std::isxdigit(static_cast<unsigned char>(t_[i_ + k]))) return false;
          }
          i_ += 4;
        } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
          return false;
        }
      }
      ++i_;
    }
    return false;
  }

  bool Number() {
    auto digits = [&] {
      size_t start = i_;
      while (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9') ++i_;
      return i_ > start;
    };
    if (t_[i_] == '-') ++i_;
    if (i_ < t_.size() && t_[i_] == '0') {
      ++i_;
    } else if (!digits()) {
      return false;
    }
    if (i_ < t_.size() && t_[i_] == '.') {
      ++i_;
      if (!digits()) return false;
    }
    if (i_ < t_.size() && (t_[i_] == 'e' || t_[i_] == 'E')) {
      ++i_;
      if (i_ < t_.size() && (t_[i_] == '+' || t_[i_] == '-')) ++i_;
      if (!digits()) return false;
    }
    return true;
  }

  bool Literal(std::string_view word) {
    if (t_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  // One value of any kind, iteratively; containers may nest `max_depth` deep.
  bool Value(size_t max_depth) {
    enum class Expect { kValue, kValueOrClose, kName, kNameOrClose, kAfterValue };
    std::vector<char> open;  // '{' or '[' per level
    Expect e = Expect::kValue;
    for (;;) {
      if (e == Expect::kAfterValue && open.empty()) return true;
      Whitespace();
      if (AtEnd()) return false;
      const char c = Peek();
      bool escaped = false;
      switch (e) {
        case Expect::kValueOrClose:
          if (c == ']') {
            Skip();
            open.pop_back();
            e = Expect::kAfterValue;
            break;
          }
          [[fallthrough]];
        case Expect::kValue:
          if (c == '{' || c == '[') {
            if (open.size() >= max_depth) return false;
            open.push_back(c);
            Skip();
            e = c == '{' ? Expect::kNameOrClose : Expect::kValueOrClose;
          } else if (c == '"') {
            if (!String(&escaped)) return false;
            e = Expect::kAfterValue;
          } else if (c == '-' || (c >= '0' && c <= '9')) {
            if (!Number()) return false;
            e = Expect::kAfterValue;
          } else if (Literal("true") || Literal("false") || Literal("null")) {
            e = Expect::kAfterValue;
          } else {
            return false;
          }
          break;
        case Expect::kNameOrClose:
          if (c == '}') {
            Skip();
            open.pop_back();
            e = Expect::kAfterValue;
            break;
          }
          [[fallthrough]];
        case Expect::kName:
          if (c != '"' || !String(&escaped)) return false;
          Whitespace();
          if (AtEnd() || Peek() != ':') return false;
          Skip();
          e = Expect::kValue;
          break;
        case Expect::kAfterValue:
          if (c == ',') {
            Skip();
            e = open.back() == '{' ? Expect::kName : Expect::kValue;
          } else if ((c == '}' && open.back() == '{') || (c == ']' && open.back() == '[')) {
            Skip();
            open.pop_back();
          } else {
            return false;
          }
          break;
      }
    }
  }

 private:
  std::string_view t_;
  size_t i_ = 0;
};

}  // namespace

Status ScanJsonObject(std::string_view text, size_t max_depth,
                      const std::vector<std::string_view>& wanted, std::vector<JsonSlice>* found) {
  found->assign(wanted.size(), JsonSlice{});
  auto bad = [] { return Status::InvalidArgument("not a JSON object"); };
  if (max_depth == 0) return bad();
  JsonScanner in(text);
  in.Whitespace();
  if (in.AtEnd() || in.Peek() != '{') return bad();
  in.Skip();
  in.Whitespace();
  if (!in.AtEnd() && in.Peek() == '}') {
    in.Skip();
  } else {
    for (;;) {
      in.Whitespace();
      if (in.AtEnd() || in.Peek() != '"') return bad();
      const size_t name_begin = in.pos();
      bool escaped = false;
      if (!in.String(&escaped)) return bad();
      const size_t name_end = in.pos();
      in.Whitespace();
      if (in.AtEnd() || in.Peek() != ':') return bad();
      in.Skip();
      in.Whitespace();
      const size_t value_begin = in.pos();
      if (!in.Value(max_depth - 1)) return bad();
      const size_t value_end = in.pos();
      // Which wanted name this is. Names no wanted name could be spelled as (long ones) are never
      // decoded.
      std::string decoded;
      std::string_view name = text.substr(name_begin + 1, name_end - name_begin - 2);
      if (escaped && name.size() <= 256) {
        json n = json::parse(text.substr(name_begin, name_end - name_begin), nullptr, false);
        if (n.is_string()) {
          decoded = n.get<std::string>();
          name = decoded;
        }
      }
      if (!escaped || name.size() <= 256) {
        for (size_t k = 0; k < wanted.size(); ++k) {
          if (wanted[k] == name) (*found)[k] = JsonSlice{true, value_begin, value_end};
        }
      }
      in.Whitespace();
      if (in.AtEnd()) return bad();
      if (in.Peek() == ',') {
        in.Skip();
        continue;
      }
      if (in.Peek() != '}') return bad();
      in.Skip();
      break;
    }
  }
  in.Whitespace();
  if (!in.AtEnd()) return bad();
  return Status::Ok();
}

void CompactJsonInPlace(std::string* text, size_t begin, size_t end) {
  char* d = text->data();
  size_t out = 0;
  bool in_string = false;
  for (size_t i = begin; i < end; ++i) {
    const char c = d[i];
    if (in_string) {
      d[out++] = c;
      if (c == '\\' && i + 1 < end) {
        d[out++] = d[++i];
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
      if (c == '"') in_string = true;
      d[out++] = c;
    }
  }
  text->resize(out);
}

json TaskJson(const proto::TaskView& t, bool with_result, bool with_owner) {
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
  if (t.queue_position > 0) j["queue_position"] = t.queue_position;
  if (t.estimated_start_s > 0) j["estimated_start_s"] = std::round(t.estimated_start_s * 10) / 10;
  if (t.http_status != 0) j["http_status"] = t.http_status;
  if (t.status == proto::TaskStatus::kCompleted) j["verified"] = t.verified;
  if (with_owner) j["owner"] = t.owner;
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
