// Encoding and decoding of protocol bodies (messages.h) as msgpack maps with string keys.
//
// Encode* appends one body to a string. Decoder turns one untrusted body frame into a struct: it
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
#include "schemas/limits.h"
#include "schemas/messages.h"

namespace rma::proto {

void Encode(const Ready& m, std::string* out);
void Encode(const Welcome& m, std::string* out);
void Encode(const TaskAssignment& m, std::string* out);
void Encode(const TaskResult& m, std::string* out);
void Encode(const Progress& m, std::string* out);
void Encode(const CancelAttempt& m, std::string* out);
void Encode(const Heartbeat& m, std::string* out);
void Encode(const Manifest& m, std::string* out);
void Encode(const Disconnect& m, std::string* out);
void Encode(const Submit& m, std::string* out);
void Encode(const Accepted& m, std::string* out);
void Encode(const TaskInfo& m, std::string* out);
void Encode(const Get& m, std::string* out);
void Encode(const CancelTask& m, std::string* out);
void Encode(const List& m, std::string* out);
void Encode(const TaskList& m, std::string* out);
void Encode(const Admin& m, std::string* out);
void Encode(const AdminReply& m, std::string* out);
void Encode(const Error& m, std::string* out);

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

  Status Decode(std::string_view body, Ready* out);
  Status Decode(std::string_view body, Welcome* out);
  Status Decode(std::string_view body, TaskAssignment* out);
  Status Decode(std::string_view body, TaskResult* out);
  Status Decode(std::string_view body, Progress* out);
  Status Decode(std::string_view body, CancelAttempt* out);
  Status Decode(std::string_view body, Heartbeat* out);
  Status Decode(std::string_view body, Manifest* out);
  Status Decode(std::string_view body, Disconnect* out);
  Status Decode(std::string_view body, Submit* out);
  Status Decode(std::string_view body, Accepted* out);
  Status Decode(std::string_view body, TaskInfo* out);
  Status Decode(std::string_view body, Get* out);
  Status Decode(std::string_view body, CancelTask* out);
  Status Decode(std::string_view body, List* out);
  Status Decode(std::string_view body, TaskList* out);
  Status Decode(std::string_view body, Admin* out);
  Status Decode(std::string_view body, AdminReply* out);
  Status Decode(std::string_view body, Error* out);

  // Parses any body into a msgpack object tree that stays valid until the next call (for tools that
  // inspect generic values, such as the gateway turning ADMIN_REPLY data into JSON).
  Result<msgpack::object> Parse(std::string_view body);

  const Limits& limits() const { return limits_; }

 private:
  Limits limits_;
  msgpack::zone zone_;
};

}  // namespace rma::proto
