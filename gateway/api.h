// The API's route handlers: each turns one request (Call) into an immediate answer or a broker
// request whose answer becomes the HTTP reply (Ask). Routes are split by concern: api_tasks.cc
// (tasks, health, metrics), api_admin.cc (the admin API) and api_calls.cc (synchronous service
// calls). Runs on the reactor thread that received the request; answer callbacks run on the
// BrokerClient thread. Internal to gateway/.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/exchange.h"

namespace rma::gateway {

struct Call {
  const RequestHead& head;
  std::string_view path;
  std::string_view query;
  std::string& body;  // the handler may take it
  const RouteMatch& match;
  const ApiKey* key;  // the caller's key; null when the gateway has none
  // The large-body budget this request's body holds (null for small bodies): it travels with the
  // body to the parse pool and the broker request, and is given back when the answer comes.
  std::shared_ptr<BodyBudget::Lease> lease;
};

// Who asks, for the broker's ownership rules: the key's account and whether it is an admin key.
// Without keys everyone is the anonymous account "" and nobody is an admin.
struct Caller {
  std::string owner;
  bool admin = false;
};
Caller CallerOf(const ApiKey* key);
// A key restricted to some services may use only those (403 otherwise); nullopt when allowed.
std::optional<HttpReply> ServiceRefusal(const ApiKey* key, std::string_view service);
std::optional<HttpReply> ServiceRefusal(const std::vector<std::string>& allowed,
                                        std::string_view service);

// ---- Input helpers ------------------------------------------------------------------------------

// A non-negative number of seconds; nullopt when malformed or over max.
std::optional<double> ParseSeconds(std::string_view text, double max);
// Headers a synchronous call forwards to the backend.
std::map<std::string, std::string> ForwardedHeaders(const RequestHead& head);

class Api {
 public:
  explicit Api(ApiContext* ctx) : ctx_(ctx) {}
  // Answers the request or hands it to the broker; always answers exactly once.
  void Handle(const Call& call, Exchange& ex);

 private:
  // Asks the broker; the answer (or its failure) is turned into a reply on the BrokerClient thread.
  template <typename T, typename OnAnswer>
  void Ask(Exchange& ex, proto::Command command, T message, Duration timeout, OnAnswer on_answer) {
    std::shared_ptr<Deferred> deferred = ex.Defer();
    if (!deferred) return;
    AskFor(ctx_, std::move(deferred), command, std::move(message), timeout, std::move(on_answer),
           nullptr);
  }
  // The same for a request already handed over (any thread). `lease` is held until the answer.
  template <typename T, typename OnAnswer>
  static void AskFor(ApiContext* ctx, std::shared_ptr<Deferred> deferred, proto::Command command,
                     T message, Duration timeout, OnAnswer on_answer,
                     std::shared_ptr<BodyBudget::Lease> lease) {
    ctx->broker.Request(command, std::move(message), timeout,
                        [deferred, on_answer, lease](Result<BrokerAnswer> answer) {
                          HttpReply reply;
                          if (!answer.ok()) {
                            reply = TransportErrorReply(answer.status());
                          } else if (auto* err = std::get_if<proto::Error>(&*answer)) {
                            reply = BrokerErrorReply(*err);
                          } else {
                            reply = on_answer(*answer);
                          }
                          deferred->Reply(std::move(reply));
                        });
  }
  // Runs `job` on the parse pool with the answer handed over first (a 503 has been sent when that
  // is not possible). For bodies over options.large_body_bytes.
  void Offload(Exchange& ex, std::function<void(std::shared_ptr<Deferred>)> job);

  // api_tasks.cc
  HttpReply Health();
  void Metrics(Exchange& ex);
  // ?wait=S on a task route, in ms (0 without it); nullopt after answering 400 for a bad value.
  std::optional<uint32_t> WaitMs(const Call& call, Exchange& ex);
  void SubmitTask(const Call& call, Exchange& ex);
  void GetTask(const Call& call, Exchange& ex);
  void TaskEventStream(const Call& call, Exchange& ex);  // task_events.h
  void CancelTask(const Call& call, Exchange& ex);
  void ListTasks(const Call& call, Exchange& ex);
  // GET /api/tasks/{id}/payload and /result: the raw bytes, as a download.
  void RawTaskBytes(const Call& call, Exchange& ex, bool payload);
  // api_admin.cc
  static HttpReply AdminDocument(const BrokerAnswer& a);
  void AdminQuery(const char* query, Exchange& ex);
  void AdminTaskAction(const char* action, const Call& call, Exchange& ex);
  void AdminWorkerAction(const char* action, const Call& call, Exchange& ex);
  // POST /api/admin/workers/{id}/trust {"state": "trusted"|"normal"|"quarantined"|"banned"}.
  void AdminWorkerTrust(const Call& call, Exchange& ex);
  // The console (console.h): bulk retry/discard of dead tasks, purge of a queue, history.
  void AdminBulkDead(const Call& call, Exchange& ex, bool retry);
  void AdminPurge(const Call& call, Exchange& ex);
  void AdminHistory(const Call& call, Exchange& ex);
  // api_calls.cc
  void ServiceCall(const Call& call, Exchange& ex);
  // api_openai.cc: POST /v1/... to the backend path `path` of a worker serving the body's model.
  void OpenAiCall(const Call& call, Exchange& ex, std::string_view path);
  void OpenAiModels(Exchange& ex);
  // api_accounts.cc
  void AccountAction(proto::Admin admin, int status, Exchange& ex,
                     std::function<void(const nlohmann::json&)> on_created = nullptr);
  void OwnAccount(const Call& call, Exchange& ex);
  void AnyAccount(const Call& call, Exchange& ex);  // an admin's view of any account
  void CreateAccount(const Call& call, Exchange& ex);
  void CreateKey(const Call& call, Exchange& ex);
  void RevokeKey(const Call& call, Exchange& ex);
  void CreateEnrolToken(const Call& call, Exchange& ex);
  void RevokeCredential(const Call& call, Exchange& ex);
  // PATCH /api/admin/workers/{id}/credential {"tier_cap": 0..3}: caps the credential's tier.
  void LimitCredential(const Call& call, Exchange& ex);
  // POST /api/admin/accounts/{name}/credits and GET /api/leaderboard (docs/accounts.md).
  void GrantCredits(const Call& call, Exchange& ex);
  void Leaderboard(const Call& call, Exchange& ex);

  ApiContext* ctx_;
};

}  // namespace rma::gateway
