// rmactl's pieces that are not argument parsing: one HTTP call to the gateway (libcurl), the
// requests each command sends (built from its arguments, resolving worker names through the admin
// API and the caller's account through GET /api/account), and the readable tables and summaries
// printed for the gateway's JSON. Everything but Client::Call is pure or takes the call as a
// function, so rmactl_test.cc checks it without a gateway.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace rma::cli {

// Exit codes of rmactl (docs/configuration.md, "rmactl").
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;      // the gateway answered with an error (HTTP 4xx/5xx)
inline constexpr int kExitUsage = 2;        // bad command line
inline constexpr int kExitUnreachable = 3;  // no answer from the gateway (connection, timeout)
inline constexpr int kExitTaskFailed = 4;   // --wait: the task ended without a result

struct Reply {
  long status = 0;  // 0: no answer (see error)
  std::string body;
  std::string error;
  bool not_sent = false;  // no connection was made: the request surely did nothing
  nlohmann::json Json() const { return nlohmann::json::parse(body, nullptr, false); }
};

struct Client {
  // "http://127.0.0.1:8080" (a trailing '/' is ignored), or several separated by commas: each
  // call goes to the first that answers (see NextGatewayAfter), starting with the last that did.
  std::string gateway;
  std::string key;  // sent as X-API-Key when not empty
  long timeout_s = 30;
  Reply Call(const std::string& method, const std::string& path, const std::string& body = "",
             long timeout_s_override = 0) const;
  Reply CallOne(const std::string& base, const std::string& method, const std::string& path,
                const std::string& body, long timeout_s) const;
  mutable size_t preferred = 0;  // index of the gateway that answered last
};

// The gateways of --gateway A,B,C (empty entries dropped).
std::vector<std::string> GatewayList(const std::string& text);
// Whether a call that got `reply` may go to the next gateway of the list: when it surely did
// nothing (no connection), or for a read (GET) the gateway could not serve because its broker is
// changing leader (503).
bool NextGatewayAfter(const std::string& method, const Reply& reply);

// One HTTP exchange with the gateway: (method, path, body) -> reply. Client::Call in rmactl, a fake
// in tests.
using CallFn = std::function<Reply(const std::string& method, const std::string& path,
                                   const std::string& body)>;

// `rmactl submit`: the POST /api/tasks body. PAYLOAD must be JSON (an object, array, number, string
// in quotes, ...), so a typo is an error instead of a task that carries the typo as text; with
// `raw` it is sent as it is, as a JSON string. An empty payload sends none.
struct SubmitRequest {
  std::string service;
  std::string payload;
  bool raw = false;
  int priority = -1;  // -1: the gateway's default
  int max_attempts = 0;
  double timeout_s = 0;
  std::string idempotency_key;
};
Result<nlohmann::json> SubmitBody(const SubmitRequest& request);

// A worker as the admin API lists it; `name` is empty when the listing did not have it.
struct WorkerRef {
  std::string worker_id;
  std::string name;
};
// Finds NAME_OR_ID in a GET /api/admin/workers document: a worker with exactly that id, else the
// one worker with that name. Several workers with the name: an error listing their ids (drain one
// by id). Neither: the argument as an id, so the broker gives its own answer for a worker it no
// longer lists.
Result<WorkerRef> ResolveWorker(const nlohmann::json& workers_doc, const std::string& name_or_id);
// One path segment percent-encoded (all but letters, digits and -_.~), so a name with a '/', '?' or
// space stays one segment of the route.
std::string PathSegment(const std::string& text);
// "/api/admin/workers/<id>/<action>", the id percent-encoded.
std::string WorkerActionPath(const std::string& worker_id, const std::string& action);

// `rmactl drain|undrain NAME|ID`: lists the workers, resolves the argument and POSTs the action.
// `error` is set (and nothing is POSTed) when the argument names several workers; otherwise `reply`
// is the gateway's answer — to the listing when that failed, else to the action.
struct WorkerActionOutcome {
  Reply reply;
  WorkerRef worker;
  std::string error;
};
WorkerActionOutcome WorkerAction(const CallFn& call, const std::string& action,
                                 const std::string& name_or_id);
// `rmactl worker revoke NAME|ID`: the same lookup, then DELETE /api/admin/workers/<id>/credential.
WorkerActionOutcome RevokeWorkerCredential(const CallFn& call, const std::string& name_or_id);
// `rmactl worker trust NAME|ID STATE`: the same lookup, then POST /api/admin/workers/<id>/trust
// {"state": STATE} (trusted, normal, quarantined or banned).
WorkerActionOutcome SetWorkerTrust(const CallFn& call, const std::string& name_or_id,
                                   const std::string& state);
// `rmactl worker cap NAME|ID TIER`: the same lookup, then PATCH /api/admin/workers/<id>/credential
// {"tier_cap": TIER} (0 removes the cap).
WorkerActionOutcome CapWorkerTier(const CallFn& call, const std::string& name_or_id, int tier_cap);

// ---- Accounts, API keys, enrolment tokens: the gateway's /api/admin/accounts, /api/admin/keys and
// /api/account routes.

// One request to the gateway; `body` is empty for none.
struct Request {
  std::string method;
  std::string path;
  std::string body;
  bool operator==(const Request&) const = default;
};

// A duration in seconds: "86400", or a whole number with one unit, "90s", "15m", "24h", "30d".
// Zero, negative, fractional, unknown units and sums are errors (so "1d12h" is not half-read).
Result<long> ParseDuration(const std::string& text);

