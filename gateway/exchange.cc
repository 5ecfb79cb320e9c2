// See exchange.h.
#include "gateway/exchange.h"

#include <spdlog/spdlog.h>

namespace rma::gateway {

using nlohmann::json;

// ---- Answers --------------------------------------------------------------------------------

HttpReply JsonReply(int status, const json& body) {
  return HttpReply{
      status, body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json", {}};
}

HttpReply ErrorReply(int status, std::string_view message, std::string_view code) {
  return JsonReply(status, ErrorJson(message, code));
}

int HttpStatusFor(std::string_view code) {
  if (code == "invalid_argument") return 400;
  if (code == "not_found") return 404;
  if (code == "already_exists" || code == "failed_precondition") return 409;
  if (code == "unauthenticated") return 401;
  if (code == "permission_denied") return 403;
  if (code == "resource_exhausted" || code == "unavailable") return 503;
  if (code == "deadline_exceeded") return 504;
  if (code == "payment_required") return 402;
  return 502;  // anything else the broker says is the upstream's fault, not the caller's
}

HttpReply BrokerErrorReply(const proto::Error& e) {
  json body = ErrorJson(e.message, e.code);
  if (e.code == "unavailable" && e.message.rfind("Service '", 0) == 0) {
    body["available_services"] = e.available_services;
  }
  if (!e.suggestion.empty()) body["suggestion"] = e.suggestion;
  if (e.code == "payment_required") {
    // Credits are enforced and the account cannot pay for the task (docs/accounts.md).
    body["balance"] = e.balance;
    body["needed"] = e.needed;
  }
  HttpReply r = JsonReply(HttpStatusFor(e.code), body);
  if (e.code == "resource_exhausted") r.headers.emplace_back("Retry-After", "1");
  return r;
}

// A failure of the request itself (no answer in time, broker down), not an answer from the broker.
HttpReply TransportErrorReply(const Status& s) {
  if (s.code() == StatusCode::kDeadlineExceeded) {
    json body = ErrorJson(s.message(), "deadline_exceeded");
    body["outcome_unknown"] = true;
    return JsonReply(504, body);
  }
  HttpReply r = ErrorReply(503, s.message(), std::string(StatusCodeName(s.code())));
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

HttpReply UnexpectedAnswer() {
  return ErrorReply(502, "unexpected answer from the broker", "internal");
}

void Deliver(ApiContext& ctx, int fd, OwnedFd owned, const ReplyTo& to, HttpReply reply) {
  reply.headers.insert(reply.headers.end(), to.extra.begin(), to.extra.end());
  const bool keep_alive = to.gate ? to.gate->KeepAlive(to.keep_alive) : to.keep_alive;
  std::string bytes = SerializeResponse(reply, keep_alive, to.head_only);
  // Counted before the answer leaves: a client that reads it and asks /metrics at once must find
  // its request there (recorded after the write, it raced the next request on another thread).
  ctx.metrics.Record(to.route, reply.status, ctx.clock.Now() - to.started);
  ctx.writer.Write(fd, std::move(owned), std::move(bytes), !keep_alive, to.gate);
}

}  // namespace rma::gateway
