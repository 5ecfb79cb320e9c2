// See gateway.h. Routes, JSON shapes and error codes are documented in docs/http-api.md.
//
// How a request flows. ApiHandler::onInput (a reactor thread) replaces Pistache's own: it keeps the
// raw head of each request (Pistache keeps only typed forms of well-known headers and an unordered
// copy of the query), refuses oversized requests with a JSON answer before reading their body,
// feeds Pistache's parser for the body and, once a request is complete, routes it. Immediate
// answers are written there; an answer that needs the broker takes a dup() of the connection's
// socket (an Exchange becomes a Deferred) and is written by the BrokerClient thread when the
// broker answers. Nothing here ever calls Pistache's ResponseWriter (socket_writer.h says why).
#include "gateway/gateway.h"

#include <pistache/endpoint.h>
#include <pistache/http.h>
#include <pistache/peer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "common/version.h"
#include "gateway/cors.h"
#include "gateway/http_wire.h"
#include "gateway/metrics.h"
#include "gateway/router.h"
#include "gateway/socket_writer.h"
#include "gateway/static_files.h"
#include "gateway/task_json.h"

namespace rma::gateway {

namespace Http = Pistache::Http;
namespace Tcp = Pistache::Tcp;
using nlohmann::json;
using proto::Command;

namespace {

std::vector<std::string> RouteNames() {
  std::vector<std::string> names;
  for (const Route& r : Routes()) names.emplace_back(r.name);
  return names;
}

int RouteIndex(const Route* r) { return r == nullptr ? -1 : static_cast<int>(r - Routes().data()); }

}  // namespace

struct ApiContext {
  ApiContext(GatewayOptions o, BrokerClientOptions b, ApiKeys k)
      : options(std::move(o)),
        keys(std::move(k)),
        cors(options.cors_origins),
        broker(std::move(b)) {}
  GatewayOptions options;
  SocketWriter writer;
  ApiKeys keys;
  CorsPolicy cors;
  SystemClock clock;
  RateLimiter limiter{&clock};
  HttpMetrics metrics{RouteNames()};
  Time started_at = clock.Now();
  // Last, so it is destroyed first: answer callbacks it may still hold use everything above.
  BrokerClient broker;
};

namespace {

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
  return 502;  // anything else the broker says is the upstream's fault, not the caller's
}

HttpReply BrokerErrorReply(const proto::Error& e) {
  json body = ErrorJson(e.message, e.code);
  if (e.code == "unavailable" && e.message.rfind("Service '", 0) == 0) {
    body["available_services"] = e.available_services;
  }
  if (!e.suggestion.empty()) body["suggestion"] = e.suggestion;
  HttpReply r = JsonReply(HttpStatusFor(e.code), body);
  if (e.code == "resource_exhausted") r.headers.emplace_back("Retry-After", "1");
  return r;
}

// A failure of the request itself (no answer in time, broker down), not an answer from the broker.
HttpReply TransportErrorReply(const Status& s) {
  if (s.code() == StatusCode::kDeadlineExceeded) {
    return ErrorReply(504, s.message(), "deadline_exceeded");
  }
  return ErrorReply(503, s.message(), std::string(StatusCodeName(s.code())));
}

HttpReply UnexpectedAnswer() {
  return ErrorReply(502, "unexpected answer from the broker", "internal");
}

// "GET, DELETE, HEAD": each method once, in order.
std::string Join(const std::vector<std::string>& items) {
  std::string out;
  std::vector<std::string_view> seen;
  for (const std::string& s : items) {
    if (std::find(seen.begin(), seen.end(), s) != seen.end()) continue;
    seen.push_back(s);
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

// What every answer to one request carries and where it is accounted.
struct ReplyTo {
  bool keep_alive = true;
  bool head_only = false;
  int route = -1;  // index into Routes(), for metrics
  Time started{};
  HeaderList extra;  // CORS
};

void Deliver(ApiContext& ctx, int fd, OwnedFd owned, const ReplyTo& to, HttpReply reply) {
  reply.headers.insert(reply.headers.end(), to.extra.begin(), to.extra.end());
  std::string bytes = SerializeResponse(reply, to.keep_alive, to.head_only);
  ctx.writer.Write(fd, std::move(owned), std::move(bytes), !to.keep_alive);
  ctx.metrics.Record(to.route, reply.status, ctx.clock.Now() - to.started);
}

// An answer written later, from any thread, exactly once, through the request's own socket.
class Deferred {
 public:
  Deferred(ApiContext* ctx, OwnedFd fd, ReplyTo to)
      : ctx_(ctx), fd_(std::move(fd)), to_(std::move(to)) {}
  Deferred(const Deferred&) = delete;
  Deferred& operator=(const Deferred&) = delete;
  // Every path through the BrokerClient answers; this only guards against a bug leaving a client
  // waiting forever.
  ~Deferred() {
    if (!done_) Reply(ErrorReply(500, "the request was dropped", "internal"));
  }

  void Reply(HttpReply reply) {
    if (done_) return;
    done_ = true;
    const int fd = fd_.get();
    Deliver(*ctx_, fd, std::move(fd_), to_, std::move(reply));
  }

 private:
  ApiContext* ctx_;
  OwnedFd fd_;
  ReplyTo to_;
  bool done_ = false;
};

// One request on its reactor thread: answer it now, or hand it over with Defer().
class Exchange {
 public:
  Exchange(ApiContext* ctx, const std::shared_ptr<Tcp::Peer>& peer, ReplyTo to)
      : ctx_(ctx), peer_(peer), to_(std::move(to)) {}

  ReplyTo& to() { return to_; }
  const std::shared_ptr<Tcp::Peer>& peer() const { return peer_; }

  bool answered() const { return answered_; }

  void Reply(HttpReply reply) {
    answered_ = true;
    Deliver(*ctx_, peer_->fd(), OwnedFd(), to_, std::move(reply));
  }

  // The answer will come from another thread. Null (and a 503 sent) when too many requests wait
  // already or the process is out of file descriptors.
  std::shared_ptr<Deferred> Defer() {
    if (ctx_->broker.pending() >= ctx_->options.max_pending) {
      HttpReply r =
          ErrorReply(503, "too many requests are waiting; retry later", "resource_exhausted");
      r.headers.emplace_back("Retry-After", "1");
      Reply(std::move(r));
      return nullptr;
    }
    auto fd = DupFd(peer_->fd());
    if (!fd.ok()) {
      spdlog::warn("{}", fd.status().message());
      Reply(ErrorReply(503, "the gateway is out of file descriptors; retry later", "unavailable"));
      return nullptr;
    }
    answered_ = true;
    return std::make_shared<Deferred>(ctx_, std::move(*fd), to_);
  }

 private:
  ApiContext* ctx_;
  const std::shared_ptr<Tcp::Peer>& peer_;
  ReplyTo to_;
  bool answered_ = false;
};

// ---- Input helpers ----------------------------------------------------------------------------

bool ValidServiceName(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

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

// "." and ".." segments (also percent-encoded) would let a call climb out of a backend's base path.
bool HasDotSegment(std::string_view path) {
  for (std::string_view seg : PathSegments(path)) {
    auto decoded = PercentDecode(seg, false);
    if (!decoded || *decoded == "." || *decoded == "..") return true;
  }
  return false;
}

struct Call {
  const RequestHead& head;
  std::string_view path;
  std::string_view query;
  const std::string& body;
  const RouteMatch& match;
};

// ---- The API ----------------------------------------------------------------------------------

class Api {
 public:
  explicit Api(ApiContext* ctx) : ctx_(ctx) {}

  void Handle(const Call& call, Exchange& ex) {
    switch (call.match.route->id) {
      case RouteId::kHealth:
        return ex.Reply(Health());
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
        return AdminDrain(call, ex);
      case RouteId::kServiceCall:
      case RouteId::kShortServiceCall:
        return ServiceCall(call, ex);
    }
    ex.Reply(ErrorReply(500, "unhandled route", "internal"));
  }

 private:
  // Asks the broker; the answer (or its failure) is turned into a reply on the BrokerClient thread.
  template <typename T, typename OnAnswer>
  void Ask(Exchange& ex, Command command, T message, Duration timeout, OnAnswer on_answer) {
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

  HttpReply Health() {
    const bool reachable = ctx_->broker.broker_reachable();
    json body = {
        {"status", reachable ? "ok" : "degraded"},
        {"gateway", "up"},
        {"broker", reachable ? "reachable" : "unreachable"},
        {"version", kVersion},
        {"pending_requests", ctx_->broker.pending()},
        {"pending_writes", ctx_->writer.pending()},
        {"uptime_s", std::round(ToSecondsF(ctx_->clock.Now() - ctx_->started_at) * 10) / 10}};
    return JsonReply(reachable ? 200 : 503, body);
  }

  void Metrics(Exchange& ex) {
    std::shared_ptr<Deferred> deferred = ex.Defer();
    if (!deferred) return;
    proto::Admin admin;
    admin.query = "metrics";
    ApiContext* ctx = ctx_;
    ctx_->broker.Request(
        Command::kAdmin, admin, ctx_->options.metrics_timeout,
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
          GatewayGauges g;
          g.pending_requests = ctx->broker.pending();
          g.pending_writes = ctx->writer.pending();
          g.dropped_responses = ctx->writer.dropped();
          g.broker_reachable = ctx->broker.broker_reachable();
          g.start_time_s = static_cast<double>(ToUnixMs(ctx->started_at)) / 1000.0;
          g.version = std::string(kVersion);
          RenderGatewayGauges(g, &text);
          RenderBrokerMetrics(doc, up, &text);
          deferred->Reply(
              HttpReply{200, std::move(text), "text/plain; version=0.0.4; charset=utf-8", {}});
        });
  }

  void SubmitTask(const Call& call, Exchange& ex) {
    SubmitLimits limits;
    limits.max_payload_bytes = ctx_->options.max_body_bytes;
    auto submit = ParseSubmitJson(call.body, limits, ctx_->clock.Now());
    if (!submit.ok()) {
      const bool too_large = submit.status().code() == StatusCode::kResourceExhausted;
      return ex.Reply(ErrorReply(too_large ? 413 : 400, submit.status().message(),
                                 too_large ? "payload_too_large" : "invalid_argument"));
    }
    Ask(ex, Command::kSubmit, std::move(*submit), ctx_->options.submit_timeout,
        [](const BrokerAnswer& a) -> HttpReply {
          const auto* acc = std::get_if<proto::Accepted>(&a);
          if (acc == nullptr) return UnexpectedAnswer();
          json body = {{"task_id", ToString(acc->task_id)},
                       {"status", proto::TaskStatusName(acc->status)}};
          if (acc->duplicate) body["duplicate"] = true;
          if (acc->waiting_for_provider) body["waiting_for_provider"] = true;
          HttpReply r = JsonReply(202, body);
          r.headers.emplace_back("Location", "/api/tasks/" + ToString(acc->task_id));
          return r;
        });
  }

  void GetTask(const Call& call, Exchange& ex) {
    const std::string id_text = call.match.Param("id");
    auto id = ParseTaskId(id_text);
    if (!id) return ex.Reply(ErrorReply(404, "task '" + id_text + "' not found", "not_found"));
    proto::Get get;
    get.task_id = *id;
    if (auto wait = QueryParam(call.query, "wait")) {
      auto secs = ParseSeconds(*wait, ToSecondsF(ctx_->options.max_wait));
      if (!secs) {
        return ex.Reply(ErrorReply(400,
                                   "'wait' must be a number of seconds between 0 and " +
                                       FormatSampleValue(ToSecondsF(ctx_->options.max_wait)),
                                   "invalid_argument"));
      }
      get.wait_ms = static_cast<uint32_t>(*secs * 1000);
    }
    Ask(ex, Command::kGet, get, Ms(get.wait_ms) + ctx_->options.submit_timeout,
        [](const BrokerAnswer& a) -> HttpReply {
          const auto* info = std::get_if<proto::TaskInfo>(&a);
          if (info == nullptr) return UnexpectedAnswer();
          return JsonReply(200, TaskJson(info->task));
        });
  }

  void CancelTask(const Call& call, Exchange& ex) {
    const std::string id_text = call.match.Param("id");
    auto id = ParseTaskId(id_text);
    if (!id) return ex.Reply(ErrorReply(404, "task '" + id_text + "' not found", "not_found"));
    Ask(ex, Command::kCancelTask, proto::CancelTask{0, *id}, ctx_->options.submit_timeout,
        [](const BrokerAnswer& a) -> HttpReply {
          const auto* info = std::get_if<proto::TaskInfo>(&a);
          if (info == nullptr) return UnexpectedAnswer();
          if (info->task.status == proto::TaskStatus::kCancelled) {
            return JsonReply(200, TaskJson(info->task));
          }
          json body =
              ErrorJson("task already " + std::string(proto::TaskStatusName(info->task.status)),
                        "failed_precondition");
          body["task"] = TaskJson(info->task, /*with_result=*/false);
          return JsonReply(409, body);
        });
  }

  void ListTasks(const Call& call, Exchange& ex) {
    proto::List list;
    auto service = QueryParam(call.query, "service");
    auto status = QueryParam(call.query, "status");
    auto limit = QueryParam(call.query, "limit");
    if (service && !service->empty()) {
      if (!ValidServiceName(*service)) {
        return ex.Reply(
            ErrorReply(400, "'service' is not a valid service name", "invalid_argument"));
      }
      list.service = *service;
    }
    if (status && !status->empty()) {
      if (!proto::ParseTaskStatus(*status)) {
        return ex.Reply(ErrorReply(400,
                                   "unknown status '" + status->substr(0, 64) +
                                       "' (queued, running, completed, failed, dead, cancelled, "
                                       "expired)",
                                   "invalid_argument"));
      }
      list.status = *status;
    }
    if (limit) {
      uint32_t n = 0;
      const std::string_view text = *limit;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (ec != std::errc() || ptr != text.data() + text.size() || n < 1 || n > 1000) {
        return ex.Reply(
            ErrorReply(400, "'limit' must be an integer between 1 and 1000", "invalid_argument"));
      }
      list.limit = n;
    }
    Ask(ex, Command::kList, list, ctx_->options.submit_timeout,
        [](const BrokerAnswer& a) -> HttpReply {
          const auto* tl = std::get_if<proto::TaskList>(&a);
          if (tl == nullptr) return UnexpectedAnswer();
          json tasks = json::array();
          for (const proto::TaskView& t : tl->tasks) {
            tasks.push_back(TaskJson(t, /*with_result=*/false));
          }
          return JsonReply(200, {{"tasks", tasks}, {"count", tl->tasks.size()}});
        });
  }

  static HttpReply AdminDocument(const BrokerAnswer& a) {
    const auto* ar = std::get_if<proto::AdminReply>(&a);
    if (ar == nullptr) return UnexpectedAnswer();
    return JsonReply(200, ar->data);
  }

  void AdminQuery(const char* query, Exchange& ex) {
    proto::Admin admin;
    admin.query = query;
    Ask(ex, Command::kAdmin, admin, ctx_->options.submit_timeout, AdminDocument);
  }

  void AdminTaskAction(const char* action, const Call& call, Exchange& ex) {
    const std::string id_text = call.match.Param("id");
    if (!ParseTaskId(id_text)) {
      return ex.Reply(ErrorReply(404, "task '" + id_text + "' not found", "not_found"));
    }
    proto::Admin admin;
    admin.query = action;
    admin.task_id = id_text;
    Ask(ex, Command::kAdmin, admin, ctx_->options.submit_timeout, AdminDocument);
  }

  void AdminDrain(const Call& call, Exchange& ex) {
    const std::string worker = call.match.Param("id");
    auto decoded = PercentDecode(worker, false);
    if (!decoded || decoded->empty() || decoded->size() > 256) {
      return ex.Reply(ErrorReply(404, "no worker '" + worker.substr(0, 64) + "'", "not_found"));
    }
    proto::Admin admin;
    admin.query = "drain";
    admin.worker_id = *decoded;
    Ask(ex, Command::kAdmin, admin, ctx_->options.submit_timeout, AdminDocument);
  }

  void ServiceCall(const Call& call, Exchange& ex) {
    const std::string name = call.match.Param("name");
    if (!ValidServiceName(name)) {
      return ex.Reply(ErrorReply(
          400, "a service name may hold only letters, digits, '-', '_' and '.' (1 to 128)",
          "invalid_argument"));
    }
    proto::HttpRequest http;
    http.method = call.head.method;
    http.path = call.match.Param("path");
    if (HasDotSegment(http.path)) {
      return ex.Reply(ErrorReply(400, "'.' and '..' path segments are not allowed in a call",
                                 "invalid_argument"));
    }
    http.query = std::string(call.query);
    http.headers = ForwardedHeaders(call.head);
    proto::Submit s;
    s.service = name;
    s.mode = proto::SubmitMode::kSync;
    s.max_attempts = 1;
    s.payload = call.body;
    s.content_type = std::string(call.head.Header("Content-Type").value_or(""));
    s.request = std::move(http);
    Duration timeout = ctx_->options.default_call_timeout;
    if (auto t = call.head.Header("X-RMA-Timeout")) {
      auto secs = ParseSeconds(*t, ToSecondsF(ctx_->options.max_call_timeout));
      if (!secs || *secs <= 0) {
        return ex.Reply(
            ErrorReply(400,
                       "X-RMA-Timeout must be a number of seconds above 0 and at most " +
                           FormatSampleValue(ToSecondsF(ctx_->options.max_call_timeout)),
                       "invalid_argument"));
      }
      timeout = Duration(static_cast<int64_t>(*secs * 1e6));
    }
    s.timeout_ms = static_cast<uint32_t>(std::max<int64_t>(1, ToMs(timeout)));
    // The broker ends the call itself when its time is up; the extra second lets that answer arrive
    // first.
    Ask(ex, Command::kSubmit, std::move(s), timeout + Seconds(1),
        [](const BrokerAnswer& a) -> HttpReply {
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
            json body = ErrorJson(t.error.empty() ? "the service did not answer in time" : t.error,
                                  "timeout");
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
        });
  }

  ApiContext* ctx_;
};

// ---- The Pistache adapter ---------------------------------------------------------------------

// Per-connection state, kept in the peer's data (reactor thread only).
struct Connection {
  std::string head;  // the current request's head, until complete
  bool head_complete = false;
  std::optional<RequestHead> parsed;  // once complete
  bool refused = false;  // answered with an error and shut down: the rest of the input is ignored

  void NextRequest() {
    head.clear();
    head_complete = false;
    parsed.reset();
  }
};

constexpr const char* kConnectionData = "rma.connection";

class ApiHandler final : public Http::Handler {
 public:
  HTTP_PROTOTYPE(ApiHandler)
  explicit ApiHandler(std::shared_ptr<ApiContext> ctx) : ctx_(std::move(ctx)), api_(ctx_.get()) {}
  ApiHandler(const ApiHandler& other) : Http::Handler(other), ctx_(other.ctx_), api_(ctx_.get()) {}

  // Never called: onInput below takes every request.
  void onRequest(const Http::Request&, Http::ResponseWriter response) override {
    response.send(Http::Code::Internal_Server_Error);
  }

 private:
  // Replaces Http::Handler::onInput (see the file comment).
  void onInput(const char* buffer, size_t len, const std::shared_ptr<Tcp::Peer>& peer) override {
    Connection& conn = ConnectionOf(*peer);
    if (conn.refused) return;
    try {
      if (!conn.head_complete) {
        const size_t before = conn.head.size();
        const size_t room =
            ctx_->options.max_header_bytes + 1 - std::min(before, ctx_->options.max_header_bytes);
        conn.head.append(buffer, std::min(len, room));
        size_t end = FindHeadEnd(conn.head, before >= 3 ? before - 3 : 0);
        if (end != std::string::npos) {
          conn.head.resize(end);
          conn.head_complete = true;
          conn.parsed = ParseRequestHead(conn.head);
          if (!CheckHead(peer, conn)) return;
        } else if (conn.head.size() > ctx_->options.max_header_bytes) {
          return Refuse(peer, conn, 431,
                        "the request head exceeds " +
                            std::to_string(ctx_->options.max_header_bytes) + " bytes",
                        "header_too_large");
        }
      }
      auto parser = Http::Handler::getParser(peer);
      if (!parser->feed(buffer, len)) {
        parser->reset();
        return conn.head_complete
                   ? RefuseTooLarge(peer, conn)
                   : Refuse(peer, conn, 431, "the request head is too large", "header_too_large");
      }
      if (parser->parse() == Http::Private::State::Done) {
        Dispatch(peer, conn, parser->request.body());
        parser->reset();
        conn.NextRequest();
      }
    } catch (const Http::HttpError& e) {
      Http::Handler::getParser(peer)->reset();
      const int status = e.code() >= 400 && e.code() < 600 ? e.code() : 400;
      Refuse(peer, conn, status, e.reason(),
             status == 413   ? "payload_too_large"
             : status == 431 ? "header_too_large"
             : status == 501 ? "not_implemented"
                             : "bad_request");
    } catch (const std::exception& e) {
      Http::Handler::getParser(peer)->reset();
      Refuse(peer, conn, 400, std::string("malformed request: ") + e.what(), "bad_request");
    }
  }

  static Connection& ConnectionOf(Tcp::Peer& peer) {
    std::shared_ptr<void> data = peer.tryGetData(kConnectionData);
    if (!data) {
      data = std::make_shared<Connection>();
      peer.putData(kConnectionData, data);
    }
    return *static_cast<Connection*>(data.get());
  }

  // The head is complete: refuse a malformed head or a declared body over the limit before reading
  // the body, and tell a client that asked (Expect: 100-continue) that it may send its body.
  bool CheckHead(const std::shared_ptr<Tcp::Peer>& peer, Connection& conn) {
    if (!conn.parsed) {
      // Pistache would wait forever for parts of a head it cannot parse ("GARBAGE\r\n\r\n").
      Refuse(peer, conn, 400, "malformed request head", "bad_request");
      return false;
    }
    if (auto cl = conn.parsed->Header("Content-Length")) {
      uint64_t n = 0;
      auto [ptr, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), n);
      if (ec == std::errc() && ptr == cl->data() + cl->size() && n > ctx_->options.max_body_bytes) {
        RefuseTooLarge(peer, conn);
        return false;
      }
    }
    if (auto expect = conn.parsed->Header("Expect");
        expect && EqualsIgnoreCase(*expect, "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      ctx_->writer.Write(peer->fd(), OwnedFd(), std::string(kContinue), false);
    }
    return true;
  }

  void RefuseTooLarge(const std::shared_ptr<Tcp::Peer>& peer, Connection& conn) {
    Refuse(peer, conn, 413,
           "the request body exceeds " + std::to_string(ctx_->options.max_body_bytes) + " bytes",
           "payload_too_large");
  }

  // Answers an error and closes the connection: what the client still sends is ignored (its
  // framing is lost) until it reads the answer and closes, or Pistache's header timeout ends it.
  void Refuse(const std::shared_ptr<Tcp::Peer>& peer, Connection& conn, int status,
              const std::string& message, std::string_view code) {
    conn.refused = true;
    ReplyTo to;
    to.keep_alive = false;
    to.started = ctx_->clock.Now();
    if (conn.parsed)
      to.extra = ctx_->cors.ResponseHeaders(conn.parsed->Header("Origin").value_or(""));
    Deliver(*ctx_, peer->fd(), OwnedFd(), to, ErrorReply(status, message, code));
  }

  void Dispatch(const std::shared_ptr<Tcp::Peer>& peer, Connection& conn, const std::string& body) {
    const std::optional<RequestHead>& head = conn.parsed;
    auto target = head ? SplitTarget(head->target) : std::nullopt;
    if (!head || !target) return Refuse(peer, conn, 400, "malformed request target", "bad_request");
    ReplyTo to;
    to.started = ctx_->clock.Now();
    to.keep_alive = KeepAlive(head->http11, head->Header("Connection").value_or(""));
    Exchange ex(ctx_.get(), peer, std::move(to));
    try {
      Route(*head, *target, body, ex);
    } catch (const std::exception& e) {
      // A bug or an allocation failure: never leave the client without an answer.
      spdlog::error("{} {} failed: {}", head->method, target->path.substr(0, 256), e.what());
      if (!ex.answered()) ex.Reply(ErrorReply(500, "internal error", "internal"));
    }
    // Answered or handed over: either way Pistache must treat the connection as idle, or its
    // header timeout would end a long-poll with 408 (the keep-alive timeout applies instead).
    peer->setIdle(true);
  }

  void Route(const RequestHead& head, const RequestTarget& target, const std::string& body,
             Exchange& ex) {
    const std::string_view origin = head.Header("Origin").value_or("");
    ex.to().extra = ctx_->cors.ResponseHeaders(origin);
    if (head.method == "OPTIONS") return Options(head, target, ex);

    // The dashboard's static files (GET / and /assets/...), before the API router.
    if (StaticFiles::Handles(target.path)) {
      if (head.method != "GET" && head.method != "HEAD") {
        HttpReply r =
            ErrorReply(405, head.method + " is not allowed on " + target.path.substr(0, 256),
                       "method_not_allowed");
        r.headers.emplace_back("Allow", "GET, HEAD, OPTIONS");
        return ex.Reply(std::move(r));
      }
      // The body is fetched even for HEAD: the serializer then sends the length a GET would have.
      ex.to().head_only = head.method == "HEAD";
      StaticReply s = StaticFiles::Dashboard().Serve({target.path, /*head=*/false,
                                                      head.Header("If-None-Match").value_or(""),
                                                      head.Header("Accept-Encoding").value_or("")});
      return ex.Reply(
          {s.status, std::move(s.body), std::move(s.content_type), std::move(s.headers)});
    }

    RouteMatch match = MatchRoute(head.method, target.path);
    if (match.route == nullptr) {
      if (match.allowed.empty()) {
        return ex.Reply(ErrorReply(
            404, "no route for " + head.method + " " + target.path.substr(0, 256), "no_route"));
      }
      HttpReply r =
          ErrorReply(405, head.method + " is not allowed on " + target.path.substr(0, 256),
                     "method_not_allowed");
      r.headers.emplace_back("Allow", Join(match.allowed) + ", OPTIONS");
      return ex.Reply(std::move(r));
    }
    ex.to().route = RouteIndex(match.route);
    ex.to().head_only = match.head_only || head.method == "HEAD";

    const std::string presented =
        PresentedKey(head.Header("X-API-Key"), head.Header("Authorization"));
    auto key = ctx_->keys.Authorize(presented, match.route->access, ctx_->options.public_metrics);
    if (!key.ok()) {
      if (key.status().code() == StatusCode::kUnauthenticated) {
        HttpReply r = ErrorReply(401, key.status().message(), "unauthenticated");
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"rma\"");
        return ex.Reply(std::move(r));
      }
      return ex.Reply(ErrorReply(403, key.status().message(), "permission_denied"));
    }
    if (match.route->access != Access::kOpen) {
      const ApiKey* k = *key;
      const RateLimit& limit = k != nullptr && k->limit ? *k->limit : ctx_->options.rate_limit;
      std::string bucket = k != nullptr ? "key:" + k->key : "addr:" + ex.peer()->address().host();
      RateLimiter::Decision d = ctx_->limiter.Take(bucket, limit);
      if (!d.allowed) {
        auto secs = static_cast<int64_t>(std::ceil(ToSecondsF(d.retry_after)));
        HttpReply r = ErrorReply(
            429,
            "rate limit exceeded; retry after " + std::to_string(std::max<int64_t>(1, secs)) + " s",
            "rate_limited");
        r.headers.emplace_back("Retry-After", std::to_string(std::max<int64_t>(1, secs)));
        return ex.Reply(std::move(r));
      }
    }
    if (body.size() > ctx_->options.max_body_bytes) {
      return ex.Reply(ErrorReply(
          413,
          "the request body exceeds " + std::to_string(ctx_->options.max_body_bytes) + " bytes",
          "payload_too_large"));
    }
    api_.Handle(Call{head, target.path, target.query, body, match}, ex);
  }

  // OPTIONS: a CORS preflight, or the methods a path allows.
  void Options(const RequestHead& head, const RequestTarget& target, Exchange& ex) {
    RouteMatch match = MatchRoute("OPTIONS", target.path);
    if (match.allowed.empty()) {
      return ex.Reply(ErrorReply(404, "no route for " + target.path.substr(0, 256), "no_route"));
    }
    const std::string_view origin = head.Header("Origin").value_or("");
    if (auto requested = head.Header("Access-Control-Request-Method");
        requested && !origin.empty()) {
      auto headers = ctx_->cors.PreflightHeaders(
          origin, *requested, head.Header("Access-Control-Request-Headers").value_or(""),
          match.allowed);
      if (!headers) {
        ex.to().extra.clear();
        return ex.Reply(ErrorReply(403, "cross-origin request refused for this origin or method",
                                   "permission_denied"));
      }
      ex.to().extra = std::move(*headers);
      return ex.Reply(HttpReply{204, "", "", {}});
    }
    HttpReply r{204, "", "", {}};
    r.headers.emplace_back("Allow", Join(match.allowed) + ", OPTIONS");
    ex.Reply(std::move(r));
  }

  std::shared_ptr<ApiContext> ctx_;
  Api api_;
};

}  // namespace

Gateway::Gateway(GatewayOptions options, BrokerClientOptions broker)
    : options_(std::move(options)), broker_options_(std::move(broker)) {}

Gateway::~Gateway() { Stop(); }

Status Gateway::Start() {
  auto keys = ApiKeys::Create(options_.api_keys);
  if (!keys.ok()) return keys.status();
  context_ = std::make_shared<ApiContext>(options_, broker_options_, std::move(*keys));
  if (!context_->keys.enabled()) {
    spdlog::warn("no API keys configured: every route is open (set --client-key/--admin-key)");
  }
  RMA_RETURN_IF_ERROR(context_->writer.Start());
  RMA_RETURN_IF_ERROR(context_->broker.Start());
  try {
    Pistache::Address address(options_.listen);
    endpoint_ = std::make_unique<Http::Endpoint>(address);
    // Idle connections (including ones waiting for a deferred answer, see Dispatch) live as long as
    // the longest wait plus a margin; a new connection must deliver its request within the header
    // timeout.
    const Duration longest = std::max(options_.max_wait, options_.max_call_timeout);
    auto opts = Http::Endpoint::options()
                    .threads(static_cast<int>(options_.threads))
                    .flags(Pistache::Tcp::Options::ReuseAddr)
                    .maxRequestSize(options_.max_body_bytes + options_.max_header_bytes)
                    .maxResponseSize(1u << 16)
                    .keepaliveTimeout(longest + Seconds(60))
                    .headerTimeout(options_.header_timeout)
                    .bodyTimeout(options_.header_timeout + Seconds(60));
    endpoint_->init(opts);
    endpoint_->setHandler(Http::make_handler<ApiHandler>(context_));
    endpoint_->serveThreaded();
  } catch (const std::exception& e) {
    endpoint_.reset();
    context_->broker.Stop();
    context_->writer.Stop();
    return Status::Unavailable(std::string("cannot listen on ") + options_.listen + ": " +
                               e.what());
  }
  started_ = true;
  spdlog::info("gateway listening on port {} (broker {}, {} API keys)", port(),
               broker_options_.endpoint, context_->keys.size());
  return Status::Ok();
}

uint16_t Gateway::port() const {
  return endpoint_ ? static_cast<uint16_t>(endpoint_->getPort()) : 0;
}

void Gateway::Stop() {
  if (!started_) return;
  started_ = false;
  // No new requests first; then what still waits is answered (503) through its own socket, and
  // finally the last slow writes are given up.
  endpoint_->shutdown();
  context_->broker.Stop();
  context_->writer.Stop();
  endpoint_.reset();
}

}  // namespace rma::gateway