// `rmactl account create NAME [--role member|admin]`; an empty role leaves the gateway's default.
Request AccountCreateRequest(const std::string& name, const std::string& role);
// `rmactl account list` (admin key) and `rmactl account show` (the key's own account).
Request AccountListRequest();
// The key's own account, or (an admin key) the account NAME.
Request AccountShowRequest(const std::string& name = "");
// `rmactl credits grant ACCOUNT AMOUNT [--kind grant|adjustment] [--note TEXT]` (admin key); AMOUNT
// a decimal number, negative to take credits away. InvalidArgument when AMOUNT is not a number.
Result<Request> CreditsGrantRequest(const std::string& account, const std::string& amount,
                                    const std::string& kind, const std::string& note);
// `rmactl leaderboard [--period day|week|all] [--by credits|tasks|compute]`; empty: the defaults.
Request LeaderboardRequest(const std::string& period, const std::string& by);

// `rmactl key create ACCOUNT [--scope S]... [--service S]... [--expires-in D] [--name N]`: what is
// left empty (or 0) is left out, so the gateway's defaults apply (scope client, all services, no
// expiry).
struct KeyCreateOptions {
  std::string account;
  std::vector<std::string> scopes;
  std::vector<std::string> services;
  long expires_in_s = 0;
  std::string name;
};
Request KeyCreateRequest(const KeyCreateOptions& options);
// `rmactl key revoke PREFIX`.
Request KeyRevokeRequest(const std::string& prefix);
// `rmactl enrol-token create ACCOUNT [--expires-in D]`; 0 leaves the gateway's default expiry.
Request EnrolTokenRequest(const std::string& account, long expires_in_s);

// `rmactl enrol-token create [ACCOUNT]`: without ACCOUNT, the caller's own account, read from GET
// /api/account, so a contributor key needs no arguments. `reply` is the gateway's answer to the
// lookup when that failed, else to the POST. `error` is set (and nothing is POSTed) when the lookup
// answered 200 without an account name.
struct EnrolTokenOutcome {
  Reply reply;
  std::string account;
  std::string error;
};
EnrolTokenOutcome CreateEnrolToken(const CallFn& call, const std::string& account,
                                   long expires_in_s);

// Worker names by id, from a GET /api/admin/workers document (empty for anything else).
using WorkerNames = std::map<std::string, std::string>;
WorkerNames WorkerNamesOf(const nlohmann::json& workers_doc);
// "w-1 (gpu-box)", or just the id when its name is unknown.
std::string WorkerLabel(const std::string& worker_id, const WorkerNames& names);
// Whether a task answer (one task, or a {"tasks": [...]} list) names any worker, i.e. whether
// asking for the names is worth a request.
bool MentionsWorkers(const nlohmann::json& doc);

// Columns padded to their widest cell, two spaces apart, header first.
std::string Table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows);

std::string RenderWorkers(const nlohmann::json& doc);
std::string RenderServices(const nlohmann::json& doc);
std::string RenderQueues(const nlohmann::json& doc);
// GET /api/admin/dead-letters, and the answers of a purge and of a bulk retry/discard.
std::string RenderDeadLetters(const nlohmann::json& doc);
std::string RenderPurged(const nlohmann::json& answer);
std::string RenderBulk(const nlohmann::json& answer);
std::string RenderStats(const nlohmann::json& doc);
// Task views show the worker's name beside its id when `names` has it.
std::string RenderTask(const nlohmann::json& task, const WorkerNames& names = {});
std::string RenderTaskList(const nlohmann::json& doc, const WorkerNames& names = {});
// "drain: worker w-1 (gpu-box) ok" for an admin action's answer.
std::string RenderAction(const nlohmann::json& answer, const WorkerNames& names = {});
// Account answers: the one created, the admin listing (a table), and the caller's own account
// (summary, keys, worker credentials, tasks by status).
std::string RenderAccountCreated(const nlohmann::json& account);
std::string RenderAccounts(const nlohmann::json& doc);
std::string RenderAccount(const nlohmann::json& doc);
// A grant: "granted 10 credits to bob (welcome); balance 10.5".
std::string RenderCreditsGranted(const nlohmann::json& answer);
// The leaderboard: one line per account (rank, credits, tasks, compute), its workers beneath.
std::string RenderLeaderboard(const nlohmann::json& doc);
// A new API key, set apart on its own line with the warning that it is never shown again.
std::string RenderKeyCreated(const nlohmann::json& key);
std::string RenderKeyRevoked(const nlohmann::json& answer);
// A new enrolment token and the rma-worker command that uses it.
std::string RenderEnrolToken(const nlohmann::json& token);
// "credential of worker w-1 (gpu-box) revoked ...".
std::string RenderCredentialRevoked(const nlohmann::json& answer, const WorkerNames& names = {});
// "credential of worker w-1 (gpu-box): tier capped at 2; the connected worker's tier changed now".
std::string RenderTierCap(const nlohmann::json& answer, const WorkerNames& names = {});
// "worker w-1 (gpu-box): trust quarantined, reputation good -> quarantined".
std::string RenderTrust(const nlohmann::json& answer, const WorkerNames& names = {});
// An error answer: "error 404 (not_found): task '7' not found".
std::string RenderError(const Reply& reply);

// Whether a task status is final (nothing will change it without an admin).
bool IsFinal(const std::string& status);

}  // namespace rma::cli
