// See handshake.h.
#include "protocol/handshake.h"

#include <cstring>

namespace rma::proto {

void UsePlainCredential(zmq::socket_t& socket, const std::string& user, const std::string& secret) {
  if (secret.empty()) return;
  socket.set(zmq::sockopt::plain_username, user);
  socket.set(zmq::sockopt::plain_password, secret);
}

std::unique_ptr<zmq::socket_t> MonitorHandshakes(zmq::context_t& context, zmq::socket_t& socket,
                                                 const std::string& name, bool disconnects) {
  const std::string endpoint = "inproc://rma-handshake-monitor-" + name;
  if (zmq_socket_monitor(
          socket.handle(), endpoint.c_str(),
          ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
              ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
              (disconnects ? ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CONNECT_RETRIED : 0)) != 0) {
    return nullptr;
  }
  auto events = std::make_unique<zmq::socket_t>(context, zmq::socket_type::pair);
  events->set(zmq::sockopt::linger, 0);
  events->connect(endpoint);
  return events;
}

void StopMonitor(zmq::socket_t& socket) {
  // Closes libzmq's sending end under the socket's monitor lock: no event is sent after it.
  (void)zmq_socket_monitor(socket.handle(), nullptr, 0);
}

std::optional<HandshakeEvent> NextHandshakeEvent(zmq::socket_t& monitor) {
  for (;;) {
    zmq::message_t event;
    zmq::message_t address;
    try {
      if (!monitor.recv(event, zmq::recv_flags::dontwait)) return std::nullopt;
      if (event.more()) (void)monitor.recv(address, zmq::recv_flags::none);
    } catch (const zmq::error_t&) {
      return std::nullopt;
    }
    // libzmq 4.x event frame: 16-bit event id, 32-bit value, in host order.
    if (event.size() < 6) continue;
    uint16_t kind = 0;
    uint32_t value = 0;
    std::memcpy(&kind, event.data(), sizeof kind);
    std::memcpy(&value, static_cast<const char*>(event.data()) + 2, sizeof value);
    using Kind = HandshakeEvent::Kind;
    if (kind == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) return HandshakeEvent{Kind::kSucceeded, 0};
    if (kind == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) return HandshakeEvent{Kind::kRefused, value};
    if (kind == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) return HandshakeEvent{Kind::kMismatch, value};
    if (kind == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) return HandshakeEvent{Kind::kBroken, value};
    if (kind == ZMQ_EVENT_DISCONNECTED || kind == ZMQ_EVENT_CONNECT_RETRIED) {
      return HandshakeEvent{Kind::kDisconnected, 0};
    }
  }
}

}  // namespace rma::proto
