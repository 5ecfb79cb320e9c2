// The client side of the broker's handshake authentication (docs/protocol.md section 2.1): the
// credential a DEALER presents, and the socket monitor that makes a refused handshake visible —
// ZeroMQ itself only retries, silently and forever. Used by rma-worker (worker token) and
// rma-gateway (client secret); the CURVE keys themselves are in curve_keys.h.
#pragma once

#include <zmq.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace rma::proto {

// Makes `socket` log in with PLAIN as `user` with `secret` (before connect). No-op for "".
void UsePlainCredential(zmq::socket_t& socket, const std::string& user, const std::string& secret);

// What a handshake with the broker came to.
struct HandshakeEvent {
  enum class Kind {
    kSucceeded,     // the peers agreed
    kRefused,       // the broker's ZAP handler answered no (`status` 400) or later (300)
    kMismatch,      // the mechanisms did not match (one side has a credential the other does not
                    // expect)
    kBroken,        // the connection ended inside the handshake, with no reason given: what a CURVE
                    // client sees when it pins the wrong broker key (and, once, when a broker stops
                    // at the wrong moment)
    kDisconnected,  // an established connection ended, or a connection was refused (only with
                    // `disconnects`, below): a client with several broker endpoints moves on
  };
  Kind kind = Kind::kSucceeded;
  uint32_t status = 0;  // the ZAP status for kRefused
  bool permanent() const {
    return kind == Kind::kMismatch || (kind == Kind::kRefused && status == 400);
  }
};

// Starts watching `socket` (before connect) for handshakes, and with `disconnects` for ended
// connections; returns the socket to poll, or null when the monitor could not be set up. `name`
// makes the inproc endpoint unique per process.
std::unique_ptr<zmq::socket_t> MonitorHandshakes(zmq::context_t& context, zmq::socket_t& socket,
                                                 const std::string& name, bool disconnects = false);

// Stops the monitor MonitorHandshakes started on `socket`. Call it before the socket it returned
// is closed: libzmq sends an event from its I/O thread and blocks while nobody reads the pair, so
// an event raised after the reader is gone (a refused reconnect every 100 ms to a dead broker)
// would stop every socket of the context for good.
void StopMonitor(zmq::socket_t& socket);

// The next handshake event reported by `monitor`, without blocking; nullopt when none is waiting.
std::optional<HandshakeEvent> NextHandshakeEvent(zmq::socket_t& monitor);

}  // namespace rma::proto
