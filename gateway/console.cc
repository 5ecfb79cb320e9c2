// See console.h.
#include "gateway/console.h"

#include <charconv>
#include <cmath>
#include <ctime>

#include "gateway/http_wire.h"
#include "gateway/task_json.h"
#include "protocol/names.h"

namespace rma::gateway {

using nlohmann::json;

namespace {

bool Digits(std::string_view s, size_t at, size_t n, int* out) {
  if (at + n > s.size()) return false;
  int v = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

Result<int64_t> ParseRfc3339Ms(std::string_view s) {
  const Status bad = Status::InvalidArgument("not an RFC 3339 time");
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!Digits(s, 0, 4, &year) || s.size() < 20 || s[4] != '-' || !Digits(s, 5, 2, &month) ||
      s[7] != '-' || !Digits(s, 8, 2, &day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !Digits(s, 11, 2, &hour) || s[13] != ':' || !Digits(s, 14, 2, &minute) || s[16] != ':' ||
      !Digits(s, 17, 2, &second)) {
    return bad;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return bad;
  }
  size_t i = 19;
  int64_t millis = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (digits < 3) millis = millis * 10 + (s[i] - '0');
      ++digits;
      ++i;
    }
    if (digits == 0 || digits > 9) return bad;
    for (int d = digits; d < 3; ++d) millis *= 10;
  }
  int64_t offset_s = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh = 0, om = 0;
    if (!Digits(s, i + 1, 2, &oh) || i + 3 >= s.size() || s[i + 3] != ':' ||
        !Digits(s, i + 4, 2, &om) || oh > 23 || om > 59) {
      return bad;
    }
    offset_s = (s[i] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    i += 6;
  } else {
    return bad;
  }
  if (i != s.size()) return bad;
  const int64_t days =
      DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_s;
  return secs * 1000 + millis;
}

}  // namespace

Result<int64_t> ParseTimeMs(std::string_view text) {
  if (text.empty() || text.size() > 40) return Status::InvalidArgument("empty or too long");
  if (text.find_first_not_of("0123456789.") == std::string_view::npos) {
    double secs = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), secs);
    if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(secs) ||
        secs > 1e11) {
      return Status::InvalidArgument("not a number of seconds");
    }
    return static_cast<int64_t>(std::llround(secs * 1000));
  }
  RMA_ASSIGN_OR_RETURN(int64_t ms, ParseRfc3339Ms(text));
  if (ms < 0) return Status::InvalidArgument("before 1970");
  return ms;
}

Result<proto::List> ParseTaskListQuery(std::string_view query, const std::string& owner,
                                       bool admin) {
  proto::List list;
  list.owner = owner;
  list.admin = admin;
  auto param = [&](std::string_view name) -> std::string {
    auto v = QueryParam(query, name);
    return v ? *v : std::string();
  };
  auto bad = [](std::string_view what) { return Status::InvalidArgument(std::string(what)); };
  if (std::string service = param("service"); !service.empty()) {
    if (!proto::IsServiceName(service)) return bad("'service' is not a valid service name");
    list.service = service;
  }
  if (std::string status = param("status"); !status.empty()) {
    if (!proto::ParseTaskStatus(status)) {
      std::string known;
      for (std::string_view name : proto::TaskStatusNames()) {
        known += (known.empty() ? "" : ", ") + std::string(name);
      }
      return bad("unknown status '" + status.substr(0, 64) + "' (" + known + ")");
    }
    list.status = status;
  }
  if (std::string account = param("account"); !account.empty()) {
    if (account.size() > 128) return bad("'account' is too long");
    if (!admin && account != owner) {
      return Status::PermissionDenied("only an admin key may list another account's tasks");
    }
    list.account = account;
  }
  if (std::string worker = param("worker"); !worker.empty()) {
    if (worker.size() > 128) return bad("'worker' is too long");
    list.worker_id = worker;
  }
  if (std::string code = param("error_code"); !code.empty()) {
    if (code.size() > 64) return bad("'error_code' is too long");
    list.error_code = code;
  }
  for (const char* name : {"since", "until"}) {
    std::string text = param(name);
    if (text.empty()) continue;
    auto ms = ParseTimeMs(text);
    if (!ms.ok()) {
      return bad("'" + std::string(name) + "' must be an RFC 3339 time or Unix seconds");
    }
    (std::string_view(name) == "since" ? list.since_ms : list.until_ms) = *ms;
  }
  if (std::string cursor = param("cursor"); !cursor.empty()) {
    if (cursor.size() > 64 || cursor.find_first_not_of("0123456789.") != std::string::npos) {
      return bad("'cursor' is not a cursor of this list");
    }
    list.cursor = cursor;
  }
  if (auto limit = QueryParam(query, "limit")) {
    uint32_t n = 0;
    const std::string_view text = *limit;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || ptr != text.data() + text.size() || n < 1 || n > 1000) {
      return bad("'limit' must be an integer between 1 and 1000");
    }
    list.limit = n;
  }
  return list;
}

