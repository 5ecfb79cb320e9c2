// See gateway.h. Routes and JSON shapes are documented in docs/http-api.md.
#include "gateway/gateway.h"

#include <pistache/http.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <cmath>

#include "common/version.h"
#include "gateway/static_files.h"
#include "gateway/task_json.h"

namespace rma::gateway {

namespace Http = Pistache::Http;
using nlohmann::json;
using proto::Command;

struct ApiContext {
  ApiContext(GatewayOptions o, BrokerClientOptions b)
      : options(std::move(o)), broker(std::move(b)) {}
  GatewayOptions options;
  BrokerClient broker;
  SystemClock clock;
  Time started_at = clock.Now();
};

namespace {

// ---- Responses
// ------------------------------------------------------------------------------------

// Pistache 0.0.5 answers an HTTP/1.1 request that has no Connection header with "Connection: Close"
// (pistache#940); HTTP/1.1 means keep-alive unless the client says otherwise, so decide it here.
bool WantsKeepAlive(const Http::Request& req) {
  auto conn = req.headers().tryGet<Http::Header::Connection>();
  if (req.version() == Http::Version::Http11) {
    return !(conn && conn->control() == Http::ConnectionControl::Close);
  }
  return conn && conn->control() == Http::ConnectionControl::KeepAlive;
}

// A response header with any name and value. Pistache 0.0.5 writes only typed headers (raw ones
// added with addRaw are silently dropped), so free-form headers such as Content-Type from a
// backend, Location or X-RMA-Task-Id travel in this type.
class NamedHeader final : public Http::Header::Header {
 public:
  NamedHeader(std::string name, std::string value)
      : name_(std::move(name)), value_(std::move(value)) {}
  const char* name() const override { return name_.c_str(); }
  void write(std::ostream& os) const override { os << value_; }
  uint64_t hash() const override { return std::hash<std::string>{}(name_); }

 private:
  std::string name_;
  std::string value_;
};

struct HttpReply {
  Http::Code code = Http::Code::Ok;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
};

void Send(Http::ResponseWriter& writer, bool keep_alive, HttpReply reply) {
  auto& h = writer.headers();
  h.remove<Http::Header::Connection>();
  h.add<Http::Header::Connection>(keep_alive ? Http::ConnectionControl::KeepAlive
                                             : Http::ConnectionControl::Close);
  if (!reply.content_type.empty())
    h.add(std::make_shared<NamedHeader>("Content-Type", reply.content_type));
  for (auto& [name, value] : reply.headers) h.add(std::make_shared<NamedHeader>(name, value));
  try {
    // A client that is gone makes send() fail (its peer cannot be locked): nothing to do about
    // that.
    writer.send(reply.code, reply.body).then([](ssize_t) {}, [](std::exception_ptr) {});
  } catch (const std::exception& e) {
    spdlog::debug("response not sent: {}", e.what());
  }
}

HttpReply JsonReply(Http::Code code, const json& body) {
  return HttpReply{
      code, body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json", {}};
}

HttpReply ErrorReply(Http::Code code, std::string_view message, std::string_view error_code) {
  return JsonReply(code, ErrorJson(message, error_code));
}

Http::Code HttpCodeFor(std::string_view code) {
  if (code == "invalid_argument") return Http::Code::Bad_Request;
  if (code == "not_found") return Http::Code::Not_Found;
  if (code == "already_exists" || code == "failed_precondition") return Http::Code::Conflict;
  if (code == "unauthenticated") return Http::Code::Unauthorized;
  if (code == "permission_denied") return Http::Code::Forbidden;
  if (code == "resource_exhausted" || code == "unavailable") return Http::Code::Service_Unavailable;
  if (code == "deadline_exceeded") return Http::Code::Gateway_Timeout;
  return Http::Code::Internal_Server_Error;
}

HttpReply BrokerErrorReply(const proto::Error& e) {
  json body = ErrorJson(e.message, e.code);
  if (!e.available_services.empty() || e.code == "unavailable") {
    if (e.message.rfind("Service '", 0) == 0) body["available_services"] = e.available_services;
  }
  if (!e.suggestion.empty()) body["suggestion"] = e.suggestion;
  HttpReply r = JsonReply(HttpCodeFor(e.code), body);
  if (e.code == "resource_exhausted") r.headers.emplace_back("Retry-After", "1");
  return r;
}

// A failure of the request itself (timeout, broker down), not an answer from the broker.
HttpReply TransportErrorReply(const Status& s) {
  if (s.code() == StatusCode::kDeadlineExceeded) {
    return ErrorReply(Http::Code::Gateway_Timeout, s.message(), "deadline_exceeded");
  }
  return ErrorReply(Http::Code::Service_Unavailable, s.message(),
                    std::string(StatusCodeName(s.code())));
}

// ---- Parsing helpers
// ------------------------------------------------------------------------------

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t q = path.find('?');
  if (q != std::string_view::npos) path = path.substr(0, q);
  size_t pos = 0;
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    if (next > pos) parts.push_back(path.substr(pos, next - pos));
    pos = next + 1;
  }
  return parts;
}

// A non-negative number of seconds from a query parameter; nullopt when absent.
Result<std::optional<double>> SecondsParam(const Http::Request& req, const std::string& name,
                                           double max) {
  auto v = req.query().get(name);
  if (!v) return std::optional<double>();
  double d = 0;
  auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), d);
  if (ec != std::errc() || ptr != v->data() + v->size() || !std::isfinite(d) || d < 0 || d > max) {
    return Status::InvalidArgument("'" + name + "' must be a number of seconds between 0 and " +
                                   std::to_string(static_cast<int>(max)));
  }
  return std::optional<double>(d);
}

