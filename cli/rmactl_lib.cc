// See rmactl_lib.h.
#include "cli/rmactl_lib.h"

#include <curl/curl.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <vector>

namespace rma::cli {

using nlohmann::json;

namespace {

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// A JSON value as a table cell.
std::string Cell(const json& j, const char* key, const std::string& absent = "-") {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return absent;
  const json& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    std::ostringstream os;
    os << std::round(v.get<double>() * 100) / 100;
    return os.str();
  }
  if (v.is_array()) {
    std::string out;
    for (const json& item : v) {
      if (!out.empty()) out += ",";
      out += item.is_string() ? item.get<std::string>() : item.dump();
    }
    return out.empty() ? "-" : out;
  }
  return v.dump();
}

const json& WorkerList(const json& doc) {
  static const json kEmpty = json::array();
  if (doc.is_object() && doc.contains("workers") && doc["workers"].is_array())
    return doc["workers"];
  return kEmpty;
}

std::string StringField(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

}  // namespace

Result<json> SubmitBody(const SubmitRequest& request) {
  json body = {{"service", request.service}};
  if (!request.payload.empty()) {
    if (request.raw) {
      body["payload"] = request.payload;
    } else {
      json p = json::parse(request.payload, nullptr, false);
      if (p.is_discarded()) {
        return Status::InvalidArgument(
            "the payload is not valid JSON (quote a string as '\"text\"', or send the text as it "
            "is with --raw)");
      }
      body["payload"] = std::move(p);
    }
  }
  if (request.priority >= 0) body["priority"] = request.priority;
  if (request.max_attempts > 0) body["max_attempts"] = request.max_attempts;
  if (request.timeout_s > 0) body["timeout_s"] = request.timeout_s;
  if (!request.idempotency_key.empty()) body["idempotency_key"] = request.idempotency_key;
  return body;
}

Result<WorkerRef> ResolveWorker(const json& workers_doc, const std::string& name_or_id) {
  std::vector<WorkerRef> named;
  for (const json& w : WorkerList(workers_doc)) {
    WorkerRef ref{StringField(w, "worker_id"), StringField(w, "name")};
    // An id is unique, so it wins over a name that happens to be spelled the same.
    if (ref.worker_id == name_or_id) return ref;
    if (ref.name == name_or_id) named.push_back(std::move(ref));
  }
  if (named.size() == 1) return named.front();
  if (named.empty()) return WorkerRef{name_or_id, ""};
  std::string ids;
  for (const WorkerRef& w : named) ids += (ids.empty() ? "" : ", ") + w.worker_id;
  return Status::InvalidArgument(std::to_string(named.size()) + " workers are named '" +
                                 name_or_id + "' (" + ids + "): give the worker id instead");
}

std::string PathSegment(const std::string& text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string WorkerActionPath(const std::string& worker_id, const std::string& action) {
  return "/api/admin/workers/" + PathSegment(worker_id) + "/" + action;
}

namespace {

// Lists the workers, resolves NAME_OR_ID and sends METHOD to that worker's ACTION route.
WorkerActionOutcome ResolveAndCall(const CallFn& call, const std::string& method,
                                   const std::string& action, const std::string& name_or_id,
                                   const std::string& body = "") {
  WorkerActionOutcome out;
  out.reply = call("GET", "/api/admin/workers", "");
  if (out.reply.status != 200) return out;
  auto resolved = ResolveWorker(out.reply.Json(), name_or_id);
  if (!resolved.ok()) {
    out.error = resolved.status().message();
    return out;
  }
  out.worker = *resolved;
  out.reply = call(method, WorkerActionPath(out.worker.worker_id, action), body);
  return out;
}

}  // namespace

WorkerActionOutcome WorkerAction(const CallFn& call, const std::string& action,
                                 const std::string& name_or_id) {
  return ResolveAndCall(call, "POST", action, name_or_id);
}

WorkerActionOutcome RevokeWorkerCredential(const CallFn& call, const std::string& name_or_id) {
  return ResolveAndCall(call, "DELETE", "credential", name_or_id);
}

WorkerActionOutcome SetWorkerTrust(const CallFn& call, const std::string& name_or_id,
                                   const std::string& state) {
  return ResolveAndCall(call, "POST", "trust", name_or_id, json{{"state", state}}.dump());
}

WorkerActionOutcome CapWorkerTier(const CallFn& call, const std::string& name_or_id, int tier_cap) {
  return ResolveAndCall(call, "PATCH", "credential", name_or_id,
                        json{{"tier_cap", tier_cap}}.dump());
}

Result<long> ParseDuration(const std::string& text) {
  // 100 years: far beyond any sensible expiry, and well inside a long.
  constexpr long kMaxDurationS = 100L * 366 * 86400;
  const Status bad = Status::InvalidArgument(
      "'" + text +
      "' is not a duration: give seconds (86400) or a whole number with one unit (90s, 15m, 24h, "
      "30d)");
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits + 1 < text.size()) return bad;
  long unit = 1;
  if (digits < text.size()) {
    switch (text[digits]) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      default:
        return bad;
    }
  }
  long n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + digits, n);
  if (ec != std::errc() || end != text.data() + digits || n > kMaxDurationS / unit) {
    return Status::InvalidArgument("'" + text + "' is longer than 100 years");
  }
  if (n == 0) return Status::InvalidArgument("a duration must be longer than 0 s");
  return n * unit;
}

