// See gateway.h. Routes, JSON shapes and error codes are documented in docs/http-api.md.
//
// How a request flows. ApiHandler::onInput (a reactor thread) replaces Pistache's own: it frames
// each request itself — the raw head (Pistache keeps only typed forms of well-known headers and an
// unordered copy of the query), then a Content-Length or chunked body — refusing malformed framing,
// oversized requests and large bodies the budget cannot hold with a JSON answer before reading
// their body. Once a request is complete it is routed: cross-site and content-type rules, keys,
// rate limits, then the handler. Immediate answers are written there; an answer that needs the
// broker takes a dup() of the connection's socket (an Exchange becomes a Deferred) and is written
// by the BrokerClient thread when the broker answers. Large bodies are parsed and encoded on the
// parse pool. One request per connection is answered at a time (AnswerGate). Nothing here ever
// calls Pistache's ResponseWriter (socket_writer.h says why).
#include "gateway/gateway.h"

#include <pistache/endpoint.h>
#include <pistache/http.h>
#include <pistache/peer.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "gateway/api.h"
#include "gateway/static_files.h"

namespace rma::gateway {

namespace Http = Pistache::Http;
namespace Tcp = Pistache::Tcp;
using nlohmann::json;

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

// Per-connection state, kept in the peer's data (reactor thread only, except the gate). The gateway
// frames requests itself — head, then a Content-Length or chunked body — and never feeds Pistache's
// parser: it knows exactly where each request ends (pipelining, smuggling), and a body costs its
// own size in memory, once.
struct Connection {
  enum class Phase { kHead, kBody, kChunked };
  Phase phase = Phase::kHead;
  std::string head;  // the current request's head, until complete
  std::optional<RequestHead> parsed;
  std::string body;
  uint64_t body_left = 0;  // kBody
  ChunkedDecoder chunked;  // kChunked
  BodyBudget::Lease lease;
  bool refused =
      false;  // answered with an error or pipelined into: the rest of the input is ignored
  std::shared_ptr<AnswerGate> gate = std::make_shared<AnswerGate>();
  // Fired when the client closes the connection: a streamed call cancels its task.
  std::shared_ptr<DisconnectHook> gone = std::make_shared<DisconnectHook>();
  ConnectionLimiter::Slot slot;  // this connection's place among its address's connections

  void NextRequest() {
    phase = Phase::kHead;
    head.clear();
    parsed.reset();
    body.clear();
    body_left = 0;
    chunked = ChunkedDecoder();
    lease.Release();
  }
};

constexpr const char* kConnectionData = "rma.connection";

// Whether `rest` holds anything but the empty lines a client may send between requests.
bool HasMoreThanBlankLines(std::string_view rest) {
  return rest.find_first_not_of("\r\n") != std::string_view::npos;
}

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
  // A new connection: counted against its address's limit, or answered 503 and shut down.
  void onConnection(const std::shared_ptr<Tcp::Peer>& peer) override {
    // What Http::Handler::onConnection does (it is private): give the peer Pistache's parser. The
    // gateway never feeds it, but the transport reads its clock for the header timeout.
    peer->putData(Http::Handler::ParserData,
                  std::make_shared<Http::RequestParser>(getMaxRequestSize()));
    auto conn = std::make_shared<Connection>();
    const std::string address = peer->address().host();
    conn->slot = ctx_->connections->Acquire(address);
    peer->putData(kConnectionData, conn);
    if (!conn->slot.held()) {
      spdlog::debug("refusing a connection from {}: {} connections from it are open",
                    EscapeForLog(address), ctx_->options.max_connections_per_ip);
      conn->refused = true;
      ReplyTo to;
      to.keep_alive = false;
      to.started = ctx_->clock.Now();
      HttpReply r = ErrorReply(503,
                               "too many connections from your address (" +
                                   std::to_string(ctx_->options.max_connections_per_ip) +
                                   "); close some and retry",
                               "too_many_connections");
      r.headers.emplace_back("Retry-After", "1");
      Deliver(*ctx_, peer->fd(), OwnedFd(), to, std::move(r));
      // Both ways: Pistache then sees the end of the stream and lets the connection go at once.
      ::shutdown(peer->fd(), SHUT_RDWR);
    }
  }

  // The client closed its connection (or Pistache dropped it): the request in progress, if it
  // cares, is told (a streamed call cancels its task).
  void onDisconnection(const std::shared_ptr<Tcp::Peer>& peer) override {
    std::shared_ptr<void> data = peer->tryGetData(kConnectionData);
    if (data) static_cast<Connection*>(data.get())->gone->Fire();
  }

