// Synchronous service calls (/api/service/{name}/... and /api/{name}/...): the HTTP request travels
// as the task and the worker's answer becomes the reply; see api.h and docs/http-api.md.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "common/version.h"
#include "gateway/api.h"
#include "gateway/call_stream.h"
#include "gateway/task_json.h"
#include "protocol/names.h"

namespace rma::gateway {

using nlohmann::json;
using proto::Command;

// A non-negative number of seconds; nullopt when malformed or over max.
std::optional<double> ParseSeconds(std::string_view text, double max) {
  double d = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(d) || d < 0 ||
      d > max) {
    return std::nullopt;
  }
  return d;
}

// Headers a synchronous call forwards to the backend: content negotiation and the caller's own X-
// headers, never the gateway's credentials, its own X-RMA- headers or hop-by-hop headers.
std::map<std::string, std::string> ForwardedHeaders(const RequestHead& head) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : head.headers) {
    if (out.size() >= 64 || value.size() > 8192) continue;
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool forward =
        lower == "accept" || lower == "accept-language" || lower == "content-type" ||
        (lower.rfind("x-", 0) == 0 && lower != "x-api-key" && lower.rfind("x-rma-", 0) != 0);
    if (forward && out.count(lower) == 0) out[lower] = value;
  }
  return out;
}

namespace {

// The worker's answer to a synchronous call, as the caller's HTTP answer.
HttpReply CallAnswer(const BrokerAnswer& a) {
  const auto* info = std::get_if<proto::TaskInfo>(&a);
  if (info == nullptr) return UnexpectedAnswer();
  const proto::TaskView& t = info->task;
  if (t.status == proto::TaskStatus::kCompleted) {
    HttpReply r;
    r.status = t.http_status == 0 ? 200 : static_cast<int>(t.http_status);
    if (r.status < 200 || r.status > 599) {
      return ErrorReply(502, "the backend answered with an invalid status", "bad_gateway");
    }
    r.body = t.result;
    r.content_type = t.content_type;
    r.headers.emplace_back("X-RMA-Task-Id", ToString(t.task_id));
    if (!t.worker_id.empty()) r.headers.emplace_back("X-RMA-Worker-Id", t.worker_id);
    return r;
  }
  if (t.error_code == "timeout" || !proto::IsTerminal(t.status)) {
    json body =
        ErrorJson(t.error.empty() ? "the service did not answer in time" : t.error, "timeout");
    body["task_id"] = ToString(t.task_id);
    return JsonReply(504, body);
  }
  if (t.status == proto::TaskStatus::kCancelled) {
    json body = ErrorJson("the call was cancelled", "cancelled");
    body["task_id"] = ToString(t.task_id);
    return JsonReply(409, body);
  }
  json body = ErrorJson(t.error.empty() ? "the service call failed" : t.error,
                        t.error_code.empty() ? "handler_error" : t.error_code);
  body["task_id"] = ToString(t.task_id);
  return JsonReply(502, body);
}

}  // namespace

void Api::ServiceCall(const Call& call, Exchange& ex) {
  const std::string name = call.match.Param("name");
  if (Status valid = proto::CheckServiceName(name); !valid.ok()) {
    return ex.Reply(ErrorReply(400, valid.message(), "invalid_argument"));
  }
  if (auto refusal = ServiceRefusal(call.key, name)) return ex.Reply(std::move(*refusal));
  proto::HttpRequest http;
  http.method = call.head.method;
  http.path = call.match.Param("path");
  // A path must not climb out of the backend's base path, whatever the backend decodes.
  if (auto problem = ServicePathProblem(http.path)) {
    return ex.Reply(ErrorReply(400, *problem, "invalid_argument"));
  }
  http.query = std::string(call.query);
  http.headers = ForwardedHeaders(call.head);
  proto::Submit s;
  s.service = name;
  s.mode = proto::SubmitMode::kSync;
  s.max_attempts = 1;
  s.owner = CallerOf(call.key).owner;
  const bool large = call.body.size() > ctx_->options.large_body_bytes;
  s.payload = Bytes(std::move(call.body));  // adopted, not copied
  s.content_type = std::string(call.head.Header("Content-Type").value_or(""));
  s.request = std::move(http);
  Duration timeout = ctx_->options.default_call_timeout;
  if (auto t = call.head.Header("X-RMA-Timeout")) {
    auto secs = ParseSeconds(*t, ToSecondsF(ctx_->options.max_call_timeout));
    if (!secs || *secs <= 0) {
      return ex.Reply(ErrorReply(400,
                                 "X-RMA-Timeout must be a number of seconds above 0 and at most " +
                                     FormatSampleValue(ToSecondsF(ctx_->options.max_call_timeout)),
                                 "invalid_argument"));
    }
    timeout = Duration(static_cast<int64_t>(*secs * 1e6));
  }
  s.timeout_ms = static_cast<uint32_t>(std::max<int64_t>(1, ToMs(timeout)));
  // The broker ends the call itself when its time is up; the extra second lets that answer arrive
  // first. A large body is encoded for the broker on the parse pool, not on this reactor thread.
  // The answer streams when the backend's does (call_stream.h).
  CallStream::Options stream;
  stream.whole = CallAnswer;
  if (large) {
    ApiContext* ctx = ctx_;
    return Offload(ex, [ctx, s = std::move(s), timeout, stream = std::move(stream),
                        lease = call.lease](std::shared_ptr<Deferred> deferred) mutable {
      CallStream::Start(ctx, std::move(deferred), std::move(s), timeout + Seconds(1),
                        std::move(stream), std::move(lease));
    });
  }
  std::shared_ptr<Deferred> deferred = ex.Defer();
  if (!deferred) return;
  CallStream::Start(ctx_, std::move(deferred), std::move(s), timeout + Seconds(1),
                    std::move(stream), nullptr);
}

}  // namespace rma::gateway
