// The gateway's routes as one table — method, path pattern, the key it needs and a name for metrics
// — and the matcher that maps a request to a route, or to 404 / 405 with the methods the path
// allows. Because the table is data, a test checks it against docs/openapi.json in both directions.
// Pure and immutable: safe on any thread.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rma::gateway {

enum class RouteId {
  kHealth,
  kMetrics,
  kSubmitTask,
  kListTasks,
  kGetTask,
  kCancelTask,
  kServiceCall,       // /api/service/{name}/{path...}
  kShortServiceCall,  // /api/{name}/{path...} for names that are not reserved
  kAdminWorkers,
  kAdminServices,
  kAdminStats,
  kAdminQueues,
  kAdminHealth,
  kAdminRetryTask,
  kAdminDiscardTask,
  kAdminDrainWorker,
  kAdminUndrainWorker,
  kAdminWorkerTrust,
  kAccount,                // GET /api/account
  kAdminAccounts,          // GET /api/admin/accounts
  kAdminCreateAccount,     // POST /api/admin/accounts
  kAdminAccount,           // GET /api/admin/accounts/{name}
  kAdminCreateKey,         // POST /api/admin/accounts/{name}/keys
  kAdminRevokeKey,         // DELETE /api/admin/keys/{prefix}
  kAdminEnrolToken,        // POST /api/admin/accounts/{name}/enrol-tokens
  kAdminRevokeCredential,  // DELETE /api/admin/workers/{id}/credential
  kAdminLimitCredential,   // PATCH /api/admin/workers/{id}/credential
  kAdminCredits,           // POST /api/admin/accounts/{name}/credits
  kLeaderboard,            // GET /api/leaderboard
  kOpenAiChat,             // POST /v1/chat/completions
  kOpenAiCompletions,      // POST /v1/completions
  kOpenAiEmbeddings,       // POST /v1/embeddings
  kOpenAiModels,           // GET /v1/models
  kTaskEvents,             // GET /api/tasks/{id}/events
  // The operator's console (issue 19).
  kTaskPayload,        // GET /api/tasks/{id}/payload
  kTaskResult,         // GET /api/tasks/{id}/result
  kAdminWorker,        // GET /api/admin/workers/{id}
  kAdminDeadLetters,   // GET /api/admin/dead-letters
  kAdminBulkRetry,     // POST /api/admin/tasks/retry
  kAdminBulkDiscard,   // POST /api/admin/tasks/discard
  kAdminPurgeService,  // POST /api/admin/services/{name}/purge
  kAdminHistory,       // GET /api/admin/history
};

// What a request needs to be let through when API keys are configured.
enum class Access {
  kOpen,         // nothing (/health)
  kClient,       // a client or admin key
  kAdmin,        // an admin key
  kMetrics,      // an admin key, unless metrics are public (--public-metrics)
  kContributor,  // a contributor or admin key (enrolment tokens; the handler checks the account)
  kAccount,      // any valid key (the caller's own account)
  kLeaderboard,  // nothing, or any valid key with --private-leaderboard
};

inline constexpr std::string_view kAnyServiceMethod = "*";
// What the service routes forward to a backend ("*" in the table).
inline constexpr std::array<std::string_view, 6> kServiceMethods = {"GET", "HEAD",  "POST",
                                                                    "PUT", "PATCH", "DELETE"};

struct Route {
  RouteId id;
  std::string_view method;   // "GET", "POST", "DELETE", or kAnyServiceMethod
  std::string_view pattern;  // "/api/tasks/{id}"; a last segment "{path...}" matches the rest
  Access access;
  std::string_view name;  // label in metrics ("get_task")
};

const std::vector<Route>& Routes();
// Every route's metrics label, in Routes() order; and a route's index there (-1 for none).
std::vector<std::string> RouteNames();
int RouteIndex(const Route* r);

// First path segments under /api/ that are never taken as a service name by /api/{name}/...
bool IsReservedApiName(std::string_view name);

struct RouteMatch {
  const Route* route = nullptr;  // null: no route for this method (see allowed)
  bool head_only = false;        // a HEAD answered like the GET route it matched
  std::vector<std::pair<std::string, std::string>> params;  // {"id", "42"}, {"path", "/a/b"}
  std::vector<std::string> allowed;  // methods the path allows, when it matched but not the method

  std::string Param(std::string_view name) const;
};

// Matches a request. `path` is the raw path of the request target (no query). HEAD matches a GET
// route (answered without a body) unless a route takes HEAD itself. When nothing matches, route is
// null and `allowed` is empty for 404 and lists the methods for 405 (OPTIONS not included).
RouteMatch MatchRoute(std::string_view method, std::string_view path);

// The OpenAPI form of a pattern: "{path...}" becomes "{path}".
std::string OpenApiPath(std::string_view pattern);

}  // namespace rma::gateway