  // Replaces Http::Handler::onInput (see the file comment and Connection).
  void onInput(const char* buffer, size_t len, const std::shared_ptr<Tcp::Peer>& peer) override {
    Connection& conn = ConnectionOf(*peer);
    if (conn.refused) return;
    // Bytes of another request while this connection's answer is still on its way: the gateway
    // answers in order by not reading them, and closes once that answer is out.
    if (conn.gate->Pipelined()) {
      conn.refused = true;
      return;
    }
    std::string_view in(buffer, len);
    try {
      while (!in.empty() && !conn.refused) {
        bool complete = false;
        switch (conn.phase) {
          case Connection::Phase::kHead:
            complete = ReadHead(peer, conn, &in);
            break;
          case Connection::Phase::kBody: {
            const size_t take = static_cast<size_t>(std::min<uint64_t>(conn.body_left, in.size()));
            conn.body.append(in.data(), take);
            conn.body_left -= take;
            in.remove_prefix(take);
            complete = conn.body_left == 0;
            break;
          }
          case Connection::Phase::kChunked:
            complete = ReadChunked(peer, conn, &in);
            break;
        }
        if (!complete) continue;
        // A second request in the same read: answer the first, say Connection: close, stop.
        const bool pipelined = HasMoreThanBlankLines(in);
        if (pipelined) conn.refused = true;
        Dispatch(peer, conn, pipelined);
        if (pipelined) return;
        in = {};  // only blank lines were left
      }
    } catch (const std::exception& e) {
      // Allocation failures and bugs: never leave the client without an answer.
      Refuse(peer, conn, 400, std::string("malformed request: ") + e.what(), "bad_request");
    }
  }

  // Consumes head bytes from *in. True when the request is complete (a head without a body).
  bool ReadHead(const std::shared_ptr<Tcp::Peer>& peer, Connection& conn, std::string_view* in) {
    if (conn.head.empty()) {
      // A new request: Pistache's header timeout counts from now, not from the connection's last
      // answer, and applies while it arrives (idle again once it is dispatched).
      Http::Handler::getParser(peer)->reset();
      peer->setIdle(false);
    }
    const size_t before = conn.head.size();
    const size_t room =
        ctx_->options.max_header_bytes + 1 - std::min(before, ctx_->options.max_header_bytes);
    const size_t take = std::min(in->size(), room);
    conn.head.append(in->data(), take);
    const size_t end = FindHeadEnd(conn.head, before >= 3 ? before - 3 : 0);
    if (end == std::string::npos) {
      in->remove_prefix(take);
      if (conn.head.size() > ctx_->options.max_header_bytes) {
        Refuse(
            peer, conn, 431,
            "the request head exceeds " + std::to_string(ctx_->options.max_header_bytes) + " bytes",
            "header_too_large");
      }
      return false;
    }
    in->remove_prefix(end - before);
    conn.head.resize(end);
    conn.parsed = ParseRequestHead(conn.head);
    // The body has a header timeout of its own, counted from the end of the head.
    Http::Handler::getParser(peer)->reset();
    return StartBody(peer, conn);
  }