std::optional<std::string> HeaderValue(const Http::Request& req, const std::string& name) {
  auto raw = req.headers().tryGetRaw(name);
  if (!raw) return std::nullopt;
  return raw->value();
}

bool IsReserved(std::string_view name) {
  return name == "tasks" || name == "admin" || name == "service" || name == "health" ||
         name == "metrics" || name == "docs" || name == "openapi.json";
}

// Headers a synchronous call forwards to the backend: content negotiation and the caller's own X-
// headers, never the gateway's credentials or hop-by-hop headers.
std::map<std::string, std::string> ForwardedHeaders(const Http::Request& req) {
  std::map<std::string, std::string> out;
  for (const auto& raw : req.headers().rawList()) {
    std::string name = raw.first;
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool forward =
        lower == "accept" || lower == "accept-language" || lower == "content-type" ||
        (lower.rfind("x-", 0) == 0 && lower != "x-api-key" && lower.rfind("x-rma-", 0) != 0);
    if (forward) out[lower] = raw.second.value();
  }
  return out;
}

// ---- The handler
// ----------------------------------------------------------------------------------

class ApiHandler final : public Http::Handler {
 public:
  HTTP_PROTOTYPE(ApiHandler)
  explicit ApiHandler(std::shared_ptr<ApiContext> ctx) : ctx_(std::move(ctx)) {}

  void onRequest(const Http::Request& req, Http::ResponseWriter response) override {
    const bool keep_alive = WantsKeepAlive(req);
    try {
      Route(req, std::move(response), keep_alive);
    } catch (const std::exception& e) {
      spdlog::error("request {} {} failed: {}", Http::methodString(req.method()), req.resource(),
                    e.what());
    }
  }

 private:
  // A request that waits for the broker: the writer moves here and is written from the BrokerClient
  // thread.
  struct Parked {
    Parked(Http::ResponseWriter w, bool k) : writer(std::move(w)), keep_alive(k) {}
    Http::ResponseWriter writer;
    bool keep_alive;
  };

  template <typename T, typename OnAnswer>
  void Ask(Http::ResponseWriter response, bool keep_alive, Command command, T message,
           Duration timeout, OnAnswer on_answer) {
    auto parked = std::make_shared<Parked>(std::move(response), keep_alive);
    ctx_->broker.Request(command, std::move(message), timeout,
                         [parked, on_answer = std::move(on_answer)](Result<BrokerAnswer> answer) {
                           HttpReply reply;
                           if (!answer.ok()) {
                             reply = TransportErrorReply(answer.status());
                           } else if (auto* err = std::get_if<proto::Error>(&*answer)) {
                             reply = BrokerErrorReply(*err);
                           } else {
                             reply = on_answer(*answer);
                           }
                           Send(parked->writer, parked->keep_alive, std::move(reply));
                         });
  }

