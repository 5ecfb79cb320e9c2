// See frames.h.
#include "protocol/frames.h"

#include "protocol/msgpack_io.h"

#include <fmt/format.h>

#include <cerrno>

namespace rma::proto {

Result<bool> ReceiveMessage(zmq::socket_t& socket, bool has_identity, const Limits& limits,
                            InMessage* msg) {
  msg->bodies_.clear();
  msg->identity_.clear();
  msg->wire_bytes_ = 0;
  // Frames are reused between messages: reset their content but keep the vector's capacity.
  const size_t max_frames = limits.max_bodies + 2 + (has_identity ? 1 : 0);
  size_t count = 0;
  try {
    zmq::message_t scratch;
    for (;;) {
      zmq::message_t* frame;
      if (count < max_frames) {
        if (msg->frames_.size() <= count) msg->frames_.emplace_back();
        frame = &msg->frames_[count];
      } else {
        frame = &scratch;  // over the limit: read and discard
      }
      auto got = socket.recv(*frame, zmq::recv_flags::dontwait);
      if (!got) {
        if (count == 0) return false;
        break;  // cannot happen with atomic multipart delivery; treat as end of message
      }
      msg->wire_bytes_ += frame->size();
      ++count;
      if (!frame->more()) break;
    }
  } catch (const zmq::error_t& e) {
    if (e.num() == ETERM) return Status::Cancelled("context terminated");
    return Status::Unavailable(std::string("receive failed: ") + e.what());
  }

  size_t index = 0;
  if (has_identity) {
    msg->identity_.assign(static_cast<const char*>(msg->frames_[0].data()), msg->frames_[0].size());
    index = 1;
  }
  if (count > max_frames) {
    return Status::InvalidArgument("message has more than " + std::to_string(limits.max_bodies) +
                                   " body frames");
  }
  if (count < index + 2)
    return Status::InvalidArgument("message is missing the header or command frame");
  const zmq::message_t& header = msg->frames_[index];
  if (header.to_string_view() != kProtocolHeader) {
    return Status::InvalidArgument("unknown protocol header (expected \"RMA1\")");
  }
  const zmq::message_t& command = msg->frames_[index + 1];
  if (command.size() != 1) return Status::InvalidArgument("command frame must be one byte");
  uint8_t byte = *static_cast<const uint8_t*>(command.data());
  if (!IsKnownCommand(byte)) {
    return Status::InvalidArgument(fmt::format("unknown command 0x{:02x}", byte));
  }
  msg->command_ = static_cast<Command>(byte);
  for (size_t i = index + 2; i < count; ++i) {
    std::string_view frame(static_cast<const char*>(msg->frames_[i].data()),
                           msg->frames_[i].size());
    if (frame.empty()) {
      msg->bodies_.emplace_back(frame);  // the decoder says what is wrong with it
      continue;
    }
    // A frame holds one body, or several packed: msgpack maps one after the other. A frame that
    // does not start with a map, or holds one malformed body, goes to the decoder as it is, which
    // says what is wrong with it.
    auto is_map = [](std::string_view f) {
      const auto b = static_cast<uint8_t>(f[0]);
      return (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf;
    };
    if (!is_map(frame)) {
      msg->bodies_.emplace_back(frame);
      continue;
    }
    while (!frame.empty()) {
      auto bytes = internal::MsgpackObjectBytes(frame);
      const bool first = frame.size() == msg->frames_[i].size();
      if (!bytes.ok() && first) {
        msg->bodies_.emplace_back(frame);
        break;
      }
      if (!bytes.ok() || !is_map(frame)) {
        msg->bodies_.clear();
        return Status::InvalidArgument(
            "a packed body frame holds something after its bodies that is not a msgpack map");
      }
      if (msg->bodies_.size() == limits.max_bodies) {
        msg->bodies_.clear();
        return Status::InvalidArgument("message has more than " +
                                       std::to_string(limits.max_bodies) + " bodies");
      }
      msg->bodies_.push_back(frame.substr(0, *bytes));
      frame.remove_prefix(*bytes);
    }
  }
  return true;
}

namespace {
// Bodies at least this large go to ZeroMQ without a copy: the message takes the string's buffer
// and frees it once sent. Smaller ones are cheaper to copy than to allocate an owner for.
constexpr size_t kZeroCopyMinBytes = 16 * 1024;

void FreeString(void*, void* hint) { delete static_cast<std::string*>(hint); }

// A body whose bytes are counted while ZeroMQ holds it; freed (and uncounted) on ZeroMQ's I/O
// thread once written out or dropped.
struct CountedBody {
  std::string body;
  std::shared_ptr<InFlightBytes> in_flight;
};
void FreeCountedBody(void*, void* hint) {
  auto* owned = static_cast<CountedBody*>(hint);
  owned->in_flight->Add(-static_cast<int64_t>(owned->body.size()));
  delete owned;
}
}  // namespace

template <typename Body>
Status OutMessage::SendFrames(zmq::socket_t& socket, std::string_view identity,
                              Body&& body_frame) const {
  try {
    const auto more = zmq::send_flags::sndmore | zmq::send_flags::dontwait;
    if (!identity.empty()) {
      if (!socket.send(zmq::buffer(identity.data(), identity.size()), more)) {
        return Status::ResourceExhausted("peer queue full");
      }
    }
    // Once the first frame is queued, the rest of a multipart message cannot fail with EAGAIN.
    if (!socket.send(zmq::buffer(kProtocolHeader.data(), kProtocolHeader.size()), more)) {
      return Status::ResourceExhausted("peer queue full");
    }
    const uint8_t byte = static_cast<uint8_t>(command_);
    const auto last = zmq::send_flags::dontwait;
    (void)socket.send(zmq::buffer(&byte, 1), bodies_.empty() ? last : more);
    for (size_t i = 0; i < bodies_.size(); ++i) {
      body_frame(socket, i, i + 1 == bodies_.size() ? last : more);
    }
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return Status::Unavailable("peer is gone");
    if (e.num() == ETERM) return Status::Cancelled("context terminated");
    return Status::Unavailable(std::string("send failed: ") + e.what());
  }
}

std::string InMessage::UserId() const {
  // The properties travel with the frames the peer sent, not with the identity frame a ROUTER
  // makes up: read them from the last one.
  if (frames_.empty()) return {};
  const char* user = zmq_msg_gets(frames_.back().handle(), "User-Id");
  return user != nullptr ? std::string(user) : std::string();
}

std::string InMessage::PeerAddress() const {
  if (frames_.empty()) return {};
  const char* address = zmq_msg_gets(frames_.back().handle(), "Peer-Address");
  return address != nullptr ? std::string(address) : std::string();  // null: not a TCP peer
}

Status OutMessage::Send(zmq::socket_t& socket, std::string_view identity) const& {
  return SendFrames(socket, identity, [this](zmq::socket_t& s, size_t i, zmq::send_flags flags) {
    (void)s.send(zmq::buffer(bodies_[i].data(), bodies_[i].size()), flags);
  });
}

Status OutMessage::Send(zmq::socket_t& socket, std::string_view identity) && {
  return SendFrames(socket, identity, [this](zmq::socket_t& s, size_t i, zmq::send_flags flags) {
    std::string& body = bodies_[i];
    if (i < in_flight_.size() && in_flight_[i]) {
      // Counted since AddBody. From here the ZeroMQ message owns `owned`: sent or not, closing it
      // calls FreeCountedBody, which uncounts it.
      auto* owned = new CountedBody{std::move(body), std::move(in_flight_[i])};
      (void)s.send(zmq::message_t(owned->body.data(), owned->body.size(), FreeCountedBody, owned),
                   flags);
      return;
    }
    if (body.size() < kZeroCopyMinBytes) {
      (void)s.send(zmq::buffer(body.data(), body.size()), flags);
      return;
    }
    auto* owned = new std::string(std::move(body));
    (void)s.send(zmq::message_t(owned->data(), owned->size(), FreeString, owned), flags);
  });
}

void OutMessage::AddBody(std::string body, std::shared_ptr<InFlightBytes> in_flight) {
  if (!in_flight) return AddBody(std::move(body));
  ++body_count_;  // a counted body is a frame of its own, never packed
  in_flight->Add(static_cast<int64_t>(body.size()));
  in_flight_.resize(bodies_.size());
  in_flight_.push_back(std::move(in_flight));
  bodies_.push_back(std::move(body));
}

void OutMessage::Clear() {
  for (size_t i = 0; i < in_flight_.size(); ++i) {
    if (in_flight_[i]) in_flight_[i]->Add(-static_cast<int64_t>(bodies_[i].size()));
  }
  in_flight_.clear();
  bodies_.clear();
  body_count_ = 0;
}

OutMessage& OutMessage::operator=(OutMessage&& other) noexcept {
  if (this != &other) {
    Clear();
    command_ = other.command_;
    packed_ = other.packed_;
    body_count_ = other.body_count_;
    bodies_ = std::move(other.bodies_);
    in_flight_ = std::move(other.in_flight_);
    other.bodies_.clear();
    other.in_flight_.clear();
    other.body_count_ = 0;
  }
  return *this;
}

Status SendEmpty(zmq::socket_t& socket, std::string_view identity, Command command) {
  return OutMessage(command).Send(socket, identity);
}

void ConfigureSocket(zmq::socket_t& socket, const Limits& limits, bool is_router,
                     int high_water_mark) {
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(limits.max_frame_bytes));
  socket.set(zmq::sockopt::sndhwm, high_water_mark);
  socket.set(zmq::sockopt::rcvhwm, high_water_mark);
  if (is_router) socket.set(zmq::sockopt::router_mandatory, true);
}

std::string BoundEndpoint(zmq::socket_t& socket) { return socket.get(zmq::sockopt::last_endpoint); }

}  // namespace rma::proto