  // The head is complete: checks it and decides how its body is framed. True when the request has
  // no body (complete now).
  bool StartBody(const std::shared_ptr<Tcp::Peer>& peer, Connection& conn) {
    if (!conn.parsed) {
      Refuse(peer, conn, 400, "malformed request head", "bad_request");
      return false;
    }
    auto framing = FramingOf(*conn.parsed);
    if (auto* error = std::get_if<FramingError>(&framing)) {
      Refuse(peer, conn, error->status, error->message,
             error->status == 501 ? "not_implemented" : "bad_request");
      return false;
    }
    const BodyFraming& f = std::get<BodyFraming>(framing);
    if (f.kind == BodyFraming::Kind::kLength && f.length > ctx_->options.max_body_bytes) {
      RefuseTooLarge(peer, conn);
      return false;
    }
    if (f.kind == BodyFraming::Kind::kLength && f.length > ctx_->options.large_body_bytes &&
        !ctx_->bodies->Reserve(static_cast<size_t>(f.length), &conn.lease)) {
      RefuseBusy(peer, conn);
      return false;
    }
    if (auto expect = conn.parsed->Header("Expect");
        expect && EqualsIgnoreCase(*expect, "100-continue") && f.kind != BodyFraming::Kind::kNone) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      ctx_->writer.Write(peer->fd(), OwnedFd(), std::string(kContinue), false);
    }
    switch (f.kind) {
      case BodyFraming::Kind::kNone:
        return true;
      case BodyFraming::Kind::kLength:
        if (f.length == 0) return true;
        conn.phase = Connection::Phase::kBody;
        conn.body_left = f.length;
        conn.body.reserve(static_cast<size_t>(f.length));  // untouched pages cost nothing
        return false;
      case BodyFraming::Kind::kChunked:
        conn.phase = Connection::Phase::kChunked;
        return false;
    }
    return false;
  }

  // Consumes chunked body bytes from *in. True when the body is complete.
  bool ReadChunked(const std::shared_ptr<Tcp::Peer>& peer, Connection& conn, std::string_view* in) {
    size_t consumed = 0;
    ChunkedDecoder::State state =
        conn.chunked.Feed(*in, &conn.body, ctx_->options.max_body_bytes, &consumed);
    in->remove_prefix(consumed);
    if (state == ChunkedDecoder::State::kError) {
      Refuse(peer, conn, 400, "malformed chunked body: " + conn.chunked.error(), "bad_request");
      return false;
    }
    if (state == ChunkedDecoder::State::kTooLarge) {
      RefuseTooLarge(peer, conn);
      return false;
    }
    // A chunked body's size is known only as it arrives: it takes budget as it grows past the
    // large-body threshold, in steps of at least 1 MiB.
    const size_t size = conn.body.size();
    if (size > ctx_->options.large_body_bytes && size > conn.lease.bytes()) {
      const size_t want = std::min<size_t>(std::max<size_t>(size, conn.lease.bytes() + (1u << 20)),
                                           ctx_->options.max_body_bytes);
      const bool held = conn.lease.bytes() > 0 ? conn.lease.GrowTo(want)
                                               : ctx_->bodies->Reserve(want, &conn.lease);
      if (!held) {
        RefuseBusy(peer, conn);
        return false;
      }
    }
    return state == ChunkedDecoder::State::kDone;
  }

  static Connection& ConnectionOf(Tcp::Peer& peer) {
    std::shared_ptr<void> data = peer.tryGetData(kConnectionData);
    if (!data) {
      data = std::make_shared<Connection>();
      peer.putData(kConnectionData, data);
    }
    return *static_cast<Connection*>(data.get());
  }

  void RefuseTooLarge(const std::shared_ptr<Tcp::Peer>& peer, Connection& conn) {
    Refuse(peer, conn, 413,
           "the request body exceeds " + std::to_string(ctx_->options.max_body_bytes) + " bytes",
           "payload_too_large");
  }

  void RefuseBusy(const std::shared_ptr<Tcp::Peer>& peer, Connection& conn) {
    Refuse(peer, conn, 503, "the gateway is busy with other large requests; retry shortly", "busy",
           {{"Retry-After", "1"}});
  }

  // Answers an error and closes the connection: what the client still sends is ignored (its
  // framing is lost) until it reads the answer and closes, or Pistache's header timeout ends it.
  void Refuse(const std::shared_ptr<Tcp::Peer>& peer, Connection& conn, int status,
              const std::string& message, std::string_view code, HeaderList headers = {}) {
    if (conn.refused) return;
    conn.refused = true;
    conn.lease.Release();
    conn.body = std::string();
    if (conn.parsed) {
      spdlog::debug("refused {} {} from {}: {} {}", EscapeForLog(conn.parsed->method, 16),
                    EscapeForLog(conn.parsed->target), EscapeForLog(peer->address().host()), status,
                    EscapeForLog(message));
    }
    ReplyTo to;
    to.keep_alive = false;
    to.started = ctx_->clock.Now();
    if (conn.parsed)
      to.extra = ctx_->cors.ResponseHeaders(conn.parsed->Header("Origin").value_or(""));
    HttpReply r = ErrorReply(status, message, code);
    r.headers.insert(r.headers.end(), headers.begin(), headers.end());
    Deliver(*ctx_, peer->fd(), OwnedFd(), to, std::move(r));
  }

  // A whole request is in: route it. Its answer is outstanding until written (AnswerGate).
  void Dispatch(const std::shared_ptr<Tcp::Peer>& peer, Connection& conn, bool close_after) {
    const std::optional<RequestHead>& head = conn.parsed;
    auto target = head ? SplitTarget(head->target) : std::nullopt;
    if (!head || !target) {
      Refuse(peer, conn, 400, "malformed request target", "bad_request");
      return;
    }
    ReplyTo to;
    to.started = ctx_->clock.Now();
    to.keep_alive =
        !close_after && KeepAlive(head->http11, head->Header("Connection").value_or(""));
    to.gate = conn.gate;
    to.on_gone = conn.gone;
    conn.gate->Begin();
    std::shared_ptr<BodyBudget::Lease> lease;
    if (conn.lease.bytes() > 0) lease = std::make_shared<BodyBudget::Lease>(std::move(conn.lease));
    std::string body = std::move(conn.body);
    Exchange ex(ctx_.get(), peer, std::move(to));
    try {
      Route(*head, *target, body, std::move(lease), ex);
    } catch (const std::exception& e) {
      // A bug or an allocation failure: never leave the client without an answer.
      spdlog::error("{} {} failed: {}", EscapeForLog(head->method, 16), EscapeForLog(target->path),
                    e.what());
      if (!ex.answered()) ex.Reply(ErrorReply(500, "internal error", "internal"));
    }
    conn.NextRequest();
    // Answered or handed over: either way Pistache must treat the connection as idle, or its
    // header timeout would end a long-poll with 408 (the keep-alive timeout applies instead).
    peer->setIdle(true);
  }

  void Route(const RequestHead& head, const RequestTarget& target, std::string& body,
             std::shared_ptr<BodyBudget::Lease> lease, Exchange& ex) {
    const std::string_view origin = head.Header("Origin").value_or("");
    ex.to().extra = ctx_->cors.ResponseHeaders(origin);
    // An open gateway (no keys) serves this machine only. A page elsewhere could still reach it
    // through DNS rebinding (its own name resolving to 127.0.0.1, so the browser deems the gateway
    // same-origin): the Host header then names that site, not loopback.
    if (!ctx_->keys.enabled() && !ctx_->options.allow_anonymous && !ctx_->options.broker_accounts &&
        !ctx_->broker_keys.has_accounts()) {
      if (auto host = head.Header("Host"); host && !IsLoopbackHost(*host)) {
        return ex.Reply(ErrorReply(403,
                                   "this gateway has no API keys and serves loopback names only "
                                   "(Host '" +
                                       std::string(host->substr(0, 128)) +
                                       "'); configure keys or --allow-anonymous",
                                   "host_refused"));
      }
    }
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

    // Cross-site requests never change anything (CSRF), service calls included: their effect is
    // the backend's.
    const bool changes_state =
        head.method != "GET" && head.method != "HEAD" && head.method != "OPTIONS";
    if (changes_state) {
      if (auto refusal =
              ctx_->cors.CrossSiteRefusal(head.Header("Origin"), head.Header("Sec-Fetch-Site"),
                                          head.Header("Host").value_or(""))) {
        spdlog::debug("{} {} from {}: {}", EscapeForLog(head.method, 16), EscapeForLog(target.path),
                      EscapeForLog(ex.peer()->address().host()), EscapeForLog(*refusal));
        return ex.Reply(ErrorReply(403, *refusal, "cross_origin_refused"));
      }
    }

    const std::string presented =
        PresentedKey(head.Header("X-API-Key"), head.Header("Authorization"));
    std::shared_ptr<const ApiKey> broker_key;  // holds a broker key for this request
    auto key = Authenticate(presented, match.route->access, &broker_key);
    if (!key.ok()) {
      if (key.status().code() == StatusCode::kUnavailable) {
        HttpReply r = ErrorReply(503, key.status().message(), "unavailable");
        r.headers.emplace_back("Retry-After", "1");
        return ex.Reply(std::move(r));
      }
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
      std::string bucket = k == nullptr        ? "addr:" + ex.peer()->address().host()
                           : k->prefix.empty() ? "key:" + k->key
                                               : "prefix:" + k->prefix;
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
    // The JSON API's state-changing routes take JSON only, bodyless ones included: a browser sends
    // application/json across sites only after a CORS preflight, which only allowed origins pass;
    // text/plain, form and multipart bodies it sends from any page without asking.
    if (changes_state && match.route->method != kAnyServiceMethod &&
        !IsJsonMediaType(head.Header("Content-Type").value_or(""))) {
      return ex.Reply(ErrorReply(415,
                                 head.method + " " + std::string(match.route->pattern) +
                                     " needs Content-Type: application/json",
                                 "unsupported_media_type"));
    }
    if (body.size() > ctx_->options.max_body_bytes) {
      return ex.Reply(ErrorReply(
          413,
          "the request body exceeds " + std::to_string(ctx_->options.max_body_bytes) + " bytes",
          "payload_too_large"));
    }
    api_.Handle(Call{head, target.path, target.query, body, match, *key, std::move(lease)}, ex);
  }

  // Who the caller is: a key configured here, or one of the broker's accounts (broker_keys.h).
  // Without either kind of key the API is open (loopback, or --allow-anonymous).
  Result<const ApiKey*> Authenticate(std::string_view presented, Access access,
                                     std::shared_ptr<const ApiKey>* hold) {
    if (access == Access::kLeaderboard) {
      access = ctx_->options.private_leaderboard ? Access::kAccount : Access::kOpen;
    }
    const bool accounts = ctx_->broker_keys.has_accounts() || ctx_->options.broker_accounts;
    if (!accounts || access == Access::kOpen) {
      return ctx_->keys.Authorize(presented, access, ctx_->options.public_metrics);
    }
    if (access == Access::kMetrics && ctx_->options.public_metrics) {
      return static_cast<const ApiKey*>(nullptr);
    }
    if (presented.empty()) {
      return Status::Unauthenticated(
          "an API key is required (X-API-Key header or Authorization: Bearer)");
    }
    if (const ApiKey* k = ctx_->keys.Find(presented); k != nullptr) {
      RMA_RETURN_IF_ERROR(ApiKeys::Allows(*k, access));
      return k;
    }
    if (auto k = ctx_->broker_keys.Find(presented, ctx_->clock.Now()); k != nullptr) {
      RMA_RETURN_IF_ERROR(ApiKeys::Allows(*k, access));
      *hold = std::move(k);
      return hold->get();
    }
    if (!ctx_->broker_keys.heard()) {
      return Status::Unavailable("the gateway has not received the broker's API keys yet");
    }
    return Status::PermissionDenied("the API key is not valid");
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
  std::string warning;
  auto listen = CheckExposure(options_, &warning);
  if (!listen.ok()) return listen.status();
  options_.listen = *listen;
  if (!warning.empty()) spdlog::warn("{}", warning);
  context_ = std::make_shared<ApiContext>(options_, broker_options_, std::move(*keys));
  RMA_RETURN_IF_ERROR(context_->writer.Start());
  RMA_RETURN_IF_ERROR(context_->broker.Start());
  context_->parse_pool.Start();
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
    context_->parse_pool.Stop();
    context_->broker.Stop();
    context_->writer.Stop();
    return Status::Unavailable(std::string("cannot listen on ") + options_.listen + ": " +
                               e.what());
  }
  key_poller_ = std::thread([this] { PollBrokerKeys(); });
  started_ = true;
  spdlog::info("gateway listening on port {} (broker {}, {} API keys)", port(),
               broker_options_.endpoint, context_->keys.size());
  return Status::Ok();
}