  void Route(const Http::Request& req, Http::ResponseWriter response, bool keep_alive) {
    const std::string& resource = req.resource();
    std::vector<std::string_view> seg = SplitPath(resource);
    const Http::Method method = req.method();
    auto reply = [&](HttpReply r) { Send(response, keep_alive, std::move(r)); };
    auto not_allowed = [&](const char* allow) {
      HttpReply r =
          ErrorReply(Http::Code::Method_Not_Allowed,
                     std::string(Http::methodString(method)) + " is not allowed on " + resource,
                     "method_not_allowed");
      r.headers.emplace_back("Allow", allow);
      reply(std::move(r));
    };

    // Dashboard (issue 7): GET/HEAD of / and /assets/... come from the embedded bundle.
    if (StaticFiles::Handles(resource)) {
      if (method != Http::Method::Get && method != Http::Method::Head)
        return not_allowed("GET, HEAD");
      StaticReply s = StaticFiles::Dashboard().Serve(
          {resource, method == Http::Method::Head, HeaderValue(req, "If-None-Match").value_or(""),
           HeaderValue(req, "Accept-Encoding").value_or("")});
      return reply({static_cast<Http::Code>(s.status), std::move(s.body), std::move(s.content_type),
                    std::move(s.headers)});
    }
    if (seg.size() == 1 && seg[0] == "health") {
      if (method != Http::Method::Get) return not_allowed("GET");
      return reply(Health());
    }
    if (seg.empty() || seg[0] != "api" || seg.size() < 2) {
      return reply(ErrorReply(Http::Code::Not_Found, "no route for " + resource, "not_found"));
    }
    const std::string_view area = seg[1];
    if (area == "tasks") {
      if (seg.size() == 2) {
        if (method == Http::Method::Post) return SubmitTask(req, std::move(response), keep_alive);
        if (method == Http::Method::Get) return ListTasks(req, std::move(response), keep_alive);
        return not_allowed("GET, POST");
      }
      if (seg.size() == 3) {
        if (method == Http::Method::Get)
          return GetTask(req, std::string(seg[2]), std::move(response), keep_alive);
        if (method == Http::Method::Delete) {
          return CancelTask(std::string(seg[2]), std::move(response), keep_alive);
        }
        return not_allowed("GET, DELETE");
      }
    } else if (area == "admin") {
      if (seg.size() == 3) {
        if (method != Http::Method::Get) return not_allowed("GET");
        return AdminQuery(std::string(seg[2]), std::move(response), keep_alive);
      }
    } else if (area == "service") {
      if (seg.size() >= 3) return ServiceCall(req, seg, 2, std::move(response), keep_alive);
    } else if (!IsReserved(area)) {
      return ServiceCall(req, seg, 1, std::move(response), keep_alive);
    }
    return reply(ErrorReply(Http::Code::Not_Found, "no route for " + resource, "not_found"));
  }

  HttpReply Health() {
    bool reachable = ctx_->broker.broker_reachable();
    json body = {
        {"status", reachable ? "ok" : "degraded"},
        {"gateway", "up"},
        {"broker", reachable ? "reachable" : "unreachable"},
        {"version", kVersion},
        {"pending_requests", ctx_->broker.pending()},
        {"uptime_s", std::round(ToSecondsF(ctx_->clock.Now() - ctx_->started_at) * 10) / 10}};
    return JsonReply(reachable ? Http::Code::Ok : Http::Code::Service_Unavailable, body);
  }

