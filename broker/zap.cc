// See zap.h. The request and reply frames are those of RFC 27 (ZAP 1.0).
#include "broker/zap.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

#include "protocol/curve_keys.h"

namespace rma::broker {

namespace {

// Constant time: how much of a guess was right must not show in the answer's timing.
bool SecretsEqual(const std::string& want, const std::string& got) {
  if (want.empty()) return false;
  unsigned diff = static_cast<unsigned>(want.size() ^ got.size());
  for (size_t i = 0; i < got.size(); ++i) {
    diff |= static_cast<unsigned>(got[i] ^ want[i % want.size()]);
  }
  return diff == 0;
}

ZapDecision Allow(std::string user_id) { return {true, "200", "OK", std::move(user_id)}; }
ZapDecision Refuse(std::string why) { return {false, "400", std::move(why), ""}; }

}  // namespace

bool AddressLimiter::Take(const std::string& address, Time now) {
  auto level = [&](const Bucket& b) {
    return std::min(burst_, b.tokens + ToSecondsF(now - b.at) * per_s_);
  };
  auto it = buckets_.find(address);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_addresses_) {
      // Forget the addresses whose buckets are full again: they have been quiet.
      for (auto b = buckets_.begin(); b != buckets_.end();) {
        b = level(b->second) >= burst_ ? buckets_.erase(b) : std::next(b);
      }
      if (buckets_.size() >= max_addresses_) return false;
    }
    it = buckets_.emplace(address, Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  b.tokens = level(b);
  b.at = now;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

ZapPolicy::ZapPolicy(ZapPolicyOptions options, const Clock* clock)
    : options_(std::move(options)),
      clock_(clock),
      handshakes_(options_.handshakes_per_s, options_.handshake_burst, options_.max_addresses) {}

ZapDecision ZapPolicy::Decide(const ZapRequest& r) {
  if (!handshakes_.Take(r.address, clock_->Now())) {
    ++throttled_;
    return {false, "300", "too many connection attempts from " + r.address + "; retry later", ""};
  }
  const bool workers = r.domain == kWorkerDomain;
  const bool clients = r.domain == kClientDomain;
  const bool curve = workers ? options_.worker_curve : options_.client_curve;
  const std::string& secret = workers ? options_.worker_token : options_.client_secret;
  ZapDecision d;
  if (!workers && !clients) {
    d = Refuse("unknown domain");
  } else if (curve) {
    if (r.mechanism != "CURVE" || r.curve_key.empty()) {
      d = Refuse("this endpoint needs CURVE");
    } else if (workers && revoked_.count(r.curve_key) > 0) {
      ++revoked_keys_;
      d = Refuse("revoked worker key " + r.curve_key);
    } else if (workers && (WorkerKeyAdmitted(r.curve_key) || options_.accounts)) {
      // With accounts an unknown key gets through the handshake only to enrol: its READY must
      // carry an enrolment token (BrokerLoop), or it is refused there.
      d = Allow(r.curve_key);
    } else if (clients && options_.client_keys.count(r.curve_key)) {
      d = Allow(r.curve_key);
    } else {
      ++unknown_keys_;
      d = Refuse(workers ? "unknown worker key " + r.curve_key
                         : "unknown client key " + r.curve_key);
    }
  } else if (secret.empty()) {
    // No credential configured: the socket does not ask for one (NULL), and anything else is a
    // client that expects a check the broker does not make.
    d = r.mechanism == "NULL" ? Allow("") : Refuse("this endpoint takes no credentials");
  } else if (r.mechanism != "PLAIN") {
    d = Refuse("this endpoint needs PLAIN credentials");
  } else if (r.username != (workers ? kWorkerUser : kClientUser) ||
             !SecretsEqual(secret, r.password)) {
    d = Refuse(workers ? "invalid worker token" : "invalid client secret");
  } else {
    d = Allow(r.username);
  }
  if (!d.allowed) {
    ++refused_;
    spdlog::warn("refused a {} connection from {}: {}", workers ? "worker" : "client", r.address,
                 d.status_text);
  }
  return d;
}

ZapHandler::ZapHandler(zmq::context_t& context, ZapPolicy* policy)
    : socket_(context, zmq::socket_type::rep), policy_(policy) {}

Status ZapHandler::Start() {
  try {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind("inproc://zeromq.zap.01");
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    return Status::Internal(std::string("cannot start the authentication handler: ") + e.what());
  }
}

void ZapHandler::HandlePending() {
  for (int budget = 0; budget < 256; ++budget) {
    std::vector<zmq::message_t> frames;
    try {
      zmq::message_t frame;
      if (!socket_.recv(frame, zmq::recv_flags::dontwait)) return;
      frames.push_back(std::move(frame));
      while (frames.back().more() && frames.size() < 16) {
        zmq::message_t next;
        (void)socket_.recv(next, zmq::recv_flags::none);
        frames.push_back(std::move(next));
      }
    } catch (const zmq::error_t& e) {
      spdlog::warn("authentication handler: {}", e.what());
      return;
    }
    // version, request_id, domain, address, identity, mechanism, credentials...
    auto text = [&](size_t i) { return i < frames.size() ? frames[i].to_string() : std::string(); };
    ZapRequest request{text(2), text(3), text(5), text(6), text(7), {}};
    // CURVE's one credential frame is the client's 32-byte public key.
    if (request.mechanism == "CURVE") {
      request.curve_key = proto::Z85FromBinaryKey(text(6));
      request.username.clear();
    }
    ZapDecision d = text(0) == "1.0" ? policy_->Decide(request)
                                     : ZapDecision{false, "500", "unknown ZAP version", ""};
    const std::string request_id = text(1);
    try {
      const auto more = zmq::send_flags::sndmore;
      socket_.send(zmq::buffer(std::string_view("1.0")), more);
      socket_.send(zmq::buffer(request_id), more);
      socket_.send(zmq::buffer(d.status_code), more);
      socket_.send(zmq::buffer(d.status_text), more);
      socket_.send(zmq::buffer(d.user_id), more);
      socket_.send(zmq::buffer(std::string_view()), zmq::send_flags::none);
    } catch (const zmq::error_t& e) {
      spdlog::warn("authentication handler: {}", e.what());
      return;
    }
  }
}

}  // namespace rma::broker
