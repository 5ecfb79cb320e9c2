// rmactl: a command-line client of the gateway's HTTP API for people. Each subcommand is one HTTP
// call; the answer is printed as a readable table or, with --json, as the gateway's JSON.
#include <curl/curl.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "common/version.h"

namespace {

using nlohmann::json;

struct Reply {
  long status = 0;
  std::string body;
  std::string error;
};

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

Reply Call(const std::string& method, const std::string& url, const std::string& body,
           const std::string& key, long timeout_s) {
  Reply r;
  CURL* curl = curl_easy_init();
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  if (!key.empty()) headers = curl_slist_append(headers, ("X-API-Key: " + key).c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (!body.empty()) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_s);
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

// Prints the answer; returns the process exit code (0 for 2xx).
int Print(const Reply& r, bool as_json) {
  if (!r.error.empty()) {
    std::fprintf(stderr, "rmactl: cannot reach the gateway: %s\n", r.error.c_str());
    return 3;
  }
  json j = json::parse(r.body, nullptr, false);
  if (as_json || j.is_discarded()) {
    std::cout << (j.is_discarded() ? r.body : j.dump(2)) << "\n";
  } else if (r.status >= 400) {
    std::fprintf(stderr, "error %ld: %s\n", r.status, j.value("error", r.body).c_str());
  } else {
    std::cout << j.dump(2) << "\n";
  }
  return r.status >= 200 && r.status < 300 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string gateway = "http://127.0.0.1:8080";
  std::string key;
  bool as_json = false;
  CLI::App app{"rmactl: talk to an rma pool through its gateway"};
  app.set_version_flag("--version", std::string(rma::kVersion));
  app.add_option("--gateway", gateway, "gateway URL")
      ->envname("RMA_GATEWAY")
      ->capture_default_str();
  app.add_option("--key", key, "API key")->envname("RMA_API_KEY");
  app.add_flag("--json", as_json, "print the gateway's JSON");
  app.require_subcommand(1);

  std::string service, payload, id;
  bool wait = false;
  auto* submit = app.add_subcommand("submit", "submit a task: SERVICE [PAYLOAD|-]");
  submit->add_option("service", service, "service name")->required();
  submit->add_option("payload", payload, "JSON payload, or - to read it from stdin");
  submit->add_flag("--wait", wait, "wait for the result");
  auto* status = app.add_subcommand("status", "show a task");
  status->add_option("id", id, "task id")->required();
  auto* workers = app.add_subcommand("workers", "list workers");
  CLI11_PARSE(app, argc, argv);
  curl_global_init(CURL_GLOBAL_DEFAULT);

  if (*submit) {
    if (payload == "-")
      payload.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    json body = {{"service", service}};
    if (!payload.empty()) {
      json p = json::parse(payload, nullptr, false);
      body["payload"] = p.is_discarded() ? json(payload) : p;
    }
    Reply r = Call("POST", gateway + "/api/tasks", body.dump(), key, 30);
    if (!wait || r.status != 202) return Print(r, as_json);
    std::string task = json::parse(r.body, nullptr, false).value("task_id", "");
    for (;;) {
      Reply t = Call("GET", gateway + "/api/tasks/" + task + "?wait=30", "", key, 40);
      json j = json::parse(t.body, nullptr, false);
      std::string st = j.is_object() ? j.value("status", "") : "";
      if (t.status != 200 || (st != "queued" && st != "running" && st != "failed"))
        return Print(t, as_json);
    }
  }
  if (*status) return Print(Call("GET", gateway + "/api/tasks/" + id, "", key, 30), as_json);
  if (*workers) return Print(Call("GET", gateway + "/api/admin/workers", "", key, 30), as_json);
  return 2;
}