Request AccountCreateRequest(const std::string& name, const std::string& role) {
  json body = {{"name", name}};
  if (!role.empty()) body["role"] = role;
  return {"POST", "/api/admin/accounts", body.dump()};
}

Request AccountListRequest() { return {"GET", "/api/admin/accounts", ""}; }

Request AccountShowRequest(const std::string& name) {
  if (name.empty()) return {"GET", "/api/account", ""};
  return {"GET", "/api/admin/accounts/" + PathSegment(name), ""};
}

Result<Request> CreditsGrantRequest(const std::string& account, const std::string& amount,
                                    const std::string& kind, const std::string& note) {
  char* end = nullptr;
  const double value = std::strtod(amount.c_str(), &end);
  if (amount.empty() || end != amount.c_str() + amount.size() || !std::isfinite(value)) {
    return Status::InvalidArgument("AMOUNT must be a number of credits, not '" + amount + "'");
  }
  json body = {{"amount", value}};
  if (!kind.empty()) body["kind"] = kind;
  if (!note.empty()) body["note"] = note;
  return Request{"POST", "/api/admin/accounts/" + PathSegment(account) + "/credits", body.dump()};
}

Request LeaderboardRequest(const std::string& period, const std::string& by) {
  std::string query;
  if (!period.empty()) query += "period=" + period;
  if (!by.empty()) query += std::string(query.empty() ? "" : "&") + "by=" + by;
  return {"GET", "/api/leaderboard" + (query.empty() ? "" : "?" + query), ""};
}

Request KeyCreateRequest(const KeyCreateOptions& options) {
  json body = json::object();
  if (!options.scopes.empty()) body["scopes"] = options.scopes;
  if (!options.services.empty()) body["services"] = options.services;
  if (options.expires_in_s > 0) body["expires_in_s"] = options.expires_in_s;
  if (!options.name.empty()) body["name"] = options.name;
  return {"POST", "/api/admin/accounts/" + PathSegment(options.account) + "/keys", body.dump()};
}

Request KeyRevokeRequest(const std::string& prefix) {
  return {"DELETE", "/api/admin/keys/" + PathSegment(prefix), ""};
}

Request EnrolTokenRequest(const std::string& account, long expires_in_s) {
  json body = json::object();
  if (expires_in_s > 0) body["expires_in_s"] = expires_in_s;
  return {"POST", "/api/admin/accounts/" + PathSegment(account) + "/enrol-tokens", body.dump()};
}

EnrolTokenOutcome CreateEnrolToken(const CallFn& call, const std::string& account,
                                   long expires_in_s) {
  EnrolTokenOutcome out;
  out.account = account;
  if (out.account.empty()) {
    const Request own = AccountShowRequest();
    out.reply = call(own.method, own.path, own.body);
    if (out.reply.status != 200) return out;
    out.account = StringField(out.reply.Json(), "name");
    if (out.account.empty()) {
      out.error =
          "the gateway's answer to GET /api/account names no account: give one (rmactl "
          "enrol-token create ACCOUNT)";
      return out;
    }
  }
  const Request post = EnrolTokenRequest(out.account, expires_in_s);
  out.reply = call(post.method, post.path, post.body);
  return out;
}

