// The OpenAI-compatible routes (docs/http-api.md, "OpenAI-compatible API"): POST
// /v1/chat/completions, /v1/completions and /v1/embeddings become synchronous calls routed by the
// body's `model` (the broker picks a service and a worker that serve it), streamed like any service
// call (call_stream.h); GET /v1/models lists the models with a live provider. Every error the
// gateway makes here is in OpenAI's shape; a backend's own answers pass through unchanged.
#include <spdlog/spdlog.h>

#include "gateway/api.h"
#include "gateway/call_stream.h"
#include "gateway/openai.h"

namespace rma::gateway {

using nlohmann::json;
using proto::Command;

namespace {

// Attempts of an OpenAI call: a provider that fails before the first byte reaches the client is
// replaced by another (docs/protocol.md §6.7).
constexpr uint32_t kOpenAiAttempts = 3;

// The call's final answer when nothing was streamed: the backend's answer as it is, or the
// failure in OpenAI's shape.
HttpReply OpenAiAnswer(const BrokerAnswer& a) {
  const auto* info = std::get_if<proto::TaskInfo>(&a);
  if (info == nullptr) return OpenAiErrorReply(502, "unexpected answer from the broker", "");
  const proto::TaskView& t = info->task;
  if (t.status == proto::TaskStatus::kCompleted) {
    HttpReply r;
    r.status = t.http_status == 0 ? 200 : static_cast<int>(t.http_status);
    if (r.status < 200 || r.status > 599) {
      return OpenAiErrorReply(502, "the backend answered with an invalid status", "bad_gateway");
    }
    r.body = t.result.str();
    r.content_type = t.content_type.empty() ? std::string("application/json") : t.content_type;
    r.headers.emplace_back("X-RMA-Task-Id", ToString(t.task_id));
    if (!t.worker_id.empty()) r.headers.emplace_back("X-RMA-Worker-Id", t.worker_id);
    return r;
  }
  HttpReply r;
  if (t.error_code == "timeout" || !proto::IsTerminal(t.status)) {
    r = OpenAiErrorReply(504, t.error.empty() ? "the model did not answer in time" : t.error,
                         "timeout");
  } else if (t.status == proto::TaskStatus::kCancelled) {
    r = OpenAiErrorReply(409, "the request was cancelled", "cancelled");
  } else {
    r = OpenAiErrorReply(502, t.error.empty() ? "every provider of the model failed" : t.error,
                         t.error_code.empty() ? "handler_error" : t.error_code);
  }
  r.headers.emplace_back("X-RMA-Task-Id", ToString(t.task_id));
  return r;
}

}  // namespace

void Api::OpenAiCall(const Call& call, Exchange& ex, std::string_view path) {
  // A key limited to some services cannot be checked against a service the broker picks later.
  if (call.key != nullptr && !call.key->services.empty()) {
    return ex.Reply(OpenAiErrorReply(
        403,
        "this key may call only some services; the OpenAI routes pick a service by model, so "
        "they need a key without a service list",
        "permission_denied"));
  }
  // A generation may take minutes: without X-RMA-Timeout a call may take the longest allowed.
  Duration timeout = ctx_->options.max_call_timeout;
  if (auto t = call.head.Header("X-RMA-Timeout")) {
    auto secs = ParseSeconds(*t, ToSecondsF(ctx_->options.max_call_timeout));
    if (!secs || *secs <= 0) {
      return ex.Reply(
          OpenAiErrorReply(400,
                           "X-RMA-Timeout must be a number of seconds above 0 and at "
                           "most " +
                               FormatSampleValue(ToSecondsF(ctx_->options.max_call_timeout)),
                           "invalid_argument"));
    }
    timeout = Duration(static_cast<int64_t>(*secs * 1e6));
  }
  proto::HttpRequest http;
  http.method = "POST";
  http.path = std::string(path);
  http.headers = ForwardedHeaders(call.head);
  http.headers["content-type"] = "application/json";
  proto::Submit s;
  s.mode = proto::SubmitMode::kSync;
  s.max_attempts = kOpenAiAttempts;
  s.owner = CallerOf(call.key).owner;
  s.content_type = "application/json";
  s.request = std::move(http);
  s.timeout_ms = static_cast<uint32_t>(std::max<int64_t>(1, ToMs(timeout)));
  const bool large = call.body.size() > ctx_->options.large_body_bytes;
  s.payload = Bytes(std::move(call.body));
  // Parsed (for `model`) and sent from the parse pool when large, like a large service call.
  auto send = [ctx = ctx_, timeout](std::shared_ptr<Deferred> deferred, proto::Submit submit,
                                    std::shared_ptr<BodyBudget::Lease> lease) {
    auto request = ParseOpenAiRequest(submit.payload.view());
    if (!request.ok()) {
      return deferred->Reply(OpenAiErrorReply(400, request.status().message(), "invalid_request"));
    }
    submit.model = request->model;
    CallStream::Options o;
    o.whole = OpenAiAnswer;
    o.reshape_error = ToOpenAiError;
    o.on_end = [ctx, model = request->model](const CallStream::End& end) {
      std::optional<Usage> usage;
      if (!end.result.empty()) usage = UsageOf(end.result, end.event_stream);
      ctx->model_metrics.Record(model, end.status, end.first_byte, usage);
    };
    CallStream::Start(ctx, std::move(deferred), std::move(submit), timeout + Seconds(1),
                      std::move(o), std::move(lease));
  };
  if (large) {
    return Offload(ex, [send, s = std::move(s),
                        lease = call.lease](std::shared_ptr<Deferred> deferred) mutable {
      send(std::move(deferred), std::move(s), std::move(lease));
    });
  }
  std::shared_ptr<Deferred> deferred = ex.Defer();
  if (!deferred) return;
  send(std::move(deferred), std::move(s), nullptr);
}

void Api::OpenAiModels(Exchange& ex) {
  std::shared_ptr<Deferred> deferred = ex.Defer();
  if (!deferred) return;
  proto::Admin admin;
  admin.query = "models";
  ctx_->broker.Request(Command::kAdmin, std::move(admin), ctx_->options.metrics_timeout,
                       [deferred](Result<BrokerAnswer> answer) {
                         HttpReply reply;
                         if (!answer.ok()) {
                           reply = ToOpenAiError(TransportErrorReply(answer.status()));
                         } else if (auto* err = std::get_if<proto::Error>(&*answer)) {
                           reply = ToOpenAiError(BrokerErrorReply(*err));
                         } else if (auto* doc = std::get_if<proto::AdminReply>(&*answer)) {
                           reply = JsonReply(200, ModelList(doc->data));
                         } else {
                           reply = OpenAiErrorReply(502, "unexpected answer from the broker", "");
                         }
                         deferred->Reply(std::move(reply));
                       });
}

}  // namespace rma::gateway
