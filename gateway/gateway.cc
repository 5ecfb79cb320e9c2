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

#include "gateway/api.h"
#include "gateway/static_files.h"

namespace rma::gateway {

namespace Http = Pistache::Http;
namespace Tcp = Pistache::Tcp;
using nlohmann::json;
using proto::Command;

namespace {

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
        std::string message = "no route for " + head.method + " " + target.path.substr(0, 256);
        // "/api/workers" for "/api/admin/workers": point at the route that exists.
        if (target.path.rfind("/api/", 0) == 0) {
          const std::string admin = "/api/admin/" + target.path.substr(5);
          if (!MatchRoute(head.method, admin).allowed.empty() ||
              MatchRoute(head.method, admin).route != nullptr) {
            message += "; did you mean " + admin.substr(0, 256) + "?";
          }
        }
        return ex.Reply(ErrorReply(404, message, "no_route"));
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