  void SubmitTask(const Http::Request& req, Http::ResponseWriter response, bool keep_alive) {
    if (req.body().size() > ctx_->options.max_body_bytes) {
      return Send(response, keep_alive,
                  ErrorReply(Http::Code::Request_Entity_Too_Large,
                             "request body exceeds " +
                                 std::to_string(ctx_->options.max_body_bytes) + " bytes",
                             "payload_too_large"));
    }
    SubmitLimits limits;
    limits.max_payload_bytes = ctx_->options.max_body_bytes;
    auto submit = ParseSubmitJson(req.body(), limits, ctx_->clock.Now());
    if (!submit.ok()) {
      bool too_large = submit.status().code() == StatusCode::kResourceExhausted;
      return Send(
          response, keep_alive,
          ErrorReply(too_large ? Http::Code::Request_Entity_Too_Large : Http::Code::Bad_Request,
                     submit.status().message(),
                     too_large ? "payload_too_large" : "invalid_argument"));
    }
    Ask(std::move(response), keep_alive, Command::kSubmit, std::move(*submit),
        ctx_->options.submit_timeout, [](const BrokerAnswer& a) -> HttpReply {
          const auto* acc = std::get_if<proto::Accepted>(&a);
          if (acc == nullptr)
            return ErrorReply(Http::Code::Bad_Gateway, "unexpected answer from the broker",
                              "internal");
          json body = {{"task_id", ToString(acc->task_id)},
                       {"status", proto::TaskStatusName(acc->status)}};
          if (acc->duplicate) body["duplicate"] = true;
          if (acc->waiting_for_provider) body["waiting_for_provider"] = true;
          HttpReply r = JsonReply(Http::Code::Accepted, body);
          r.headers.emplace_back("Location", "/api/tasks/" + ToString(acc->task_id));
          return r;
        });
  }

  void GetTask(const Http::Request& req, const std::string& id_text, Http::ResponseWriter response,
               bool keep_alive) {
    auto id = ParseTaskId(id_text);
    if (!id) {
      return Send(
          response, keep_alive,
          ErrorReply(Http::Code::Not_Found, "task '" + id_text + "' not found", "not_found"));
    }
    auto wait = SecondsParam(req, "wait", ToSecondsF(ctx_->options.max_wait));
    if (!wait.ok()) {
      return Send(response, keep_alive,
                  ErrorReply(Http::Code::Bad_Request, wait.status().message(), "invalid_argument"));
    }
    proto::Get get;
    get.task_id = *id;
    get.wait_ms = static_cast<uint32_t>(wait->value_or(0) * 1000);
    Ask(std::move(response), keep_alive, Command::kGet, get,
        Ms(get.wait_ms) + ctx_->options.submit_timeout, [](const BrokerAnswer& a) -> HttpReply {
          const auto* info = std::get_if<proto::TaskInfo>(&a);
          if (info == nullptr)
            return ErrorReply(Http::Code::Bad_Gateway, "unexpected answer from the broker",
                              "internal");
          return JsonReply(Http::Code::Ok, TaskJson(info->task));
        });
  }

  void CancelTask(const std::string& id_text, Http::ResponseWriter response, bool keep_alive) {
    auto id = ParseTaskId(id_text);
    if (!id) {
      return Send(
          response, keep_alive,
          ErrorReply(Http::Code::Not_Found, "task '" + id_text + "' not found", "not_found"));
    }
    Ask(std::move(response), keep_alive, Command::kCancelTask, proto::CancelTask{0, *id},
        ctx_->options.submit_timeout, [](const BrokerAnswer& a) -> HttpReply {
          const auto* info = std::get_if<proto::TaskInfo>(&a);
          if (info == nullptr)
            return ErrorReply(Http::Code::Bad_Gateway, "unexpected answer from the broker",
                              "internal");
          if (info->task.status == proto::TaskStatus::kCancelled)
            return JsonReply(Http::Code::Ok, TaskJson(info->task));
          json body =
              ErrorJson("task already " + std::string(proto::TaskStatusName(info->task.status)),
                        "failed_precondition");
          body["task"] = TaskJson(info->task, /*with_result=*/false);
          return JsonReply(Http::Code::Conflict, body);
        });
  }

