// See rmactl_lib.h.
#include "cli/rmactl_lib.h"

#include <curl/curl.h>

#include <cctype>
#include <cmath>
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

std::string WorkerActionPath(const std::string& worker_id, const std::string& action) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string id;
  for (unsigned char c : worker_id) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      id += static_cast<char>(c);
    } else {
      id += '%';
      id += kHex[c >> 4];
      id += kHex[c & 15];
    }
  }
  return "/api/admin/workers/" + id + "/" + action;
}

WorkerActionOutcome WorkerAction(const CallFn& call, const std::string& action,
                                 const std::string& name_or_id) {
  WorkerActionOutcome out;
  out.reply = call("GET", "/api/admin/workers", "");
  if (out.reply.status != 200) return out;
  auto resolved = ResolveWorker(out.reply.Json(), name_or_id);
  if (!resolved.ok()) {
    out.error = resolved.status().message();
    return out;
  }
  out.worker = *resolved;
  out.reply = call("POST", WorkerActionPath(out.worker.worker_id, action), "");
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

Reply Client::Call(const std::string& method, const std::string& path, const std::string& body,
                   long timeout_s_override) const {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  Reply r;
  std::string base = gateway;
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
      rows.push_back({Cell(w, "worker_id"), Cell(w, "name"), Cell(w, "tier"), Cell(w, "status"),
                      Cell(w, "health"), Cell(w, "in_flight") + "/" + Cell(w, "slots"),
                      Cell(w, "load"), Cell(w, "tasks_done"), Cell(w, "services")});
    }
  }
  std::string out = Table(
      {"WORKER", "NAME", "TIER", "STATUS", "HEALTH", "BUSY", "LOAD", "DONE", "SERVICES"}, rows);
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
  for (const char* key : {"task_id", "service", "status", "attempts", "worker_id", "created_at",
                          "started_at", "completed_at", "error"}) {
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
