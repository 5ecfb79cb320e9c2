// rmactl: a command-line client of the gateway's HTTP API for people. Each subcommand is one or a
// few HTTP calls; answers are printed as readable tables, or with --json as the gateway's JSON.
// Exit codes are in rmactl_lib.h and docs/configuration.md.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "cli/rmactl_lib.h"
#include "common/version.h"

namespace {

using nlohmann::json;
using namespace rma::cli;

// Prints an answer; returns the exit code.
int Print(const Reply& r, bool as_json, std::string (*render)(const json&)) {
  if (r.status == 0) {
    std::fprintf(stderr, "rmactl: cannot reach the gateway: %s\n", r.error.c_str());
    return kExitUnreachable;
  }
  if (r.status >= 400) {
    if (as_json) {
      std::cout << r.body << "\n";
    } else {
      std::cerr << RenderError(r);
    }
    return kExitRefused;
  }
  json j = r.Json();
  if (as_json || j.is_discarded() || render == nullptr) {
    std::cout << (j.is_discarded() ? r.body : j.dump(2)) << "\n";
  } else {
    std::cout << render(j);
  }
  return kExitOk;
}

std::string RenderSubmitted(const json& j) {
  std::string out = "task " + j.value("task_id", "?") + " " + j.value("status", "?");
  if (j.value("duplicate", false)) out += " (duplicate of an earlier submission)";
  if (j.value("waiting_for_provider", false)) out += " (waiting for a provider)";
  return out + "\n";
}

std::string RenderAction(const json& j) {
  std::string target = j.contains("task_id") ? "task " + j.value("task_id", "")
                                             : "worker " + j.value("worker_id", "");
  return j.value("action", "") + ": " + target + " ok\n";
}

// Long-polls a task until it is final; prints it. Exit 4 when it ended without a result.
int WaitFor(const Client& client, const std::string& id, bool as_json) {
  for (;;) {
    Reply t = client.Call("GET", "/api/tasks/" + id + "?wait=30", "", 45);
    json j = t.Json();
    const std::string status = j.is_object() ? j.value("status", "") : "";
    if (t.status != 200 || IsFinal(status)) {
      int code = Print(t, as_json, RenderTask);
      if (code == kExitOk && status != "completed") return kExitTaskFailed;
      return code;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Client client;
  client.gateway = "http://127.0.0.1:8080";
  bool as_json = false;
  CLI::App app{"rmactl: talk to an rma pool through its gateway"};
  app.set_version_flag("--version", std::string(rma::kVersion));
  app.add_option("--gateway", client.gateway, "gateway URL")
      ->envname("RMA_GATEWAY")
      ->capture_default_str();
  app.add_option("--key", client.key, "API key (admin key for workers/services/stats/queues)")
      ->envname("RMA_API_KEY");
  app.add_option("--timeout", client.timeout_s, "seconds to wait for each HTTP answer")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_flag("--json", as_json, "print the gateway's JSON instead of tables");
  app.require_subcommand(1);
  app.fallthrough();

  std::string service, payload, id, worker, filter_service, filter_status;
  bool wait = false;
  int priority = -1, max_attempts = 0, limit = 20;
  double timeout_s = 0;
  std::string idempotency_key;
  auto* submit = app.add_subcommand("submit", "submit a task: SERVICE [PAYLOAD|-] [--wait]");
  submit->add_option("service", service, "service name")->required();
  submit->add_option("payload", payload,
                     "JSON payload (text that is not JSON is sent as a string), or - for stdin");
  submit->add_flag("--wait", wait, "wait for the task to end and print it");
  submit->add_option("--priority", priority, "0 (default) to 9")->check(CLI::Range(0, 9));
  submit->add_option("--max-attempts", max_attempts, "attempts before the task is dead-lettered")
      ->check(CLI::Range(1, 100));
  submit->add_option("--task-timeout", timeout_s, "seconds one attempt may run");
  submit->add_option("--idempotency-key", idempotency_key,
                     "a second submit with it returns the first task");
  auto* status = app.add_subcommand("status", "show a task: ID");
  status->add_option("id", id, "task id")->required();
  status->add_flag("--wait", wait, "wait for the task to end");
  auto* cancel = app.add_subcommand("cancel", "cancel a task: ID");
  cancel->add_option("id", id, "task id")->required();
  auto* tasks = app.add_subcommand("tasks", "list recent tasks");
  tasks->add_option("--service", filter_service, "only this service");
  tasks->add_option("--status", filter_status, "only this status");
  tasks->add_option("--limit", limit, "at most this many (1-1000)")->check(CLI::Range(1, 1000));
  auto* workers = app.add_subcommand("workers", "list workers (admin key)");
  auto* services = app.add_subcommand("services", "list services (admin key)");
  auto* stats = app.add_subcommand("stats", "pool statistics (admin key)");
  auto* queues = app.add_subcommand("queues", "queue depth per service (admin key)");
  auto* retry = app.add_subcommand("retry", "run a dead task again: ID (admin key)");
  retry->add_option("id", id, "task id")->required();
  auto* discard = app.add_subcommand("discard", "forget a dead task: ID (admin key)");
  discard->add_option("id", id, "task id")->required();
  auto* drain = app.add_subcommand("drain", "stop giving a worker new tasks: WORKER (admin key)");
  drain->add_option("worker", worker, "worker id")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  if (*submit) {
    if (payload == "-") {
      payload.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    }
    json body = {{"service", service}};
    if (!payload.empty()) {
      json p = json::parse(payload, nullptr, false);
      body["payload"] = p.is_discarded() ? json(payload) : p;
    }
    if (priority >= 0) body["priority"] = priority;
    if (max_attempts > 0) body["max_attempts"] = max_attempts;
    if (timeout_s > 0) body["timeout_s"] = timeout_s;
    if (!idempotency_key.empty()) body["idempotency_key"] = idempotency_key;
    Reply r = client.Call("POST", "/api/tasks", body.dump());
    if (!wait || r.status != 202) return Print(r, as_json, RenderSubmitted);
    return WaitFor(client, r.Json().value("task_id", ""), as_json);
  }
  if (*status) {
    if (wait) return WaitFor(client, id, as_json);
    return Print(client.Call("GET", "/api/tasks/" + id), as_json, RenderTask);
  }
  if (*cancel) return Print(client.Call("DELETE", "/api/tasks/" + id), as_json, RenderTask);
  if (*tasks) {
    std::string query = "?limit=" + std::to_string(limit);
    if (!filter_service.empty()) query += "&service=" + filter_service;
    if (!filter_status.empty()) query += "&status=" + filter_status;
    return Print(client.Call("GET", "/api/tasks" + query), as_json, RenderTaskList);
  }
  if (*workers) return Print(client.Call("GET", "/api/admin/workers"), as_json, RenderWorkers);
  if (*services) return Print(client.Call("GET", "/api/admin/services"), as_json, RenderServices);
  if (*stats) return Print(client.Call("GET", "/api/admin/stats"), as_json, RenderStats);
  if (*queues) return Print(client.Call("GET", "/api/admin/queues"), as_json, RenderQueues);
  if (*retry) {
    return Print(client.Call("POST", "/api/admin/tasks/" + id + "/retry"), as_json, RenderAction);
  }
  if (*discard) {
    return Print(client.Call("POST", "/api/admin/tasks/" + id + "/discard"), as_json, RenderAction);
  }
  if (*drain) {
    return Print(client.Call("POST", "/api/admin/workers/" + worker + "/drain"), as_json,
                 RenderAction);
  }
  return kExitUsage;
}
