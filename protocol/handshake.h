// The client side of the broker's handshake authentication (docs/protocol.md section 2.1): the
// credential a DEALER presents, and the socket monitor that makes a refused handshake visible —
// ZeroMQ itself only retries, silently and forever. Used by rma-worker (worker token) and
// rma-gateway (client secret); the next release adds CURVE keys here.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace rma::proto {

// Makes `socket` log in with PLAIN as `user` with `secret` (before connect). No-op for "".
void UsePlainCredential(zmq::socket_t& socket, const std::string& user, const std::string& secret);

// A handshake the broker refused.
struct HandshakeFailure {
  // true: the broker's ZAP handler answered (status 400: refused; 300: try later). false: the
  // mechanisms did not match (one side has a credential the other does not expect).
  bool by_authentication = false;
  uint32_t status = 0;  // the ZAP status for by_authentication
  bool permanent() const { return !by_authentication || status == 400; }
};

// Starts watching `socket` (before connect) for failed handshakes; returns the socket to poll, or
// null when the monitor could not be set up. `name` makes the inproc endpoint unique per process.
std::unique_ptr<zmq::socket_t> MonitorHandshakes(zmq::context_t& context, zmq::socket_t& socket,
                                                 const std::string& name);

// The next failure reported by `monitor`, without blocking; nullopt when none is waiting.
std::optional<HandshakeFailure> NextHandshakeFailure(zmq::socket_t& monitor);

}  // namespace rma::proto