namespace {

// Bytes as the task JSON shows a result: a JSON document, UTF-8 text, or base64.
void PutBytes(json* j, const std::string& field, std::string_view bytes,
              const std::string& content_type) {
  const bool is_json = content_type.find("json") != std::string::npos;
  if (is_json && JsonDepthWithin(bytes, kMaxJsonDepth)) {
    json parsed = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_discarded()) {
      (*j)[field] = std::move(parsed);
      return;
    }
  }
  if (IsValidUtf8(bytes)) {
    (*j)[field] = std::string(bytes);
  } else {
    (*j)[field] = Base64Encode(bytes);
    (*j)[field + "_encoding"] = "base64";
  }
}

json TimeOrNull(int64_t ms) { return ms > 0 ? json(FormatTime(FromUnixMs(ms))) : json(nullptr); }

}  // namespace

json TaskDetailJson(const proto::TaskView& t, bool with_owner) {
  json j = TaskJson(t, /*with_result=*/t.result.size() <= kMaxInlineBytes, with_owner);
  j["payload_bytes"] = t.payload_bytes;
  j["result_bytes"] = t.result_bytes;
  j["payload_content_type"] =
      t.payload_content_type.empty() ? json(nullptr) : json(t.payload_content_type);
  if (t.payload.size() > kMaxInlineBytes) {
    j["payload"] = nullptr;
    j["payload_truncated"] = true;
  } else {
    PutBytes(&j, "payload", t.payload.view(), t.payload_content_type);
    j["payload_truncated"] = false;
  }
  j["result_truncated"] = t.result.size() > kMaxInlineBytes;
  if (t.result.size() > kMaxInlineBytes) {
    j["result"] = nullptr;
    if (!t.content_type.empty()) j["content_type"] = t.content_type;
  }
  json log = json::array();
  for (const proto::AttemptEntry& e : t.attempt_log) {
    log.push_back({{"attempt", e.attempt},
                   {"worker_id", e.worker_id.empty() ? json(nullptr) : json(e.worker_id)},
                   {"started_at", TimeOrNull(e.started_at_ms)},
                   {"ended_at", TimeOrNull(e.ended_at_ms)},
                   {"outcome", e.outcome},
                   {"error_code", e.error_code.empty() ? json(nullptr) : json(e.error_code)},
                   {"error", e.error.empty() ? json(nullptr) : json(e.error)}});
  }
  j["attempt_log"] = std::move(log);
  return j;
}

Result<proto::Admin> ParseBulkBody(std::string_view body, bool retry) {
  proto::Admin admin;
  admin.query = retry ? "bulk_retry" : "bulk_discard";
  if (body.size() > kMaxBulkBodyBytes) {
    return Status::ResourceExhausted("the body exceeds " + std::to_string(kMaxBulkBodyBytes) +
                                     " bytes");
  }
  const bool blank = body.find_first_not_of(" \t\r\n") == std::string_view::npos;
  if (blank) return admin;
  if (!JsonDepthWithin(body, kMaxJsonDepth)) return Status::InvalidArgument("nested too deep");
  json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return Status::InvalidArgument("the body must be a JSON object");
  if (doc.contains("service") && !doc["service"].is_null()) {
    if (!doc["service"].is_string() || !proto::IsServiceName(doc["service"].get<std::string>())) {
      return Status::InvalidArgument("'service' must be a service name");
    }
    admin.args["service"] = doc["service"].get<std::string>();
  }
  if (doc.contains("error_code") && !doc["error_code"].is_null()) {
    if (!doc["error_code"].is_string() || doc["error_code"].get<std::string>().size() > 64) {
      return Status::InvalidArgument("'error_code' must be a string of at most 64 bytes");
    }
    admin.args["error_code"] = doc["error_code"].get<std::string>();
  }
  if (doc.contains("task_ids") && !doc["task_ids"].is_null()) {
    const json& ids = doc["task_ids"];
    if (!ids.is_array() || ids.size() > kMaxBulkIds) {
      return Status::InvalidArgument("'task_ids' must be an array of at most " +
                                     std::to_string(kMaxBulkIds) + " task ids");
    }
    std::string list;
    for (const json& id : ids) {
      if (!id.is_string() || !ParseTaskId(id.get<std::string>())) {
        return Status::InvalidArgument("'task_ids' must hold task ids (strings)");
      }
      list += (list.empty() ? "" : ",") + id.get<std::string>();
    }
    if (ids.empty()) return Status::InvalidArgument("'task_ids' is empty");
    admin.args["task_ids"] = list;
  }
  if (doc.contains("limit") && !doc["limit"].is_null()) {
    const json& limit = doc["limit"];
    if (!limit.is_number_integer() || limit.get<int64_t>() < 1 || limit.get<int64_t>() > 10000) {
      return Status::InvalidArgument("'limit' must be an integer from 1 to 10000");
    }
    admin.args["limit"] = std::to_string(limit.get<int64_t>());
  }
  return admin;
}

}  // namespace rma::gateway
