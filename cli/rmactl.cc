// rmactl: a command-line client of the gateway's HTTP API for people. Each subcommand is one or a
// few HTTP calls; answers are printed as readable tables, or with --json as the gateway's JSON.
// Exit codes are in rmactl_lib.h and docs/configuration.md.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <functional>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "cli/rmactl_lib.h"
#include "common/version.h"

namespace {

using nlohmann::json;
using namespace rma::cli;

using Render = std::function<std::string(const json&)>;

// Prints an answer; returns the exit code.
int Print(const Reply& r, bool as_json, const Render& render) {
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

// Worker names for a task answer's tables: one admin listing, only when the answer names a worker.
// Best effort — a client key may not list workers, and then the tables show ids alone.
WorkerNames NamesFor(const Client& client, const Reply& r, bool as_json) {
  if (as_json || r.status != 200) return {};
  json j = r.Json();
  if (!MentionsWorkers(j)) return {};
  Reply workers = client.Call("GET", "/api/admin/workers");
  return workers.status == 200 ? WorkerNamesOf(workers.Json()) : WorkerNames{};
}

int PrintTask(const Client& client, const Reply& r, bool as_json) {
  WorkerNames names = NamesFor(client, r, as_json);
  return Print(r, as_json, [&](const json& j) { return RenderTask(j, names); });
}

// Long-polls a task until it is final; prints it. Exit 4 when it ended without a result.
int WaitFor(const Client& client, const std::string& id, bool as_json) {
  for (;;) {
    Reply t = client.Call("GET", "/api/tasks/" + id + "?wait=30", "", 45);
    json j = t.Json();
    const std::string status = j.is_object() ? j.value("status", "") : "";
    if (t.status != 200 || IsFinal(status)) {
      int code = PrintTask(client, t, as_json);
      if (code == kExitOk && status != "completed") return kExitTaskFailed;
      return code;
    }
  }
}

CallFn CallOf(const Client& client) {
  return [&client](const std::string& method, const std::string& path, const std::string& body) {
    return client.Call(method, path, body);
  };
}

int Send(const Client& client, const Request& request, bool as_json, const Render& render) {
  return Print(client.Call(request.method, request.path, request.body), as_json, render);
}

// drain / undrain / worker revoke NAME|ID, after the name was looked up.
int PrintWorkerOutcome(const WorkerActionOutcome& out, bool as_json,
                       const std::function<std::string(const json&, const WorkerNames&)>& render) {
  if (!out.error.empty()) {
    std::fprintf(stderr, "rmactl: %s\n", out.error.c_str());
    return kExitUsage;
  }
  WorkerNames names;
  if (!out.worker.name.empty()) names[out.worker.worker_id] = out.worker.name;
  return Print(out.reply, as_json, [&](const json& j) { return render(j, names); });
}

int WorkerCommand(const Client& client, const std::string& action, const std::string& name_or_id,
                  bool as_json) {
  return PrintWorkerOutcome(WorkerAction(CallOf(client), action, name_or_id), as_json,
                            RenderAction);
}

// --expires-in: "" is none (0, the gateway's default); anything else must be a duration.
bool ParseExpiry(const std::string& text, long* seconds) {
  *seconds = 0;
  if (text.empty()) return true;
  auto parsed = ParseDuration(text);
  if (!parsed.ok()) {
    std::fprintf(stderr, "rmactl: --expires-in: %s\n", parsed.status().message().c_str());
    return false;
  }
  *seconds = *parsed;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Client client;
  client.gateway = "http://127.0.0.1:8080";
  bool as_json = false;
  CLI::App app{"rmactl: talk to an rma pool through its gateway"};
  // "NAME VERSION", the first line help2man reads when it writes the man page.
  app.set_version_flag("--version", std::string("rmactl ") + rma::kVersion);
  app.add_option("--gateway", client.gateway,
                 "gateway URL, or several (A,B,C): a call goes to the first that answers (a "
                 "gateway follows the leading broker itself: see its --broker A,B,C)")
      ->envname("RMA_GATEWAY")
      ->capture_default_str();
  app.add_option("--key", client.key,
                 "API key (admin key for workers/services/stats/queues/account list/...)")
      ->envname("RMA_API_KEY");
  app.add_option("--timeout", client.timeout_s, "seconds to wait for each HTTP answer")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_flag("--json", as_json, "print the gateway's JSON instead of tables");
  app.require_subcommand(1);
  app.fallthrough();

  std::string service, payload, id, worker, filter_service, filter_status;
  bool wait = false;
  bool raw = false;
  int priority = -1, max_attempts = 0, limit = 20;
  double timeout_s = 0;
  std::string idempotency_key;
  auto* submit = app.add_subcommand("submit", "submit a task: SERVICE [PAYLOAD|-] [--wait]");
  submit->add_option("service", service, "service name")->required();
  submit->add_option("payload", payload, "JSON payload, or - to read it from stdin");
  submit->add_flag("--raw", raw, "send PAYLOAD as it is, as a JSON string (it need not be JSON)");
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
  auto* dead_letters =
      app.add_subcommand("dead-letters", "dead tasks by service and error code (admin key)");
  std::string error_code;
  auto* retry_dead = app.add_subcommand(
      "retry-dead", "run the matching dead tasks again: --service, --error-code (admin key)");
  retry_dead->add_option("--service", filter_service, "only this service");
  retry_dead->add_option("--error-code", error_code, "only this error code");
  auto* purge = app.add_subcommand(
      "purge", "cancel every queued (not running) task of a service: SERVICE (admin key)");
  purge->add_option("service", filter_service, "service name")->required();
  auto* drain =
      app.add_subcommand("drain", "stop giving a worker new tasks: NAME or ID (admin key)");
  drain->add_option("worker", worker, "worker name or id")->required();
  auto* undrain =
      app.add_subcommand("undrain", "give a drained worker tasks again: NAME or ID (admin key)");
  undrain->add_option("worker", worker, "worker name or id")->required();

  std::string account_name, role, expires_in, key_name, prefix;
  std::vector<std::string> scopes, key_services;
  auto* account = app.add_subcommand("account", "accounts: create, list, show");
  account->require_subcommand(1);
  auto* account_create = account->add_subcommand(
      "create", "create an account: NAME [--role member|admin] (admin key)");
  account_create->add_option("name", account_name, "account name")->required();
  account_create->add_option("--role", role, "member (the default) or admin")
      ->check(CLI::IsMember({"member", "admin"}));
  auto* account_list = account->add_subcommand("list", "list the accounts (admin key)");
  auto* account_show = account->add_subcommand(
      "show",
      "the key's own account, or NAME's (admin key): credits, API keys, worker "
      "credentials, tasks");
  std::string show_name;
  account_show->add_option("name", show_name, "another account (admin key)");
  auto* key = app.add_subcommand("key", "API keys: create, revoke (admin key)");
  key->require_subcommand(1);
  auto* key_create =
      key->add_subcommand("create", "make an API key for ACCOUNT, shown once (admin key)");
  key_create->add_option("account", account_name, "account the key acts for")->required();
  key_create
      ->add_option("--scope", scopes, "client (the default), contributor or admin; repeatable")
      ->allow_extra_args(false)
      ->check(CLI::IsMember({"client", "contributor", "admin"}));
  key_create->add_option("--service", key_services, "allow only this service; repeatable")
      ->allow_extra_args(false);
  key_create->add_option("--expires-in", expires_in,
                         "the key expires after this long: seconds, or 90s, 15m, 24h, 30d");
  key_create->add_option("--name", key_name, "a label to tell the account's keys apart");
  auto* key_revoke = key->add_subcommand("revoke", "revoke an API key: PREFIX (admin key)");
  key_revoke->add_option("prefix", prefix, "the key's prefix (rma_<prefix>_...)")->required();
  auto* enrol = app.add_subcommand("enrol-token", "one-time tokens that enrol a worker: create");
  enrol->require_subcommand(1);
  auto* enrol_create = enrol->add_subcommand(
      "create",
      "make a token for rma-worker --enrol: [ACCOUNT] (admin key, or a contributor key of the "
      "account; without ACCOUNT, the key's own)");
  enrol_create->add_option("account", account_name, "account the worker will work for");
  enrol_create->add_option("--expires-in", expires_in,
                           "the token expires after this long: seconds, or 90s, 15m, 24h, 30d");
  auto* credits = app.add_subcommand("credits", "credits: grant (admin key)");
  credits->require_subcommand(1);
  auto* credits_grant = credits->add_subcommand(
      "grant", "grant ACCOUNT AMOUNT credits, negative to take some away (admin key)");
  std::string amount, credit_kind, credit_note;
  credits_grant->add_option("account", account_name, "the account")->required();
  credits_grant->add_option("amount", amount, "credits (e.g. 10, -2.5)")->required();
  credits_grant->add_option("--kind", credit_kind, "grant (the default) or adjustment")
      ->check(CLI::IsMember({"grant", "adjustment"}));
  credits_grant->add_option("--note", credit_note, "why, for the ledger");
  auto* leaderboard =
      app.add_subcommand("leaderboard", "the contributors: accounts by what their workers earned");
  std::string period, ranked_by;
  leaderboard->add_option("--period", period, "day, week (the default) or all")
      ->check(CLI::IsMember({"day", "week", "all"}));
  leaderboard->add_option("--by", ranked_by, "credits (the default), tasks or compute")
      ->check(CLI::IsMember({"credits", "tasks", "compute"}));
  auto* worker_group =
      app.add_subcommand("worker", "a worker's credential: revoke, trust, cap its tier");
  worker_group->require_subcommand(1);
  auto* worker_revoke = worker_group->add_subcommand(
      "revoke", "revoke a worker's credential and disconnect it: NAME or ID (admin key)");
  worker_revoke->add_option("worker", worker, "worker name or id")->required();
  std::string trust_state;
  auto* worker_trust = worker_group->add_subcommand(
      "trust",
      "set a worker's trust: NAME or ID, then trusted, normal (a fresh start on probation), "
      "quarantined or banned (admin key)");
  worker_trust->add_option("worker", worker, "worker name or id")->required();
  worker_trust->add_option("state", trust_state, "trusted, normal, quarantined or banned")
      ->required()
      ->check(CLI::IsMember({"trusted", "normal", "quarantined", "banned"}));
  int tier_cap = 0;
  auto* worker_cap = worker_group->add_subcommand(
      "cap",
      "cap a worker credential's tier: NAME or ID, then 1 (GPU), 2 (CPU), 3 (storage) or 0 (no "
      "cap); the worker is ranked no better than that tier (admin key)");
  worker_cap->add_option("worker", worker, "worker name or id")->required();
  worker_cap->add_option("tier", tier_cap, "0, 1, 2 or 3")->required()->check(CLI::Range(0, 3));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  if (*submit) {
    if (payload == "-") {
      payload.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    }
    auto body =
        SubmitBody({service, payload, raw, priority, max_attempts, timeout_s, idempotency_key});
    if (!body.ok()) {
      std::fprintf(stderr, "rmactl: %s\n", body.status().message().c_str());
      return kExitUsage;
    }
    Reply r = client.Call("POST", "/api/tasks", body->dump());
    if (!wait || r.status != 202) return Print(r, as_json, RenderSubmitted);
    return WaitFor(client, r.Json().value("task_id", ""), as_json);
  }
  if (*status) {
    if (wait) return WaitFor(client, id, as_json);
    return PrintTask(client, client.Call("GET", "/api/tasks/" + id), as_json);
  }
  if (*cancel) return PrintTask(client, client.Call("DELETE", "/api/tasks/" + id), as_json);
  if (*tasks) {
    std::string query = "?limit=" + std::to_string(limit);
    if (!filter_service.empty()) query += "&service=" + filter_service;
    if (!filter_status.empty()) query += "&status=" + filter_status;
    Reply r = client.Call("GET", "/api/tasks" + query);
    WorkerNames names = NamesFor(client, r, as_json);
    return Print(r, as_json, [&](const json& j) { return RenderTaskList(j, names); });
  }
  if (*workers) return Print(client.Call("GET", "/api/admin/workers"), as_json, RenderWorkers);
  if (*services) return Print(client.Call("GET", "/api/admin/services"), as_json, RenderServices);
  if (*stats) return Print(client.Call("GET", "/api/admin/stats"), as_json, RenderStats);
  if (*queues) return Print(client.Call("GET", "/api/admin/queues"), as_json, RenderQueues);
  auto render_action = [](const json& j) { return RenderAction(j); };
  if (*retry) {
    return Print(client.Call("POST", "/api/admin/tasks/" + id + "/retry"), as_json, render_action);
  }
  if (*discard) {
    return Print(client.Call("POST", "/api/admin/tasks/" + id + "/discard"), as_json,
                 render_action);
  }
  if (*dead_letters) {
    return Print(client.Call("GET", "/api/admin/dead-letters"), as_json, RenderDeadLetters);
  }
  if (*retry_dead) {
    json body = json::object();
    if (!filter_service.empty()) body["service"] = filter_service;
    if (!error_code.empty()) body["error_code"] = error_code;
    return Print(client.Call("POST", "/api/admin/tasks/retry", body.dump()), as_json, RenderBulk);
  }
  if (*purge) {
    return Print(
        client.Call("POST", "/api/admin/services/" + PathSegment(filter_service) + "/purge"),
        as_json, RenderPurged);
  }
  if (*drain) return WorkerCommand(client, "drain", worker, as_json);
  if (*undrain) return WorkerCommand(client, "undrain", worker, as_json);
  if (*account_create) {
    return Send(client, AccountCreateRequest(account_name, role), as_json, RenderAccountCreated);
  }
  if (*account_list) return Send(client, AccountListRequest(), as_json, RenderAccounts);
  if (*account_show) return Send(client, AccountShowRequest(show_name), as_json, RenderAccount);
  if (*credits_grant) {
    auto request = CreditsGrantRequest(account_name, amount, credit_kind, credit_note);
    if (!request.ok()) {
      std::fprintf(stderr, "rmactl: %s\n", request.status().message().c_str());
      return kExitUsage;
    }
    return Send(client, *request, as_json, RenderCreditsGranted);
  }
  if (*leaderboard) {
    return Send(client, LeaderboardRequest(period, ranked_by), as_json, RenderLeaderboard);
  }
  long expires_in_s = 0;
  if (!ParseExpiry(expires_in, &expires_in_s)) return kExitUsage;
  if (*key_create) {
    return Send(client,
                KeyCreateRequest({account_name, scopes, key_services, expires_in_s, key_name}),
                as_json, RenderKeyCreated);
  }
  if (*key_revoke) return Send(client, KeyRevokeRequest(prefix), as_json, RenderKeyRevoked);
  if (*enrol_create) {
    EnrolTokenOutcome out = CreateEnrolToken(CallOf(client), account_name, expires_in_s);
    if (!out.error.empty()) {
      std::fprintf(stderr, "rmactl: %s\n", out.error.c_str());
      return kExitRefused;
    }
    return Print(out.reply, as_json, RenderEnrolToken);
  }
  if (*worker_revoke) {
    return PrintWorkerOutcome(RevokeWorkerCredential(CallOf(client), worker), as_json,
                              RenderCredentialRevoked);
  }
  if (*worker_trust) {
    return PrintWorkerOutcome(SetWorkerTrust(CallOf(client), worker, trust_state), as_json,
                              RenderTrust);
  }
  if (*worker_cap) {
    return PrintWorkerOutcome(CapWorkerTier(CallOf(client), worker, tier_cap), as_json,
                              RenderTierCap);
  }
  return kExitUsage;
}
