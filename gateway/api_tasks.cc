// The task routes, /health and /metrics; see api.h and docs/http-api.md.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "common/version.h"
#include "gateway/api.h"
#include "gateway/console.h"
#include "gateway/task_events.h"
#include "gateway/task_json.h"
#include "protocol/names.h"

namespace rma::gateway {

using nlohmann::json;
using proto::Command;

Caller CallerOf(const ApiKey* key) {
  if (key == nullptr) return Caller{};
  return Caller{key->account, key->role == Role::kAdmin};
}

std::optional<HttpReply> ServiceRefusal(const ApiKey* key, std::string_view service) {
  if (key == nullptr) return std::nullopt;
  return ServiceRefusal(key->services, service);
}

std::optional<HttpReply> ServiceRefusal(const std::vector<std::string>& allowed,
                                        std::string_view service) {
  if (allowed.empty()) return std::nullopt;
  for (const std::string& s : allowed) {
    if (s == service) return std::nullopt;
  }
  return ErrorReply(403, "this API key may not use service '" + std::string(service) + "'",
                    "permission_denied");
}

void Api::Offload(Exchange& ex, std::function<void(std::shared_ptr<Deferred>)> job) {
  std::shared_ptr<Deferred> deferred = ex.Defer();
  if (!deferred) return;
  ctx_->parse_pool.Post([job = std::move(job), deferred]() mutable { job(std::move(deferred)); });
}

void Api::Handle(const Call& call, Exchange& ex) {
  switch (call.match.route->id) {
    case RouteId::kHealth:
      return ex.Reply(Health());
    case RouteId::kOpenAiChat:
      return OpenAiCall(call, ex, "/v1/chat/completions");
    case RouteId::kOpenAiCompletions:
      return OpenAiCall(call, ex, "/v1/completions");
    case RouteId::kOpenAiEmbeddings:
      return OpenAiCall(call, ex, "/v1/embeddings");
    case RouteId::kOpenAiModels:
      return OpenAiModels(ex);
    case RouteId::kTaskEvents:
      return TaskEventStream(call, ex);
    case RouteId::kMetrics:
      return Metrics(ex);
    case RouteId::kSubmitTask:
      return SubmitTask(call, ex);
    case RouteId::kListTasks:
      return ListTasks(call, ex);
    case RouteId::kGetTask:
      return GetTask(call, ex);
    case RouteId::kCancelTask:
      return CancelTask(call, ex);
    case RouteId::kAdminWorkers:
      return AdminQuery("workers", ex);
    case RouteId::kAdminServices:
      return AdminQuery("services", ex);
    case RouteId::kAdminStats:
      return AdminQuery("stats", ex);
    case RouteId::kAdminQueues:
      return AdminQuery("queues", ex);
    case RouteId::kAdminHealth:
      return AdminQuery("health", ex);
    case RouteId::kAdminRetryTask:
      return AdminTaskAction("retry", call, ex);
    case RouteId::kAdminDiscardTask:
      return AdminTaskAction("discard", call, ex);
    case RouteId::kAdminDrainWorker:
      return AdminWorkerAction("drain", call, ex);
    case RouteId::kAdminUndrainWorker:
      return AdminWorkerAction("undrain", call, ex);
    case RouteId::kAdminWorkerTrust:
      return AdminWorkerTrust(call, ex);
    case RouteId::kServiceCall:
    case RouteId::kShortServiceCall:
      return ServiceCall(call, ex);
    case RouteId::kAccount:
      return OwnAccount(call, ex);
    case RouteId::kAdminAccounts:
      return AdminQuery("accounts", ex);
    case RouteId::kAdminCreateAccount:
      return CreateAccount(call, ex);
    case RouteId::kAdminAccount:
      return AnyAccount(call, ex);
    case RouteId::kAdminCreateKey:
      return CreateKey(call, ex);
    case RouteId::kAdminRevokeKey:
      return RevokeKey(call, ex);
    case RouteId::kAdminEnrolToken:
      return CreateEnrolToken(call, ex);
    case RouteId::kAdminRevokeCredential:
      return RevokeCredential(call, ex);
    case RouteId::kAdminLimitCredential:
      return LimitCredential(call, ex);
    case RouteId::kAdminCredits:
      return GrantCredits(call, ex);
    case RouteId::kLeaderboard:
      return Leaderboard(call, ex);
    case RouteId::kTaskPayload:
      return RawTaskBytes(call, ex, /*payload=*/true);
    case RouteId::kTaskResult:
      return RawTaskBytes(call, ex, /*payload=*/false);
    case RouteId::kAdminWorker:
      return AdminWorkerAction("worker", call, ex);
    case RouteId::kAdminDeadLetters:
      return AdminQuery("dead_letters", ex);
    case RouteId::kAdminBulkRetry:
      return AdminBulkDead(call, ex, /*retry=*/true);
    case RouteId::kAdminBulkDiscard:
      return AdminBulkDead(call, ex, /*retry=*/false);
    case RouteId::kAdminPurgeService:
      return AdminPurge(call, ex);
    case RouteId::kAdminHistory:
      return AdminHistory(call, ex);
  }
  ex.Reply(ErrorReply(500, "unhandled route", "internal"));
}

HttpReply Api::Health() {
  const bool reachable = ctx_->broker.broker_reachable();
  json body = {
      {"status", reachable ? "ok" : "degraded"},
      {"gateway", "up"},
      {"broker", reachable                          ? "reachable"
                 : ctx_->broker.broker_is_standby() ? "standby"
                                                    : "unreachable"},
      // With several brokers (--ha): the one followed, believed to lead, and how often that
      // changed.
      {"broker_endpoint", ctx_->broker.current_endpoint()},
      {"broker_switches", ctx_->broker.broker_switches()},
      {"version", kVersion},
      {"pending_requests", ctx_->broker.pending()},
      {"pending_writes", ctx_->writer.pending()},
      {"uptime_s", std::round(ToSecondsF(ctx_->clock.Now() - ctx_->started_at) * 10) / 10}};
  return JsonReply(reachable ? 200 : 503, body);
}

void Api::Metrics(Exchange& ex) {
  std::shared_ptr<Deferred> deferred = ex.Defer();
  if (!deferred) return;
  proto::Admin admin;
  admin.query = "metrics";
  ApiContext* ctx = ctx_;
  ctx_->broker.Request(Command::kAdmin, admin, ctx_->options.metrics_timeout,
                       [ctx, deferred](Result<BrokerAnswer> answer) {
                         json doc;
                         bool up = false;
                         if (answer.ok()) {
                           if (const auto* ar = std::get_if<proto::AdminReply>(&*answer)) {
                             doc = ar->data;
                             up = doc.is_object();
                           }
                         }
                         std::string text;
                         text.reserve(32 << 10);
                         ctx->metrics.Render(&text);
                         ctx->model_metrics.Render(&text);
                         GatewayGauges g;
                         g.pending_requests = ctx->broker.pending();
                         g.pending_writes = ctx->writer.pending();
                         g.dropped_responses = ctx->writer.dropped();
                         g.broker_reachable = ctx->broker.broker_reachable();
                         g.broker_switches = ctx->broker.broker_switches();
                         g.start_time_s = static_cast<double>(ToUnixMs(ctx->started_at)) / 1000.0;
                         g.version = std::string(kVersion);
                         RenderGatewayGauges(g, &text);
                         RenderBrokerMetrics(doc, up, &text);
                         deferred->Reply(HttpReply{
                             200, std::move(text), "text/plain; version=0.0.4; charset=utf-8", {}});
                       });
}

namespace {

HttpReply SubmitParseError(const Status& s) {
  const bool too_large = s.code() == StatusCode::kResourceExhausted;
  return ErrorReply(too_large ? 413 : 400, s.message(),
                    too_large ? "payload_too_large" : "invalid_argument");
}

// The answer to POST /api/tasks: 202 with the acceptance; with ?wait=S, 200 with the task when it
// ended within S seconds, else 202 with the task as it stands.
HttpReply SubmitAnswer(const BrokerAnswer& a, bool admin) {
  if (const auto* info = std::get_if<proto::TaskInfo>(&a)) {
    const bool ended = proto::IsTerminal(info->task.status);
    HttpReply r = JsonReply(ended ? 200 : 202,
                            TaskJson(info->task, /*with_result=*/true, /*with_owner=*/admin));
    r.headers.emplace_back("Location", "/api/tasks/" + ToString(info->task.task_id));
    return r;
  }
  const auto* acc = std::get_if<proto::Accepted>(&a);
  if (acc == nullptr) return UnexpectedAnswer();
  json body = {{"task_id", ToString(acc->task_id)}, {"status", proto::TaskStatusName(acc->status)}};
  if (acc->duplicate) body["duplicate"] = true;
  if (acc->waiting_for_provider) body["waiting_for_provider"] = true;
  HttpReply r = JsonReply(202, body);
  r.headers.emplace_back("Location", "/api/tasks/" + ToString(acc->task_id));
  return r;
}

}  // namespace

std::optional<uint32_t> Api::WaitMs(const Call& call, Exchange& ex) {
  auto wait = QueryParam(call.query, "wait");
  if (!wait) return 0;
  auto secs = ParseSeconds(*wait, ToSecondsF(ctx_->options.max_wait));
  if (!secs) {
    ex.Reply(ErrorReply(400,
                        "'wait' must be a number of seconds between 0 and " +
                            FormatSampleValue(ToSecondsF(ctx_->options.max_wait)),
                        "invalid_argument"));
    return std::nullopt;
  }
  return static_cast<uint32_t>(*secs * 1000);
}

void Api::SubmitTask(const Call& call, Exchange& ex) {
  SubmitLimits limits;
  limits.max_payload_bytes = ctx_->options.max_body_bytes;
  limits.document_max_bytes = ctx_->options.large_body_bytes;
  const Caller caller = CallerOf(call.key);
  std::string owner = caller.owner;
  // ?wait=S: one round trip to the broker answers with the task's end (SUBMIT wait_ms).
  const std::optional<uint32_t> wait_ms = WaitMs(call, ex);
  if (!wait_ms) return;
  const Duration timeout = ctx_->options.submit_timeout + Ms(*wait_ms);
  auto answer = [admin = caller.admin](const BrokerAnswer& a) { return SubmitAnswer(a, admin); };
  if (call.body.size() > ctx_->options.large_body_bytes) {
    // Large: parsed on the parse pool, never on this reactor thread (see task_json.h).
    ApiContext* ctx = ctx_;
    // The key's service allow-list travels with the job (the key itself lives for this call).
    std::vector<std::string> services = call.key ? call.key->services : std::vector<std::string>{};
    return Offload(ex, [ctx, limits, owner = std::move(owner), body = std::move(call.body),
                        services = std::move(services), wait_ms = *wait_ms, timeout, answer,
                        lease = call.lease](std::shared_ptr<Deferred> deferred) mutable {
      auto submit = ParseSubmitJson(std::move(body), limits, ctx->clock.Now());
      if (!submit.ok()) return deferred->Reply(SubmitParseError(submit.status()));
      if (auto refusal = ServiceRefusal(services, submit->service)) {
        return deferred->Reply(std::move(*refusal));
      }
      submit->owner = std::move(owner);
      submit->wait_ms = wait_ms;
      AskFor(ctx, std::move(deferred), Command::kSubmit, std::move(*submit), timeout, answer,
             std::move(lease));
    });
  }
  auto submit = ParseSubmitJson(std::move(call.body), limits, ctx_->clock.Now());
  if (!submit.ok()) return ex.Reply(SubmitParseError(submit.status()));
  if (auto refusal = ServiceRefusal(call.key, submit->service))
    return ex.Reply(std::move(*refusal));
  submit->owner = std::move(owner);
  submit->wait_ms = *wait_ms;
  Ask(ex, Command::kSubmit, std::move(*submit), timeout, answer);
}

namespace {

// The GET of the task the route names, as its caller; nullopt after answering 404 for an id that
// is not one.
std::optional<proto::Get> TaskGet(const Call& call, Exchange& ex) {
  const std::string id_text = call.match.Param("id");
  auto id = ParseTaskId(id_text);
  if (!id) {
    ex.Reply(ErrorReply(404, "task '" + id_text + "' not found", "not_found"));
    return std::nullopt;
  }
  const Caller caller = CallerOf(call.key);
  proto::Get get;
  get.task_id = *id;
  get.owner = caller.owner;
  get.admin = caller.admin;
  return get;
}

}  // namespace

void Api::GetTask(const Call& call, Exchange& ex) {
  std::optional<proto::Get> found = TaskGet(call, ex);
  if (!found) return;
  proto::Get& get = *found;
  const Caller caller = CallerOf(call.key);
  const std::optional<uint32_t> wait_ms = WaitMs(call, ex);
  if (!wait_ms) return;
  get.wait_ms = *wait_ms;
  // ?detail=1: the task page (payload, sizes, attempt log); answered at once, `wait` ignored.
  if (auto detail = QueryParam(call.query, "detail"); detail && *detail != "0" && *detail != "") {
    get.detail = true;
    get.wait_ms = 0;
  }
  Ask(ex, Command::kGet, get, Ms(get.wait_ms) + ctx_->options.submit_timeout,
      [admin = caller.admin, detail = get.detail](const BrokerAnswer& a) -> HttpReply {
        const auto* info = std::get_if<proto::TaskInfo>(&a);
        if (info == nullptr) return UnexpectedAnswer();
        if (detail) return JsonReply(200, TaskDetailJson(info->task, /*with_owner=*/admin));
        return JsonReply(200, TaskJson(info->task, /*with_result=*/true, /*with_owner=*/admin));
      });
}

void Api::RawTaskBytes(const Call& call, Exchange& ex, bool payload) {
  std::optional<proto::Get> get = TaskGet(call, ex);
  if (!get) return;
  const std::string id_text = ToString(get->task_id);
  get->detail = payload;  // the payload travels only in a detailed answer
  Ask(ex, Command::kGet, *get, ctx_->options.submit_timeout,
      [payload, id_text](const BrokerAnswer& a) -> HttpReply {
        const auto* info = std::get_if<proto::TaskInfo>(&a);
        if (info == nullptr) return UnexpectedAnswer();
        const proto::TaskView& t = info->task;
        if (!payload && t.status != proto::TaskStatus::kCompleted) {
          return ErrorReply(404, "task " + id_text + " has no result yet", "not_found");
        }
        const std::string& type = payload ? t.payload_content_type : t.content_type;
        HttpReply r{200,
                    std::string(payload ? t.payload.view() : t.result.view()),
                    type.empty() ? std::string("application/octet-stream") : type,
                    {}};
        r.headers.emplace_back("Content-Disposition",
                               "attachment; filename=\"task-" + id_text +
                                   (payload ? "-payload.bin\"" : "-result.bin\""));
        return r;
      });
}

void Api::TaskEventStream(const Call& call, Exchange& ex) {
  std::optional<proto::Get> get = TaskGet(call, ex);
  if (!get) return;
  const Caller caller = CallerOf(call.key);
  std::optional<EventId> last;
  if (auto header = call.head.Header("Last-Event-ID")) last = ParseEventId(*header);
  std::shared_ptr<Deferred> deferred = ex.Defer();
  if (!deferred) return;
  TaskEvents::Start(ctx_, std::move(deferred), std::move(*get), std::move(last), caller.admin);
}

void Api::CancelTask(const Call& call, Exchange& ex) {
  const std::string id_text = call.match.Param("id");
  auto id = ParseTaskId(id_text);
  if (!id) return ex.Reply(ErrorReply(404, "task '" + id_text + "' not found", "not_found"));
  const Caller caller = CallerOf(call.key);
  proto::CancelTask cancel;
  cancel.task_id = *id;
  cancel.owner = caller.owner;
  cancel.admin = caller.admin;
  Ask(ex, Command::kCancelTask, cancel, ctx_->options.submit_timeout,
      [admin = caller.admin](const BrokerAnswer& a) -> HttpReply {
        const auto* info = std::get_if<proto::TaskInfo>(&a);
        if (info == nullptr) return UnexpectedAnswer();
        if (info->task.status == proto::TaskStatus::kCancelled) {
          return JsonReply(200, TaskJson(info->task, /*with_result=*/true, admin));
        }
        json body =
            ErrorJson("task already " + std::string(proto::TaskStatusName(info->task.status)),
                      "failed_precondition");
        body["task"] = TaskJson(info->task, /*with_result=*/false, admin);
        return JsonReply(409, body);
      });
}

void Api::ListTasks(const Call& call, Exchange& ex) {
  const Caller caller = CallerOf(call.key);
  auto list = ParseTaskListQuery(call.query, caller.owner, caller.admin);
  if (!list.ok()) {
    const bool denied = list.status().code() == StatusCode::kPermissionDenied;
    return ex.Reply(ErrorReply(denied ? 403 : 400, list.status().message(),
                               denied ? "permission_denied" : "invalid_argument"));
  }
  Ask(ex, Command::kList, std::move(*list), ctx_->options.submit_timeout,
      [admin = caller.admin](const BrokerAnswer& a) -> HttpReply {
        const auto* tl = std::get_if<proto::TaskList>(&a);
        if (tl == nullptr) return UnexpectedAnswer();
        json tasks = json::array();
        for (const proto::TaskView& t : tl->tasks) {
          tasks.push_back(TaskJson(t, /*with_result=*/false, admin));
        }
        return JsonReply(200, {{"tasks", tasks},
                               {"count", tl->tasks.size()},
                               {"next_cursor",
                                tl->next_cursor.empty() ? json(nullptr) : json(tl->next_cursor)}});
      });
}

}  // namespace rma::gateway
