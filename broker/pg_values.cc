// See pg_values.h.
#include "broker/pg_values.h"

#include <nlohmann/json.hpp>

#include <ctime>

namespace rma::broker {

using nlohmann::json;

std::string CleanText(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && s[i] != 0 && static_cast<unsigned char>(s[i]) < 0x80) ++i;
  if (i == s.size()) return std::string(s);  // plain ASCII: the common case
  std::string out(s.substr(0, i));
  out.reserve(s.size() + 8);
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c != 0 && c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    size_t len = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
    }
    bool ok = len > 0 && i + len <= s.size();
    uint32_t cp = c & (0xFFu >> (len + 1));
    for (size_t k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      ok = (cc & 0xC0) == 0x80;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are invalid too.
    if (ok && len == 3) ok = cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF);
    if (ok && len == 4) ok = cp >= 0x10000 && cp <= 0x10FFFF;
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

std::string PgTimestamp(Time t) {
  int64_t us = ToUnixUs(t);
  int64_t secs = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
  int64_t frac = us - secs * 1000000;
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(frac));
  return buf;
}

std::string ByteaHex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.resize(2 + bytes.size() * 2);
  out[0] = '\\';
  out[1] = 'x';
  for (size_t i = 0; i < bytes.size(); ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    out[2 + 2 * i] = kHex[b >> 4];
    out[3 + 2 * i] = kHex[b & 15];
  }
  return out;
}

std::string TextArrayLiteral(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (char c : CleanText(items[i])) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

std::string IdArrayLiteral(const std::vector<uint64_t>& ids) {
  std::string out = "{";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out.push_back(',');
    // bigint is signed: an id is stored as the int64 with the same 64 bits.
    out += std::to_string(static_cast<int64_t>(ids[i]));
  }
  out.push_back('}');
  return out;
}

namespace {

bool IsUrl(const std::string& s) {
  return s.rfind("postgresql://", 0) == 0 || s.rfind("postgres://", 0) == 0;
}

bool HasSetting(const std::string& conninfo, const std::string& key) {
  // Good enough for our own defaults: a key is set when "key=" follows a separator.
  for (size_t pos = conninfo.find(key + "="); pos != std::string::npos;
       pos = conninfo.find(key + "=", pos + 1)) {
    if (pos == 0) return true;
    char before = conninfo[pos - 1];
    if (before == '?' || before == '&' || before == ' ') return true;
  }
  return false;
}

}  // namespace

std::string ConnectionString(const std::string& url, const std::string& application_name) {
  const std::pair<std::string, std::string> defaults[] = {
      {"connect_timeout", "5"},      {"keepalives_idle", "30"},
      {"keepalives_interval", "10"}, {"keepalives_count", "3"},
      {"tcp_user_timeout", "30000"}, {"application_name", application_name}};
  std::string out = url;
  const bool is_url = IsUrl(url);
  for (const auto& [key, value] : defaults) {
    if (HasSetting(out, key)) continue;
    if (is_url) {
      out += out.find('?') == std::string::npos ? '?' : '&';
    } else if (!out.empty()) {
      out += ' ';
    }
    out.append(key).append("=").append(value);
  }
  return out;
}

std::string RedactUrl(const std::string& url) {
  std::string out = url;
  // password=... as a key=value setting or a URL query parameter.
  for (size_t pos = out.find("password="); pos != std::string::npos;
       pos = out.find("password=", pos + 1)) {
    size_t start = pos + 9;
    size_t end = out.find_first_of(IsUrl(out) ? "&" : " ", start);
    if (end == std::string::npos) end = out.size();
    out.replace(start, end - start, "***");
  }
  if (!IsUrl(out)) return out;
  // user:password@ in the authority.
  size_t scheme = out.find("://") + 3;
  size_t at = out.find('@', scheme);
  size_t slash = out.find_first_of("/?", scheme);
  if (at == std::string::npos || (slash != std::string::npos && at > slash)) return out;
  size_t colon = out.find(':', scheme);
  if (colon == std::string::npos || colon > at) return out;
  return out.substr(0, colon + 1) + "***" + out.substr(at);
}

// Text cleaned like a text column (CleanText): jsonb also refuses \u0000, and worker ids and errors
// come from peers, so a NUL would otherwise make the row's write fail.
std::string AttemptLogJson(const std::vector<proto::AttemptEntry>& log) {
  if (log.empty()) return {};
  json out = json::array();
  for (const proto::AttemptEntry& e : log) {
    json j = {{"attempt", e.attempt},
              {"worker_id", CleanText(e.worker_id)},
              {"outcome", e.outcome},
              {"started_at_ms", e.started_at_ms}};
    if (e.ended_at_ms != 0) j["ended_at_ms"] = e.ended_at_ms;
    if (!e.error_code.empty()) j["error_code"] = CleanText(e.error_code);
    if (!e.error.empty()) j["error"] = CleanText(e.error);
    out.push_back(std::move(j));
  }
  // Replacement instead of an exception: worker ids and errors come from peers.
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::vector<proto::AttemptEntry> ParseAttemptLog(std::string_view text) {
  std::vector<proto::AttemptEntry> log;
  if (text.empty()) return log;
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_array()) return log;
  for (const json& j : doc) {
    if (!j.is_object() || log.size() >= proto::kMaxAttemptLog) continue;
    proto::AttemptEntry e;
    e.attempt = j.value("attempt", 0u);
    e.worker_id = j.value("worker_id", "");
    e.outcome = j.value("outcome", "");
    e.started_at_ms = j.value("started_at_ms", int64_t{0});
    e.ended_at_ms = j.value("ended_at_ms", int64_t{0});
    e.error_code = j.value("error_code", "");
    e.error = j.value("error", "");
    log.push_back(std::move(e));
  }
  return log;
}

}  // namespace rma::broker
