// Who may connect to the broker at all: the ZeroMQ authentication protocol (ZAP, RFC 27) handler.
//
// libzmq asks it about every connection to an endpoint that requires authentication before a single
// message of that peer is accepted, so a peer without the right credential never gets a frame into
// the broker (no READY to refuse, no body to decode, no memory spent). The credential is either a
// CURVE public key (RFC 26: the link is encrypted too; the client endpoint admits the keys of
// --client-keys-file, the worker endpoint those of --worker-keys-file or, without one, any key,
// which is then the worker's identity), or a shared secret over PLAIN (the worker token, the
// client secret), which only authenticates.
//
// ZapPolicy is the decision, a plain function of the request, a clock and its counters (unit-tested
// with a fake clock). ZapHandler is the socket side: a REP socket on inproc://zeromq.zap.01 in the
// broker's context, polled by the broker loop thread, which is its only user.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <optional>
#include <set>
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
  std::string curve_key;  // CURVE: the peer's public key, Z85
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
  std::string worker_token;   // PLAIN on the worker endpoint ("" = not PLAIN)
  std::string client_secret;  // PLAIN on the client endpoint ("" = not PLAIN)
  bool worker_curve = false;  // CURVE on the worker endpoint
  bool client_curve = false;  // CURVE on the client endpoint
  // CURVE: the worker keys admitted (nullopt: any key), and the client keys admitted.
  std::optional<std::set<std::string>> worker_keys;
  std::set<std::string> client_keys;
  // Accounts (a database): keys enrolled to an account are admitted as well as the listed ones;
  // an unknown key passes the handshake only to enrol (its READY must carry an enrolment token)
  // unless `allow_unenrolled` (then it is admitted without an account, as without a database).
  bool accounts = false;
  bool allow_unenrolled = false;
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
  // New key lists (read again on SIGHUP); connections already made stay.
  void SetWorkerKeys(std::optional<std::set<std::string>> keys) {
    options_.worker_keys = std::move(keys);
  }
  void SetClientKeys(std::set<std::string> keys) { options_.client_keys = std::move(keys); }
  // The worker keys on record: enrolled (admitted) and revoked (refused at the handshake).
  void SetCredentials(std::set<std::string> enrolled, std::set<std::string> revoked) {
    enrolled_ = std::move(enrolled);
    revoked_ = std::move(revoked);
  }
  // Whether a worker with this CURVE key may be (or stay) registered now.
  bool WorkerKeyAdmitted(const std::string& key) const {
    if (revoked_.count(key) > 0) return false;
    if (options_.worker_keys && options_.worker_keys->count(key) > 0) return true;
    if (enrolled_.count(key) > 0) return true;
    if (options_.accounts) return options_.allow_unenrolled;
    return !options_.worker_keys;
  }
  bool accounts() const { return options_.accounts; }
  const std::optional<std::set<std::string>>& worker_keys() const { return options_.worker_keys; }

  uint64_t refused() const { return refused_; }
  uint64_t throttled() const { return throttled_; }
  uint64_t unknown_keys() const { return unknown_keys_; }
  uint64_t revoked_keys() const { return revoked_keys_; }

 private:
  ZapPolicyOptions options_;
  const Clock* clock_;
  AddressLimiter handshakes_;
  uint64_t refused_ = 0;
  uint64_t throttled_ = 0;
  uint64_t unknown_keys_ = 0;
  uint64_t revoked_keys_ = 0;
  std::set<std::string> enrolled_;
  std::set<std::string> revoked_;
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