  void ListTasks(const Http::Request& req, Http::ResponseWriter response, bool keep_alive) {
    proto::List list;
    list.service = req.query().get("service").value_or("");
    list.status = req.query().get("status").value_or("");
    if (!list.status.empty() && !proto::ParseTaskStatus(list.status)) {
      return Send(response, keep_alive,
                  ErrorReply(Http::Code::Bad_Request, "unknown status '" + list.status + "'",
                             "invalid_argument"));
    }
    if (auto limit = req.query().get("limit")) {
      uint32_t n = 0;
      auto [ptr, ec] = std::from_chars(limit->data(), limit->data() + limit->size(), n);
      if (ec != std::errc() || ptr != limit->data() + limit->size() || n < 1 || n > 1000) {
        return Send(response, keep_alive,
                    ErrorReply(Http::Code::Bad_Request, "'limit' must be between 1 and 1000",
                               "invalid_argument"));
      }
      list.limit = n;
    }
    Ask(std::move(response), keep_alive, Command::kList, list, ctx_->options.submit_timeout,
        [](const BrokerAnswer& a) -> HttpReply {
          const auto* tl = std::get_if<proto::TaskList>(&a);
          if (tl == nullptr)
            return ErrorReply(Http::Code::Bad_Gateway, "unexpected answer from the broker",
                              "internal");
          json tasks = json::array();
          for (const proto::TaskView& t : tl->tasks)
            tasks.push_back(TaskJson(t, /*with_result=*/false));
          return JsonReply(Http::Code::Ok, {{"tasks", tasks}, {"count", tl->tasks.size()}});
        });
  }

  void AdminQuery(const std::string& query, Http::ResponseWriter response, bool keep_alive) {
    static const std::set<std::string> kQueries = {"workers", "services", "stats", "queues",
                                                   "health"};
    if (kQueries.count(query) == 0) {
      return Send(response, keep_alive,
                  ErrorReply(Http::Code::Not_Found, "no admin route '" + query + "'", "not_found"));
    }
    proto::Admin admin;
    admin.query = query;
    Ask(std::move(response), keep_alive, Command::kAdmin, admin, ctx_->options.submit_timeout,
        [](const BrokerAnswer& a) -> HttpReply {
          const auto* ar = std::get_if<proto::AdminReply>(&a);
          if (ar == nullptr)
            return ErrorReply(Http::Code::Bad_Gateway, "unexpected answer from the broker",
                              "internal");
          msgpack::object_handle oh;
          try {
            oh = msgpack::unpack(ar->data.data(), ar->data.size());
          } catch (const std::exception& e) {
            return ErrorReply(Http::Code::Bad_Gateway, "undecodable admin answer", "internal");
          }
          return JsonReply(Http::Code::Ok, MsgpackToJson(oh.get()));
        });
  }

