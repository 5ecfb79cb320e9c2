// Encoding and decoding of protocol bodies (messages.h) as msgpack maps with string keys.
//
// Encode appends one body to a string. Decoder turns one untrusted body frame into a struct: it
// never throws, never allocates more than a small multiple of the input (msgpack unpack_limit on
// every container and string, plus a counting pre-pass that bounds the total number of objects in
// large frames), rejects wrong types, out-of-range numbers and missing required fields with an
// InvalidArgument naming the field, and ignores keys it does not know (so newer peers can add
// fields). A Decoder reuses its memory between calls; it is not thread-safe: give each thread its
// own.
#pragma once

#include <msgpack.hpp>

#include <string>
#include <string_view>

#include "common/status.h"
#include "protocol/limits.h"
#include "protocol/messages.h"

namespace rma::proto {

// Every message with a body, with its name in errors. A new message is added here and in
// message_fields.h.
#define RMA_PROTOCOL_MESSAGES(X) \
  X(Ready, "READY")              \
  X(Welcome, "WELCOME")          \
  X(TaskAssignment, "TASK")      \
  X(TaskResult, "RESULT")        \
  X(Progress, "PROGRESS")        \
  X(Partial, "PARTIAL")          \
  X(CallPartial, "PARTIAL")      \
  X(CancelAttempt, "CANCEL")     \
  X(Heartbeat, "HEARTBEAT")      \
  X(Manifest, "MANIFEST")        \
  X(Disconnect, "DISCONNECT")    \
  X(Submit, "SUBMIT")            \
  X(Accepted, "ACCEPTED")        \
  X(TaskInfo, "TASK_INFO")       \
  X(Get, "GET")                  \
  X(CancelTask, "CANCEL_TASK")   \
  X(List, "LIST")                \
  X(TaskList, "TASK_LIST")       \
  X(Admin, "ADMIN")              \
  X(AdminReply, "ADMIN_REPLY")   \
  X(Error, "ERROR")

#define RMA_PROTOCOL_DECLARE_ENCODE(Type, wire_name) void Encode(const Type& m, std::string* out);
RMA_PROTOCOL_MESSAGES(RMA_PROTOCOL_DECLARE_ENCODE)
#undef RMA_PROTOCOL_DECLARE_ENCODE

// A command without a body has nothing to encode.
inline void Encode(const Bodyless&, std::string*) {}

// Encodes a message of either direction (messages.h): appends its body, returns its command.
template <typename... T>
Command EncodeMessage(const std::variant<T...>& message, std::string* body) {
  return std::visit(
      [body](const auto& m) {
        Encode(m, body);
        return CommandOf(m);
      },
      message);
}

template <typename T>
std::string Encode(const T& m) {
  std::string out;
  Encode(m, &out);
  return out;
}

class Decoder {
 public:
  explicit Decoder(Limits limits = {}) : limits_(limits) {}
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

#define RMA_PROTOCOL_DECLARE_DECODE(Type, wire_name) \
  Status Decode(std::string_view body, Type* out);
  RMA_PROTOCOL_MESSAGES(RMA_PROTOCOL_DECLARE_DECODE)
#undef RMA_PROTOCOL_DECLARE_DECODE

  // Decodes one body of a message the broker sent a worker, by its command (DISCONNECT may come
  // without a body; HEARTBEAT and DRAIN have none).
  Status DecodeToWorker(Command command, std::string_view body, ToWorkerMessage* out);

  // Parses any body into a msgpack object tree that stays valid until the next call (for tools that
  // inspect generic values, such as the gateway turning ADMIN_REPLY data into JSON).
  Result<msgpack::object> Parse(std::string_view body);

  const Limits& limits() const { return limits_; }

 private:
  Limits limits_;
  msgpack::zone zone_;
};

}  // namespace rma::proto
