// ADMIN_REPLY (docs/protocol.md §6.5): the broker's answer to an ADMIN query. Its document is any
// JSON-shaped value (the shapes are in docs/http-api.md); on the wire it is the msgpack form of
// that value, embedded as the "data" field of the body, and the gateway returns it to HTTP clients
// as JSON. Kept apart from messages.h so that only the peers that handle admin documents include
// nlohmann::json.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>

#include "protocol/messages.h"

namespace rma::proto {

struct AdminReply {
  uint64_t ref = 0;     // "ref"
  nlohmann::json data;  // "data": the document (null when absent)
  bool operator==(const AdminReply&) const = default;
};

}  // namespace rma::proto
