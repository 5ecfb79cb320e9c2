// See router.h. Routes are tried in table order; literal routes come before the catch-all service
// route so "/api/tasks" is never taken for a service called "tasks".
#include "gateway/router.h"

#include <algorithm>

#include "gateway/http_wire.h"

namespace rma::gateway {

const std::vector<Route>& Routes() {
  static const std::vector<Route> kRoutes = {
      {RouteId::kHealth, "GET", "/health", Access::kOpen, "health"},
      {RouteId::kMetrics, "GET", "/metrics", Access::kMetrics, "metrics"},
      {RouteId::kSubmitTask, "POST", "/api/tasks", Access::kClient, "submit_task"},
      {RouteId::kListTasks, "GET", "/api/tasks", Access::kClient, "list_tasks"},
      {RouteId::kGetTask, "GET", "/api/tasks/{id}", Access::kClient, "get_task"},
      {RouteId::kCancelTask, "DELETE", "/api/tasks/{id}", Access::kClient, "cancel_task"},
      {RouteId::kTaskEvents, "GET", "/api/tasks/{id}/events", Access::kClient, "task_events"},
      {RouteId::kTaskPayload, "GET", "/api/tasks/{id}/payload", Access::kClient, "task_payload"},
      {RouteId::kTaskResult, "GET", "/api/tasks/{id}/result", Access::kClient, "task_result"},
      {RouteId::kAdminWorker, "GET", "/api/admin/workers/{id}", Access::kAdmin, "admin_worker"},
      {RouteId::kAdminDeadLetters, "GET", "/api/admin/dead-letters", Access::kAdmin,
       "admin_dead_letters"},
      {RouteId::kAdminBulkRetry, "POST", "/api/admin/tasks/retry", Access::kAdmin,
       "admin_bulk_retry"},
      {RouteId::kAdminBulkDiscard, "POST", "/api/admin/tasks/discard", Access::kAdmin,
       "admin_bulk_discard"},
      {RouteId::kAdminPurgeService, "POST", "/api/admin/services/{name}/purge", Access::kAdmin,
       "admin_purge_service"},
      {RouteId::kAdminHistory, "GET", "/api/admin/history", Access::kAdmin, "admin_history"},
      {RouteId::kAdminWorkers, "GET", "/api/admin/workers", Access::kAdmin, "admin_workers"},
      {RouteId::kAdminServices, "GET", "/api/admin/services", Access::kAdmin, "admin_services"},
      {RouteId::kAdminStats, "GET", "/api/admin/stats", Access::kAdmin, "admin_stats"},
      {RouteId::kAdminQueues, "GET", "/api/admin/queues", Access::kAdmin, "admin_queues"},
      {RouteId::kAdminHealth, "GET", "/api/admin/health", Access::kAdmin, "admin_health"},
      {RouteId::kAdminRetryTask, "POST", "/api/admin/tasks/{id}/retry", Access::kAdmin,
       "admin_retry_task"},
      {RouteId::kAdminDiscardTask, "POST", "/api/admin/tasks/{id}/discard", Access::kAdmin,
       "admin_discard_task"},
      {RouteId::kAdminDrainWorker, "POST", "/api/admin/workers/{id}/drain", Access::kAdmin,
       "admin_drain_worker"},
      {RouteId::kAdminUndrainWorker, "POST", "/api/admin/workers/{id}/undrain", Access::kAdmin,
       "admin_undrain_worker"},
      {RouteId::kAdminWorkerTrust, "POST", "/api/admin/workers/{id}/trust", Access::kAdmin,
       "admin_worker_trust"},
      {RouteId::kAccount, "GET", "/api/account", Access::kAccount, "account"},
      {RouteId::kAdminAccounts, "GET", "/api/admin/accounts", Access::kAdmin, "admin_accounts"},
      {RouteId::kAdminCreateAccount, "POST", "/api/admin/accounts", Access::kAdmin,
       "admin_create_account"},
      {RouteId::kAdminAccount, "GET", "/api/admin/accounts/{name}", Access::kAdmin,
       "admin_account"},
      {RouteId::kAdminCreateKey, "POST", "/api/admin/accounts/{name}/keys", Access::kAdmin,
       "admin_create_key"},
      {RouteId::kAdminRevokeKey, "DELETE", "/api/admin/keys/{prefix}", Access::kAdmin,
       "admin_revoke_key"},
      {RouteId::kAdminEnrolToken, "POST", "/api/admin/accounts/{name}/enrol-tokens",
       Access::kContributor, "admin_enrol_token"},
      {RouteId::kAdminRevokeCredential, "DELETE", "/api/admin/workers/{id}/credential",
       Access::kAdmin, "admin_revoke_credential"},
      {RouteId::kAdminLimitCredential, "PATCH", "/api/admin/workers/{id}/credential",
       Access::kAdmin, "admin_limit_credential"},
      {RouteId::kAdminCredits, "POST", "/api/admin/accounts/{name}/credits", Access::kAdmin,
       "admin_credits"},
      {RouteId::kLeaderboard, "GET", "/api/leaderboard", Access::kLeaderboard, "leaderboard"},
      {RouteId::kOpenAiChat, "POST", "/v1/chat/completions", Access::kClient, "openai_chat"},
      {RouteId::kOpenAiCompletions, "POST", "/v1/completions", Access::kClient,
       "openai_completions"},
      {RouteId::kOpenAiEmbeddings, "POST", "/v1/embeddings", Access::kClient, "openai_embeddings"},
      {RouteId::kOpenAiModels, "GET", "/v1/models", Access::kClient, "openai_models"},
      {RouteId::kServiceCall, kAnyServiceMethod, "/api/service/{name}/{path...}", Access::kClient,
       "service_call"},
      {RouteId::kShortServiceCall, kAnyServiceMethod, "/api/{name}/{path...}", Access::kClient,
       "service_call_short"},
  };
  return kRoutes;
}

std::vector<std::string> RouteNames() {
  std::vector<std::string> names;
  for (const Route& r : Routes()) names.emplace_back(r.name);
  return names;
}

int RouteIndex(const Route* r) { return r == nullptr ? -1 : static_cast<int>(r - Routes().data()); }

bool IsReservedApiName(std::string_view name) {
  // The API's own words, and the admin resources someone may type without "admin/": a request for
  // /api/workers is a mistyped route (404), not a call to a service named "workers".
  static constexpr std::array<std::string_view, 20> kReserved = {
      "tasks",        "admin", "service",     "health",   "metrics", "docs",   "openapi",
      "openapi.json", "v1",    "workers",     "services", "stats",   "queues", "account",
      "accounts",     "keys",  "leaderboard", "events",   "enrol",   "auth"};
  return std::find(kReserved.begin(), kReserved.end(), name) != kReserved.end();
}

std::string RouteMatch::Param(std::string_view name) const {
  for (const auto& [key, value] : params) {
    if (key == name) return value;
  }
  return "";
}

namespace {

// Matches `path` against `pattern`; fills params on success.
bool MatchPattern(std::string_view pattern, std::string_view path,
                  std::vector<std::pair<std::string, std::string>>* params) {
  std::vector<std::string_view> want = PathSegments(pattern);
  std::vector<std::string_view> got = PathSegments(path);
  params->clear();
  for (size_t i = 0; i < want.size(); ++i) {
    std::string_view w = want[i];
    const bool param = w.size() > 2 && w.front() == '{' && w.back() == '}';
    if (param && w.size() > 5 && w.substr(w.size() - 4) == "...}") {
      // The rest of the raw path, from the end of the previous segment, "/" when empty.
      std::string rest;
      if (i == 0) {
        rest = std::string(path);
      } else if (i - 1 < got.size()) {
        size_t end = static_cast<size_t>(got[i - 1].data() + got[i - 1].size() - path.data());
        rest = std::string(path.substr(end));
      }
      if (rest.empty()) rest.push_back('/');
      std::string name(w.data() + 1, w.size() - 5);
      params->emplace_back(std::move(name), std::move(rest));
      return got.size() >= i;
    }
    if (i >= got.size()) return false;
    if (param) {
      params->emplace_back(std::string(w.substr(1, w.size() - 2)), std::string(got[i]));
    } else if (w != got[i]) {
      return false;
    }
  }
  return got.size() == want.size();
}

bool RouteTakesMethod(const Route& r, std::string_view method) {
  if (r.method == kAnyServiceMethod) {
    return std::find(kServiceMethods.begin(), kServiceMethods.end(), method) !=
           kServiceMethods.end();
  }
  return r.method == method;
}

}  // namespace

RouteMatch MatchRoute(std::string_view method, std::string_view path) {
  RouteMatch m;
  std::vector<std::pair<std::string, std::string>> params;
  const Route* head_fallback = nullptr;
  std::vector<std::pair<std::string, std::string>> head_params;
  for (const Route& r : Routes()) {
    if (!MatchPattern(r.pattern, path, &params)) continue;
    if (r.id == RouteId::kShortServiceCall) {
      // "/api/{name}/..." only for names that are not the gateway's own.
      if (IsReservedApiName(params.front().second)) continue;
    }
    if (RouteTakesMethod(r, method)) {
      m.route = &r;
      m.params = std::move(params);
      m.allowed.clear();
      return m;
    }
    if (method == "HEAD" && r.method == "GET" && head_fallback == nullptr) {
      head_fallback = &r;
      head_params = params;
    }
    if (r.method == kAnyServiceMethod) {
      for (std::string_view s : kServiceMethods) m.allowed.emplace_back(s);
    } else {
      m.allowed.emplace_back(r.method);
    }
  }
  if (head_fallback != nullptr) {
    m.route = head_fallback;
    m.head_only = true;
    m.params = std::move(head_params);
    m.allowed.clear();
    return m;
  }
  // A path that matches only by a GET route also takes HEAD.
  if (std::find(m.allowed.begin(), m.allowed.end(), "GET") != m.allowed.end() &&
      std::find(m.allowed.begin(), m.allowed.end(), "HEAD") == m.allowed.end()) {
    m.allowed.emplace_back("HEAD");
  }
  return m;
}

std::string OpenApiPath(std::string_view pattern) {
  std::string out(pattern);
  size_t pos = out.find("...}");
  if (pos != std::string::npos) out.erase(pos, 3);
  return out;
}

}  // namespace rma::gateway
