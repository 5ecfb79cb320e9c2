// ZeroMQ framing of the rma protocol: [identity] "RMA1" <command byte> <body>*.
//
// ReceiveMessage reads one whole multipart message without blocking and checks the envelope
// (protocol header, known command, number and size of frames) before any body is decoded;
// OutMessage builds and sends one message. The socket is always used by the thread that owns it;
// these helpers keep no state of their own. Sends never block: a full peer queue or an unroutable
// peer comes back as a Status for the caller to handle.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "protocol/codec.h"
#include "protocol/limits.h"
#include "protocol/messages.h"

namespace rma::proto {

// One received message. Bodies are views into the frames this object owns: valid until the next
// receive.
class InMessage {
 public:
  const std::string& identity() const { return identity_; }
  Command command() const { return command_; }
  size_t body_count() const { return bodies_.size(); }
  std::string_view body(size_t i) const { return bodies_[i]; }
  // Total bytes of all frames (for metrics).
  size_t wire_bytes() const { return wire_bytes_; }
  // The sender's IP address as libzmq saw the connection ("" for inproc/ipc peers).
  std::string PeerAddress() const;
  // Who the handshake authenticated the sender as (the broker's ZAP handler's user id: a CURVE
  // public key in Z85, the PLAIN user), "" when nobody was authenticated.
  std::string UserId() const;

 private:
  friend Result<bool> ReceiveMessage(zmq::socket_t&, bool, const Limits&, InMessage*);
  std::vector<zmq::message_t> frames_;
  std::vector<std::string_view> bodies_;
  std::string identity_;
  Command command_ = Command::kHeartbeat;
  size_t wire_bytes_ = 0;
};

// Reads one message if one is waiting. Returns true when `msg` holds a valid envelope, false when
// nothing was waiting, and InvalidArgument when a message arrived but its envelope is malformed
// (the whole message is consumed; msg->identity() still names the sender so the caller can answer
// ERROR).
Result<bool> ReceiveMessage(zmq::socket_t& socket, bool has_identity, const Limits& limits,
                            InMessage* msg);

// Bytes of message bodies handed to ZeroMQ and not yet written to their connection (or dropped
// with it). ZeroMQ releases a body it was given without a copy from its I/O thread once the body is
// written out, so this is the only honest measure of what a peer that does not read makes the
// process hold; it is atomic for that reason. A counter may have a parent that counts the same
// bytes again (all peers together).
class InFlightBytes {
 public:
  explicit InFlightBytes(std::shared_ptr<InFlightBytes> parent = nullptr)
      : parent_(std::move(parent)) {}
  int64_t bytes() const { return bytes_.load(std::memory_order_acquire); }
  // Counts `n` more (or, negative, fewer) bytes here and in every parent.
  void Add(int64_t n) {
    for (InFlightBytes* c = this; c != nullptr; c = c->parent_.get()) {
      c->bytes_.fetch_add(n, std::memory_order_acq_rel);
    }
  }

 private:
  std::atomic<int64_t> bytes_{0};
  std::shared_ptr<InFlightBytes> parent_;
};

class OutMessage {
 public:
  explicit OutMessage(Command command) : command_(command) {}
  // Counted bodies are uncounted when the message goes without handing them over, so a message
  // is moved, never copied.
  OutMessage(OutMessage&& other) noexcept = default;
  OutMessage& operator=(OutMessage&& other) noexcept;
  OutMessage(const OutMessage&) = delete;
  OutMessage& operator=(const OutMessage&) = delete;
  ~OutMessage() { Clear(); }

  Command command() const { return command_; }
  // Packed (a peer that said it reads them: READY/WELCOME `packed`): consecutive small bodies
  // travel concatenated in one frame — msgpack is self-delimiting — so CURVE seals one box for a
  // batch instead of one per body. Set before the first body.
  void set_packed(bool packed) { packed_ = packed; }
  void AddBody(std::string body) {
    ++body_count_;
    if (Packable(body.size())) {
      bodies_.back().append(body);
      return;
    }
    bodies_.push_back(std::move(body));
  }
  // A body whose bytes `in_flight` counts from now until ZeroMQ has written it out, or until this
  // message is dropped without handing it over (only the rvalue Send hands bodies to ZeroMQ).
  void AddBody(std::string body, std::shared_ptr<InFlightBytes> in_flight);
  template <typename T>
  void Add(const T& message) {
    ++body_count_;
    if (CanPackOntoLast()) {
      // Encoded straight onto the end of the frame it shares (Encode appends).
      Encode(message, &bodies_.back());
      return;
    }
    bodies_.emplace_back();
    Encode(message, &bodies_.back());
  }
  // Bodies (messages) added, packed or not.
  size_t body_count() const { return body_count_; }
  // The bytes of its body frames (what holding it costs).
  size_t body_bytes() const {
    size_t n = 0;
    for (const std::string& b : bodies_) n += b.size();
    return n;
  }
  bool empty() const { return body_count_ == 0; }
  void Clear();

  // Sends without blocking. `identity` is the routing id on a ROUTER socket and empty on a DEALER.
  // Unavailable: the peer is gone (EHOSTUNREACH with ZMQ_ROUTER_MANDATORY). ResourceExhausted: its
  // queue is full. The bodies are kept, so a failed send can be retried or dropped by the caller.
  Status Send(zmq::socket_t& socket, std::string_view identity = {}) const&;
  // The same, handing large bodies to ZeroMQ without copying them (the message is spent; on a
  // failure before any body left, the bodies are still here).
  Status Send(zmq::socket_t& socket, std::string_view identity = {}) &&;

 private:
  template <typename Body>
  Status SendFrames(zmq::socket_t& socket, std::string_view identity, Body&& body_frame) const;

  // A frame of packed bodies grows to about this size, then the next one starts.
  static constexpr size_t kPackedFrameBytes = 64 * 1024;
  // The last frame may take more bodies: packing is on, it is under the frame size and not a
  // counted body (which ZeroMQ must release on its own).
  bool CanPackOntoLast() const {
    return packed_ && !bodies_.empty() && bodies_.back().size() < kPackedFrameBytes &&
           (in_flight_.size() < bodies_.size() || !in_flight_.back());
  }
  // ... and a body of `next` bytes fits in it.
  bool Packable(size_t next) const {
    return CanPackOntoLast() && bodies_.back().size() + next <= kPackedFrameBytes;
  }

  Command command_;
  bool packed_ = false;
  size_t body_count_ = 0;
  std::vector<std::string> bodies_;  // frames: one body each, or several packed
  // Per body, when any is counted; null once handed to ZeroMQ.
  std::vector<std::shared_ptr<InFlightBytes>> in_flight_;
};

// Encodes one message and sends it.
template <typename T>
Status SendOne(zmq::socket_t& socket, std::string_view identity, Command command,
               const T& message) {
  OutMessage out(command);
  out.Add(message);
  return out.Send(socket, identity);
}
// A message without body (HEARTBEAT from the broker, DRAIN from a worker).
Status SendEmpty(zmq::socket_t& socket, std::string_view identity, Command command);

// Options every rma socket gets: no linger on close, the frame-size limit, and (ROUTER) mandatory
// routing so a send to a gone peer is an error instead of a silent drop.
void ConfigureSocket(zmq::socket_t& socket, const Limits& limits, bool is_router,
                     int high_water_mark = 100000);

// The endpoint a socket actually bound to (resolves "tcp://127.0.0.1:*" to the chosen port).
std::string BoundEndpoint(zmq::socket_t& socket);

}  // namespace rma::proto