  void ServiceCall(const Http::Request& req, const std::vector<std::string_view>& seg,
                   size_t name_index, Http::ResponseWriter response, bool keep_alive) {
    if (req.body().size() > ctx_->options.max_body_bytes) {
      return Send(response, keep_alive,
                  ErrorReply(Http::Code::Request_Entity_Too_Large,
                             "request body exceeds " +
                                 std::to_string(ctx_->options.max_body_bytes) + " bytes",
                             "payload_too_large"));
    }
    proto::Submit s;
    s.service = std::string(seg[name_index]);
    s.mode = proto::SubmitMode::kSync;
    s.max_attempts = 1;
    proto::HttpRequest http;
    http.method = Http::methodString(req.method());
    for (size_t i = name_index + 1; i < seg.size(); ++i) {
      http.path += "/";
      http.path += seg[i];
    }
    if (http.path.empty()) http.path = "/";
    if (!req.resource().empty() && req.resource().back() == '/' && http.path != "/")
      http.path += "/";
    std::string query = req.query().as_str();
    if (!query.empty() && query[0] == '?') query.erase(0, 1);
    http.query = query;
    http.headers = ForwardedHeaders(req);
    s.payload = req.body();
    s.content_type = HeaderValue(req, "Content-Type").value_or("");
    s.request = std::move(http);
    Duration timeout = ctx_->options.default_call_timeout;
    if (auto t = HeaderValue(req, "X-RMA-Timeout")) {
      double secs = 0;
      auto [ptr, ec] = std::from_chars(t->data(), t->data() + t->size(), secs);
      if (ec != std::errc() || ptr != t->data() + t->size() || !(secs > 0) ||
          secs > ToSecondsF(ctx_->options.max_call_timeout)) {
        return Send(response, keep_alive,
                    ErrorReply(Http::Code::Bad_Request, "X-RMA-Timeout must be a number of seconds",
                               "invalid_argument"));
      }
      timeout = Duration(static_cast<int64_t>(secs * 1e6));
    }
    s.timeout_ms = static_cast<uint32_t>(std::max<int64_t>(1, ToMs(timeout)));
    // The broker ends the call itself when its time is up; the extra second lets that answer arrive
    // first.
    Ask(std::move(response), keep_alive, Command::kSubmit, std::move(s), timeout + Seconds(1),
        [](const BrokerAnswer& a) -> HttpReply {
          const auto* info = std::get_if<proto::TaskInfo>(&a);
          if (info == nullptr)
            return ErrorReply(Http::Code::Bad_Gateway, "unexpected answer from the broker",
                              "internal");
          const proto::TaskView& t = info->task;
          if (t.status == proto::TaskStatus::kCompleted) {
            HttpReply r;
            r.code = static_cast<Http::Code>(t.http_status != 0 ? t.http_status : 200);
            r.body = t.result;
            r.content_type = t.content_type;
            r.headers.emplace_back("X-RMA-Task-Id", ToString(t.task_id));
            if (!t.worker_id.empty()) r.headers.emplace_back("X-RMA-Worker-Id", t.worker_id);
            return r;
          }
          if (t.error_code == "timeout" || !proto::IsTerminal(t.status) ||
              t.status == proto::TaskStatus::kCancelled) {
            return ErrorReply(Http::Code::Gateway_Timeout,
                              t.error.empty() ? "the service did not answer in time" : t.error,
                              "timeout");
          }
          json body = ErrorJson(t.error.empty() ? "the service call failed" : t.error,
                                t.error_code.empty() ? "handler_error" : t.error_code);
          body["task_id"] = ToString(t.task_id);
          return JsonReply(Http::Code::Bad_Gateway, body);
        });
  }

  std::shared_ptr<ApiContext> ctx_;
};

}  // namespace

Gateway::Gateway(GatewayOptions options, BrokerClientOptions broker)
    : options_(options),
      context_(std::make_shared<ApiContext>(std::move(options), std::move(broker))) {}

Gateway::~Gateway() { Stop(); }

Status Gateway::Start() {
  RMA_RETURN_IF_ERROR(context_->broker.Start());
  try {
    Pistache::Address address(options_.listen);
    endpoint_ = std::make_unique<Http::Endpoint>(address);
    auto opts =
        Http::Endpoint::options()
            .threads(static_cast<int>(options_.threads))
            .flags(Pistache::Tcp::Options::ReuseAddr)
            .maxRequestSize(options_.max_body_bytes + 64 * 1024)
            .maxResponseSize(std::max<size_t>(options_.max_body_bytes + 64 * 1024, 1u << 20))
            .keepaliveTimeout(options_.max_wait + Seconds(60))
            .headerTimeout(Seconds(60))
            .bodyTimeout(Seconds(60));
    endpoint_->init(opts);
    endpoint_->setHandler(Http::make_handler<ApiHandler>(context_));
    endpoint_->serveThreaded();
  } catch (const std::exception& e) {
    context_->broker.Stop();
    return Status::Unavailable(std::string("cannot listen on ") + options_.listen + ": " +
                               e.what());
  }
  started_ = true;
  spdlog::info("gateway listening on port {} (broker {})", port(), options_.listen);
  return Status::Ok();
}

uint16_t Gateway::port() const {
  return endpoint_ ? static_cast<uint16_t>(endpoint_->getPort()) : 0;
}

void Gateway::Stop() {
  if (!started_) return;
  started_ = false;
  // Answer what is still waiting first, while the reactors can still write, then stop the reactors.
  context_->broker.Stop();
  endpoint_->shutdown();
  endpoint_.reset();
}

}  // namespace rma::gateway
