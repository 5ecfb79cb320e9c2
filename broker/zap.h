// Who may connect to the broker at all: the ZeroMQ authentication protocol (ZAP, RFC 27) handler.
//
// libzmq asks it about every connection to an endpoint that requires authentication before a single
// message of that peer is accepted, so a peer without the right credential never gets a frame into
// the broker (no READY to refuse, no body to decode, no memory spent). Today the credential is a
// shared secret over the PLAIN mechanism: the worker token on the worker endpoint, the client
// secret on the client endpoint; a later mechanism (CURVE keys) plugs into the same Decide().
//
// ZapPolicy is the decision, a plain function of the request, a clock and its counters (unit-tested
// with a fake clock). ZapHandler is the socket side: a REP socket on inproc://zeromq.zap.01 in the
// broker's context, polled by the broker loop thread, which is its only user.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <string>
#include <unordered_map>

#include "common/clock.h"
#include "common/status.h"

namespace rma::broker {

// The two domains the broker's sockets announce (ZMQ_ZAP_DOMAIN).
inline constexpr const char* kWorkerDomain = "workers";
inline constexpr const char* kClientDomain = "clients";
// The PLAIN user names each kind of peer presents (the password is the secret).
inline constexpr const char* kWorkerUser = "worker";
inline constexpr const char* kClientUser = "client";

struct ZapRequest {
  std::string domain;     // kWorkerDomain or kClientDomain
  std::string address;    // the peer's IP address
  std::string mechanism;  // "PLAIN", "NULL", "CURVE"
  std::string username;   // PLAIN
  std::string password;   // PLAIN
};

struct ZapDecision {
  bool allowed = false;
  std::string status_code;  // "200", "400" (refused), "300" (try later)
  std::string status_text;
  std::string user_id;  // who the peer is, as libzmq will report it (message property User-Id)
};

// Token buckets by peer address, bounded in entries: how often one address may do something (a
// handshake, a READY). Plain logic with an injected clock.
class AddressLimiter {
 public:
  AddressLimiter(double per_s, double burst, size_t max_addresses = 100000)
      : per_s_(per_s), burst_(burst), max_addresses_(max_addresses) {}
  // Takes one token for `address`; false when it has none left.
  bool Take(const std::string& address, Time now);
  size_t addresses() const { return buckets_.size(); }

 private:
  struct Bucket {
    double tokens = 0;
    Time at{};
  };
  double per_s_;
  double burst_;
  size_t max_addresses_;
  std::unordered_map<std::string, Bucket> buckets_;
};

struct ZapPolicyOptions {
  std::string worker_token;   // "" = the worker endpoint does not authenticate
  std::string client_secret;  // "" = the client endpoint does not authenticate
  // Handshakes per peer address: a burst, then a steady rate. Beyond it a peer is told to come
  // back later, so a secret cannot be guessed at wire speed.
  double handshakes_per_s = 5;
  double handshake_burst = 50;
  size_t max_addresses = 100000;  // the per-address table is bounded too
};

class ZapPolicy {
 public:
  ZapPolicy(ZapPolicyOptions options, const Clock* clock);
  ZapDecision Decide(const ZapRequest& request);

  uint64_t refused() const { return refused_; }
  uint64_t throttled() const { return throttled_; }

 private:
  ZapPolicyOptions options_;
  const Clock* clock_;
  AddressLimiter handshakes_;
  uint64_t refused_ = 0;
  uint64_t throttled_ = 0;
};

class ZapHandler {
 public:
  ZapHandler(zmq::context_t& context, ZapPolicy* policy);
  // Binds the handler endpoint; must run before any socket that needs it binds.
  Status Start();
  zmq::socket_t& socket() { return socket_; }
  // Answers every request waiting (without blocking).
  void HandlePending();

 private:
  zmq::socket_t socket_;
  ZapPolicy* policy_;
};

}  // namespace rma::broker