void Gateway::PollBrokerKeys() {
  for (;;) {
    proto::Admin poll;
    poll.query = "keys";
    poll.args["version"] = std::to_string(context_->broker_keys.version());
    if (std::string used = context_->broker_keys.TakeUsed(); !used.empty()) {
      poll.args["used"] = std::move(used);
    }
    std::shared_ptr<ApiContext> ctx = context_;
    ctx->broker.Request(proto::Command::kAdmin, std::move(poll), kKeyPollInterval,
                        [ctx](Result<BrokerAnswer> answer) {
                          if (!answer.ok()) return;  // the next poll asks again
                          const auto* doc = std::get_if<proto::AdminReply>(&*answer);
                          if (doc == nullptr) return;  // an older broker: no accounts
                          if (Status s = ctx->broker_keys.Apply(doc->data); !s.ok()) {
                            spdlog::warn("broker keys: {}", s.message());
                          }
                        });
    MutexLock lock(&poll_mu_);
    const auto until = std::chrono::steady_clock::now() + kKeyPollInterval;
    while (!stopping_ && std::chrono::steady_clock::now() < until)
      poll_cv_.WaitUntil(poll_mu_, until);
    if (stopping_) return;
  }
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
  {
    MutexLock lock(&poll_mu_);
    stopping_ = true;
  }
  poll_cv_.SignalAll();
  if (key_poller_.joinable()) key_poller_.join();
  context_->parse_pool.Stop();  // its jobs hand their requests to the broker client: first
  context_->broker.Stop();
  context_->writer.Stop();
  endpoint_.reset();
}

}  // namespace rma::gateway
