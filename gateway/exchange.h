// How one HTTP request is answered: the gateway's shared context, the JSON replies every route
// uses, and the two ways an answer leaves — at once on the reactor thread (Exchange::Reply), or
// later from another thread through a duplicate of the connection's socket (Deferred). Nothing
// here calls Pistache's ResponseWriter (socket_writer.h says why). Internal to gateway/.
#pragma once

#include <pistache/peer.h>
#include <spdlog/spdlog.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/mutex.h"
#include "gateway/admission.h"
#include "gateway/auth.h"
#include "gateway/broker_client.h"
#include "gateway/broker_keys.h"
#include "gateway/cors.h"
#include "gateway/http_wire.h"
#include "gateway/metrics.h"
#include "gateway/openai.h"
#include "gateway/options.h"
#include "gateway/rate_limiter.h"
#include "gateway/router.h"
#include "gateway/socket_writer.h"
#include "gateway/task_json.h"
#include "gateway/work_pool.h"

namespace rma::gateway {

namespace Tcp = Pistache::Tcp;

// Everything the gateway's threads share. Immutable after start except for the parts with their own
// synchronisation (metrics are atomics, the limiter and the writer lock inside).
struct ApiContext {
  ApiContext(GatewayOptions o, BrokerClientOptions b, ApiKeys k)
      : options(std::move(o)),
        keys(std::move(k)),
        cors(options.cors_origins),
        connections(std::make_shared<ConnectionLimiter>(options.max_connections_per_ip)),
        bodies(std::make_shared<BodyBudget>(options.large_body_budget)),
        parse_pool(2),
        broker(std::move(b)) {}
  GatewayOptions options;
  SocketWriter writer;
  ApiKeys keys;
  BrokerKeys broker_keys;  // the broker's accounts' keys, polled (broker_keys.h)
  CorsPolicy cors;
  SystemClock clock;
  RateLimiter limiter{&clock};
  HttpMetrics metrics{RouteNames()};
  ModelMetrics model_metrics;  // the OpenAI routes' per-model figures
  Time started_at = clock.Now();
  std::shared_ptr<ConnectionLimiter> connections;
  std::shared_ptr<BodyBudget> bodies;
  // Parses and encodes bodies over options.large_body_bytes; jobs call the broker client below.
  WorkPool parse_pool;
  // Last, so it is destroyed first: answer callbacks it may still hold use everything above.
  BrokerClient broker;
};

// ---- Replies ------------------------------------------------------------------------------------

HttpReply JsonReply(int status, const nlohmann::json& body);
HttpReply ErrorReply(int status, std::string_view message, std::string_view code);
// The HTTP status for a broker ERROR code (invalid_argument -> 400, not_found -> 404, ...).
int HttpStatusFor(std::string_view code);
HttpReply BrokerErrorReply(const proto::Error& e);
// A failure of the request itself, not an answer from the broker: 503 `unavailable` when it never
// left the gateway (Unavailable: the broker is unreachable or not connected, the gateway is
// stopping), so a retry cannot duplicate anything; 504 `deadline_exceeded` with
// "outcome_unknown": true when it was handed to the broker's socket and no answer came
// (DeadlineExceeded: the broker may or may not have acted on it).
HttpReply TransportErrorReply(const Status& s);
HttpReply UnexpectedAnswer();

// Tells the request in progress on a connection that its client closed it: a streamed call then
// cancels its task, so the worker stops its backend. One per connection; the handler sets it (any
// thread) and clears it before its answer ends, the reactor fires it when Pistache reports the
// disconnection.
class DisconnectHook {
 public:
  // Returns a token for Clear: a late Clear of an earlier request never removes a newer one.
  uint64_t Set(std::function<void()> on_gone) {
    MutexLock lock(&mu_);
    on_gone_ = std::move(on_gone);
    return ++token_;
  }
  void Clear(uint64_t token) {
    MutexLock lock(&mu_);
    if (token == token_) on_gone_ = nullptr;
  }
  void Fire() {
    std::function<void()> f;
    {
      MutexLock lock(&mu_);
      f = std::move(on_gone_);
      on_gone_ = nullptr;
    }
    if (f) f();
  }

 private:
  Mutex mu_;
  std::function<void()> on_gone_ RMA_GUARDED_BY(mu_);
  uint64_t token_ RMA_GUARDED_BY(mu_) = 0;
};

// What every answer to one request carries and where it is accounted.
struct ReplyTo {
  bool keep_alive = true;
  bool head_only = false;
  int route = -1;  // index into Routes(), for metrics
  Time started{};
  HeaderList extra;                         // CORS
  std::shared_ptr<AnswerGate> gate;         // null for answers that close the connection anyway
  std::shared_ptr<DisconnectHook> on_gone;  // null for answers given at once
};

void Deliver(ApiContext& ctx, int fd, OwnedFd owned, const ReplyTo& to, HttpReply reply);

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

  // The answer will be streamed instead (call_stream.h): the socket and where the answer goes.
  // Null fd when it was answered already.
  std::pair<OwnedFd, ReplyTo> TakeForStream() {
    if (done_) return {OwnedFd(), to_};
    done_ = true;
    return {std::move(fd_), to_};
  }
  const ReplyTo& to() const { return to_; }

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

}  // namespace rma::gateway