WorkerNames WorkerNamesOf(const json& workers_doc) {
  WorkerNames names;
  for (const json& w : WorkerList(workers_doc)) {
    std::string id = StringField(w, "worker_id");
    std::string name = StringField(w, "name");
    if (!id.empty() && !name.empty()) names[id] = name;
  }
  return names;
}

std::string WorkerLabel(const std::string& worker_id, const WorkerNames& names) {
  auto it = names.find(worker_id);
  if (it == names.end() || it->second == worker_id) return worker_id;
  return worker_id + " (" + it->second + ")";
}

bool MentionsWorkers(const json& doc) {
  auto has_worker = [](const json& t) { return !StringField(t, "worker_id").empty(); };
  if (has_worker(doc)) return true;
  if (doc.is_object() && doc.contains("tasks") && doc["tasks"].is_array()) {
    for (const json& t : doc["tasks"]) {
      if (has_worker(t)) return true;
    }
  }
  return false;
}

std::vector<std::string> GatewayList(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? comma : comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(std::move(item));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

bool NextGatewayAfter(const std::string& method, const Reply& reply) {
  if (reply.not_sent) return true;
  return method == "GET" && reply.status == 503;
}

Reply Client::Call(const std::string& method, const std::string& path, const std::string& body,
                   long timeout_s_override) const {
  const std::vector<std::string> gateways = GatewayList(gateway);
  if (gateways.size() <= 1) return CallOne(gateway, method, path, body, timeout_s_override);
  Reply r;
  for (size_t i = 0; i < gateways.size(); ++i) {
    const size_t at = (preferred + i) % gateways.size();
    r = CallOne(gateways[at], method, path, body, timeout_s_override);
    if (!NextGatewayAfter(method, r)) {
      preferred = at;
      break;
    }
  }
  return r;
}

Reply Client::CallOne(const std::string& gateway_url, const std::string& method,
                      const std::string& path, const std::string& body,
                      long timeout_s_override) const {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  Reply r;
  std::string base = gateway_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string url = base + path;
  CURL* curl = curl_easy_init();
  // On every request, bodyless DELETE and admin POSTs included: the gateway refuses state-changing
  // requests of its JSON API without it (a cross-site page cannot send it without a preflight).
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  if (!key.empty()) headers = curl_slist_append(headers, ("X-API-Key: " + key).c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (!body.empty() || method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_s_override > 0 ? timeout_s_override : timeout_s);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
  } else {
    r.error = curl_easy_strerror(rc);
    r.not_sent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST;
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return r;
}

std::string Table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  };
  measure(header);
  for (const auto& row : rows) measure(row);
  std::string out;
  auto line = [&](const std::vector<std::string>& row) {
    std::string l;
    for (size_t i = 0; i < width.size(); ++i) {
      const std::string cell = i < row.size() ? row[i] : "";
      l += cell;
      if (i + 1 < width.size()) l += std::string(width[i] - cell.size() + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(header);
  for (const auto& row : rows) line(row);
  return out;
}

std::string RenderWorkers(const json& doc) {
  std::vector<std::vector<std::string>> rows;
  if (doc.is_object() && doc.contains("workers") && doc["workers"].is_array()) {
    for (const json& w : doc["workers"]) {
      // The contributor account ("-": none) shows who gives the machine.
      const std::string account = Cell(w, "account");
      // Its reputation state; "trusted" when an admin vouched for it.
      std::string reputation = "-";
      if (w.contains("reputation") && w["reputation"].is_object()) {
        const json& r = w["reputation"];
        reputation = r.value("trusted", false) ? "trusted" : Cell(r, "state");
      }
      rows.push_back({Cell(w, "worker_id"), Cell(w, "name"), account.empty() ? "-" : account,
                      Cell(w, "tier"), Cell(w, "status"), Cell(w, "health"), reputation,
                      Cell(w, "in_flight") + "/" + Cell(w, "slots"), Cell(w, "load"),
                      Cell(w, "tasks_done"), Cell(w, "services")});
    }
  }
  std::string out = Table({"WORKER", "NAME", "ACCOUNT", "TIER", "STATUS", "HEALTH", "TRUST", "BUSY",
                           "LOAD", "DONE", "SERVICES"},
                          rows);
  return out + std::to_string(rows.size()) + " worker(s)\n";
}

std::string RenderServices(const json& doc) {
  std::vector<std::vector<std::string>> rows;
  if (doc.is_object() && doc.contains("services") && doc["services"].is_array()) {
    for (const json& s : doc["services"]) {
      const json counters = s.value("counters", json::object());
      const json run = s.value("run_time_ms", json::object());
      rows.push_back({Cell(s, "name"), s.value("available", false) ? "yes" : "no",
                      Cell(s, "providers"), Cell(s, "queue_depth"), Cell(s, "in_flight"),
                      Cell(counters, "submitted"), Cell(counters, "completed"),
                      Cell(counters, "failed"), Cell(run, "p50"), Cell(run, "p99")});
    }
  }
  return Table({"SERVICE", "AVAILABLE", "PROVIDERS", "QUEUED", "RUNNING", "SUBMITTED", "COMPLETED",
                "FAILED", "RUN P50 MS", "RUN P99 MS"},
               rows);
}

std::string RenderQueues(const json& doc) {
  std::vector<std::vector<std::string>> rows;
  if (doc.is_object() && doc.contains("queues") && doc["queues"].is_object()) {
    for (const auto& [name, q] : doc["queues"].items()) {
      rows.push_back({name, Cell(q, "queued"), Cell(q, "delayed"), Cell(q, "in_flight"),
                      Cell(q, "oldest_wait_s"),
                      q.value("waiting_for_provider", false) ? "yes" : "no"});
    }
  }
  std::string out = Table(
      {"SERVICE", "QUEUED", "DELAYED", "RUNNING", "OLDEST WAIT S", "WAITING FOR PROVIDER"}, rows);
  return out + "total queued: " + Cell(doc, "total", "0") +
         ", running: " + Cell(doc, "in_flight", "0") + "\n";
}

std::string RenderDeadLetters(const json& doc) {
  std::vector<std::vector<std::string>> rows;
  if (doc.is_object() && doc.contains("groups") && doc["groups"].is_array()) {
    for (const json& g : doc["groups"]) {
      rows.push_back({Cell(g, "service"), Cell(g, "error_code"), Cell(g, "count"),
                      Cell(g, "oldest"), Cell(g, "newest")});
    }
  }
  return Table({"SERVICE", "ERROR CODE", "COUNT", "OLDEST", "NEWEST"}, rows) +
         "total dead: " + Cell(doc, "total", "0") + "\n";
}

std::string RenderPurged(const json& answer) {
  return "purge: service " + Cell(answer, "service") + ", " + Cell(answer, "purged", "0") +
         " queued task(s) cancelled\n";
}

std::string RenderBulk(const json& answer) {
  return Cell(answer, "action") + ": " + Cell(answer, "done", "0") + " of " +
         Cell(answer, "matched", "0") + " matching dead task(s)\n";
}

std::string RenderStats(const json& doc) {
  if (!doc.is_object()) return doc.dump(2) + "\n";
  const json workers = doc.value("workers", json::object());
  const json tasks = doc.value("tasks", json::object());
  const json today = doc.value("today", json::object());
  const json rate = doc.value("throughput_per_s", json::object());
  const json latency = doc.value("latency_ms", json::object());
  const json wait = latency.value("queue_wait", json::object());
  const json run = latency.value("run_time", json::object());
  const json tiers = workers.value("by_tier", json::object());
  const json health = workers.value("by_health", json::object());
  std::vector<std::vector<std::string>> rows = {
      {"workers live", Cell(workers, "live") + " (tier 1: " + Cell(tiers, "1", "0") + ", tier 2: " +
                           Cell(tiers, "2", "0") + ", tier 3: " + Cell(tiers, "3", "0") + ")"},
      {"worker health", Cell(health, "healthy", "0") + " healthy, " + Cell(health, "late", "0") +
                            " late, " + Cell(health, "offline", "0") + " offline"},
      {"queue depth", Cell(doc, "queue_depth")},
      {"running", Cell(doc, "in_flight")},
      {"tasks", Cell(tasks, "submitted", "0") + " submitted, " + Cell(tasks, "completed", "0") +
                    " completed, " + Cell(tasks, "failed", "0") + " failed, " +
                    Cell(tasks, "dead", "0") + " dead"},
      {"today (" + Cell(today, "date") + ")", Cell(today, "submitted", "0") + " submitted, " +
                                                  Cell(today, "completed", "0") + " completed, " +
                                                  Cell(today, "failed", "0") + " failed"},
      {"throughput", Cell(rate, "completed_1m", "0") + " completed/s, " +
                         Cell(rate, "submitted_1m", "0") + " submitted/s (last minute)"},
      {"queue wait", "p50 " + Cell(wait, "p50") + " ms, p99 " + Cell(wait, "p99") + " ms"},
      {"run time", "p50 " + Cell(run, "p50") + " ms, p99 " + Cell(run, "p99") + " ms"},
      {"store", Cell(doc, "store")},
      {"uptime", Cell(doc, "uptime_s") + " s"},
  };
  // Without the (empty) header line.
  std::string out = Table({"", ""}, rows);
  return out.substr(out.find('\n') + 1);
}

std::string RenderTask(const json& t, const WorkerNames& names) {
  if (!t.is_object()) return t.dump(2) + "\n";
  std::vector<std::vector<std::string>> rows;
  for (const char* key :
       {"task_id", "service", "status", "queue_position", "estimated_start_s", "attempts",
        "worker_id", "created_at", "started_at", "completed_at", "error"}) {
    if (!t.contains(key) || t[key].is_null()) continue;
    const std::string cell = Cell(t, key);
    rows.push_back({key, std::string(key) == "worker_id" ? WorkerLabel(cell, names) : cell});
  }
  std::string out = Table({"", ""}, rows);
  out = out.substr(out.find('\n') + 1);
  if (t.contains("result") && !t["result"].is_null()) {
    out += "result:\n";
    out += t["result"].is_string() ? t["result"].get<std::string>() : t["result"].dump(2);
    out += "\n";
  }
  return out;
}

std::string RenderTaskList(const json& doc, const WorkerNames& names) {
  std::vector<std::vector<std::string>> rows;
  if (doc.is_object() && doc.contains("tasks") && doc["tasks"].is_array()) {
    for (const json& t : doc["tasks"]) {
      const std::string worker = Cell(t, "worker_id");
      rows.push_back({Cell(t, "task_id"), Cell(t, "service"), Cell(t, "status"),
                      Cell(t, "attempts"), worker == "-" ? worker : WorkerLabel(worker, names),
                      Cell(t, "created_at")});
    }
  }
  return Table({"TASK", "SERVICE", "STATUS", "ATTEMPTS", "WORKER", "CREATED"}, rows);
}

std::string RenderAction(const json& j, const WorkerNames& names) {
  std::string target = j.contains("task_id")
                           ? "task " + StringField(j, "task_id")
                           : "worker " + WorkerLabel(StringField(j, "worker_id"), names);
  return StringField(j, "action") + ": " + target + " ok\n";
}

namespace {

// Two columns without a header line: "label  value".
std::string Summary(const std::vector<std::vector<std::string>>& rows) {
  std::string out = Table({"", ""}, rows);
  return out.substr(out.find('\n') + 1);
}

// A service allow-list: none (absent, null or empty) means every service.
std::string ServicesCell(const json& j) {
  const std::string cell = Cell(j, "services");
  return cell == "-" ? "all" : cell;
}

// A boolean field; false when absent or not a boolean.
bool Flag(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_boolean() && j[key].get<bool>();
}

std::string Yes(const json& j, const char* key) { return Flag(j, key) ? "yes" : "no"; }

// {"completed": 3, "queued": 1} -> "3 completed, 1 queued".
std::string TaskCounts(const json& counts) {
  std::string out;
  if (counts.is_object()) {
    for (const auto& [status, n] : counts.items()) {
      if (!out.empty()) out += ", ";
      out += (n.is_string() ? n.get<std::string>() : n.dump()) + " " + status;
    }
  }
  return out.empty() ? "none" : out;
}

const json& ArrayField(const json& doc, const char* key) {
  static const json kEmpty = json::array();
  return doc.is_object() && doc.contains(key) && doc[key].is_array() ? doc[key] : kEmpty;
}

}  // namespace

std::string RenderAccountCreated(const json& a) {
  return "account " + Cell(a, "name") + " created: role " + Cell(a, "role") + ", " +
         Cell(a, "credits", "0") + " credits\n";
}

std::string RenderAccounts(const json& doc) {
  std::vector<std::vector<std::string>> rows;
  for (const json& a : ArrayField(doc, "accounts")) {
    rows.push_back({Cell(a, "name"), Cell(a, "role"), Cell(a, "credits"), Cell(a, "keys"),
                    Cell(a, "workers"), Cell(a, "created_at")});
  }
  return Table({"NAME", "ROLE", "CREDITS", "KEYS", "WORKERS", "CREATED"}, rows) +
         std::to_string(rows.size()) + " account(s)\n";
}

std::string RenderAccount(const json& doc) {
  if (!doc.is_object()) return doc.dump(2) + "\n";
  std::string out = Summary({{"account", Cell(doc, "name")},
                             {"role", Cell(doc, "role")},
                             {"credits", Cell(doc, "credits", "0")},
                             {"created", Cell(doc, "created_at")},
                             {"tasks", TaskCounts(doc.value("tasks", json::object()))}});
  if (doc.contains("earned") || doc.contains("spent")) {
    auto periods = [&](const char* key) {
      const json& p = doc.contains(key) && doc[key].is_object() ? doc[key] : json::object();
      return Cell(p, "today", "0") + " today, " + Cell(p, "week", "0") + " this week, " +
             Cell(p, "all", "0") + " in all";
    };
    out += Summary({{"earned", periods("earned")},
                    {"spent", periods("spent")},
                    {"granted", Cell(doc, "granted", "0")},
                    {"mode", Cell(doc, "credits_mode")}});
    const json& ledger = ArrayField(doc, "ledger");
    if (!ledger.empty()) {
      std::vector<std::vector<std::string>> rows;
      for (const json& e : ledger) {
        if (rows.size() == 10) break;
        rows.push_back({Cell(e, "at"), Cell(e, "kind"), Cell(e, "amount"), Cell(e, "service"),
                        Cell(e, "task_id"), Cell(e, "worker_id"), Cell(e, "note")});
      }
      out += "\nlatest credit changes\n" +
             Table({"AT", "KIND", "AMOUNT", "SERVICE", "TASK", "WORKER", "NOTE"}, rows);
    }
  }
  const json& keys = ArrayField(doc, "keys");
  out += "\n" + std::to_string(keys.size()) + " API key(s)\n";
  if (!keys.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const json& k : keys) {
      rows.push_back({Cell(k, "prefix"), Cell(k, "name"), Cell(k, "scopes"), ServicesCell(k),
                      Cell(k, "expires_at", "never"), Cell(k, "last_used_at", "never"),
                      Cell(k, "created_at"), Yes(k, "revoked")});
    }
    out += Table(
        {"PREFIX", "NAME", "SCOPES", "SERVICES", "EXPIRES", "LAST USED", "CREATED", "REVOKED"},
        rows);
  }
  const json& workers = ArrayField(doc, "workers");
  out += "\n" + std::to_string(workers.size()) + " worker credential(s)\n";
  if (!workers.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const json& w : workers) {
      const std::string state = Flag(w, "revoked")     ? "revoked"
                                : Flag(w, "connected") ? "connected"
                                                       : "offline";
      rows.push_back({Cell(w, "worker_id"), Cell(w, "name"), Cell(w, "key"), ServicesCell(w),
                      Cell(w, "tier_cap"), Cell(w, "first_seen"), Cell(w, "last_seen"), state});
    }
    out +=
        Table({"WORKER", "NAME", "KEY", "SERVICES", "TIER CAP", "FIRST SEEN", "LAST SEEN", "STATE"},
              rows);
  }
  return out;
}

std::string RenderCreditsGranted(const json& answer) {
  const std::string what = Cell(answer, "kind") == "adjustment" ? "adjusted" : "granted";
  std::string out = what + " " + Cell(answer, "amount") + " credits to " + Cell(answer, "account");
  if (answer.is_object() && !answer.value("note", "").empty())
    out += " (" + Cell(answer, "note") + ")";
  return out + "; balance " + Cell(answer, "balance") + "\n";
}

std::string RenderLeaderboard(const json& doc) {
  const json& accounts = ArrayField(doc, "accounts");
  std::string out = "contributors, " + Cell(doc, "period") + ", by " + Cell(doc, "by") + "\n";
  if (accounts.empty()) return out + "nobody has earned credits in this period\n";
  std::vector<std::vector<std::string>> rows;
  for (const json& a : accounts) {
    rows.push_back({Cell(a, "rank"), Cell(a, "account"), Cell(a, "credits"), Cell(a, "tasks"),
                    Cell(a, "compute_s")});
    for (const json& w : ArrayField(a, "workers")) {
      const std::string name = Cell(w, "name", "");
      rows.push_back({"", "  " + Cell(w, "worker_id") + (name.empty() ? "" : " (" + name + ")"),
                      Cell(w, "credits"), Cell(w, "tasks"), Cell(w, "compute_s")});
    }
  }
  return out + Table({"RANK", "ACCOUNT / WORKER", "CREDITS", "TASKS", "COMPUTE S"}, rows);
}

std::string RenderKeyCreated(const json& k) {
  std::string details = "prefix " + Cell(k, "prefix") + "; scopes " + Cell(k, "scopes") +
                        "; services " + ServicesCell(k) + "; expires " +
                        Cell(k, "expires_at", "never");
  if (!StringField(k, "name").empty()) details += "; name " + StringField(k, "name");
  return "API key for account " + Cell(k, "account") + " (" + details + "):\n\n    " +
         Cell(k, "key") +
         "\n\nThis key is shown only once: store it now. The gateway keeps only its hash; if it is "
         "lost, revoke it (rmactl key revoke " +
         Cell(k, "prefix") + ") and create another.\n";
}

std::string RenderKeyRevoked(const json& j) {
  return "key " + Cell(j, "prefix") + " of account " + Cell(j, "account") + " revoked\n";
}

std::string RenderEnrolToken(const json& t) {
  const std::string token = Cell(t, "token");
  return "enrolment token for account " + Cell(t, "account") + " (works once; expires " +
         Cell(t, "expires_at", "never") + "):\n\n    " + token +
         "\n\nOn the machine to enrol, start the worker with it (and its usual --broker, "
         "--broker-key and --service flags):\n\n    rma-worker --enrol " +
         token + " ...\n";
}

std::string RenderCredentialRevoked(const json& j, const WorkerNames& names) {
  return "credential of worker " + WorkerLabel(StringField(j, "worker_id"), names) +
         " revoked (account " + Cell(j, "account") + ", key " + Cell(j, "key") + "); " +
         (Flag(j, "disconnected") ? "the worker was disconnected"
                                  : "the worker was not connected") +
         "\n";
}

std::string RenderTierCap(const json& j, const WorkerNames& names) {
  const int cap =
      j.contains("tier_cap") && j["tier_cap"].is_number() ? j["tier_cap"].get<int>() : 0;
  return "credential of worker " + WorkerLabel(StringField(j, "worker_id"), names) +
         (cap == 0 ? std::string(": tier cap removed")
                   : ": tier capped at " + std::to_string(cap)) +
         "; " +
         (Flag(j, "applied") ? "the connected worker's tier changed now"
                             : "applies at its next registration") +
         "\n";
}

std::string RenderTrust(const json& j, const WorkerNames& names) {
  return "worker " + WorkerLabel(StringField(j, "worker_id"), names) + ": trust " +
         Cell(j, "trust") + ", reputation " + Cell(j, "from") + " -> " + Cell(j, "state") + "\n";
}

std::string RenderError(const Reply& reply) {
  json j = reply.Json();
  std::string message = j.is_object() && j.contains("error") && j["error"].is_string()
                            ? j["error"].get<std::string>()
                            : reply.body.substr(0, 500);
  std::string out = "error " + std::to_string(reply.status);
  if (j.is_object() && j.contains("code") && j["code"].is_string()) {
    out += " (" + j["code"].get<std::string>() + ")";
  }
  out += ": " + message;
  if (j.is_object() && j.contains("available_services")) {
    out += "\navailable services: " + Cell(j, "available_services");
  }
  if (j.is_object() && j.contains("suggestion") && j["suggestion"].is_string()) {
    out += "\n" + j["suggestion"].get<std::string>();
  }
  return out + "\n";
}

bool IsFinal(const std::string& status) {
  return status == "completed" || status == "dead" || status == "cancelled" || status == "expired";
}

}  // namespace rma::cli
