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
  const std::string& body;
  const RouteMatch& match;
};

// ---- Input helpers ------------------------------------------------------------------------------

// A non-negative number of seconds; nullopt when malformed or over max.
std::optional<double> ParseSeconds(std::string_view text, double max);
// Headers a synchronous call forwards to the backend.
std::map<std::string, std::string> ForwardedHeaders(const RequestHead& head);
// Whether a path has "." or ".." segments (also percent-encoded).
bool HasDotSegment(std::string_view path);

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
    ctx_->broker.Request(command, std::move(message), timeout,
                         [deferred, on_answer](Result<BrokerAnswer> answer) {
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

  // api_tasks.cc
  HttpReply Health();
  void Metrics(Exchange& ex);
  void SubmitTask(const Call& call, Exchange& ex);
  void GetTask(const Call& call, Exchange& ex);
  void CancelTask(const Call& call, Exchange& ex);
  void ListTasks(const Call& call, Exchange& ex);
  // api_admin.cc
  static HttpReply AdminDocument(const BrokerAnswer& a);
  void AdminQuery(const char* query, Exchange& ex);
  void AdminTaskAction(const char* action, const Call& call, Exchange& ex);
  void AdminWorkerAction(const char* action, const Call& call, Exchange& ex);
  // api_calls.cc
  void ServiceCall(const Call& call, Exchange& ex);

  ApiContext* ctx_;
};

}  // namespace rma::gateway
