// Size limits applied to every message decoded from a peer. The broker and gateway take them from
// configuration; the defaults suit a pool on a LAN or the internet. A message over any limit is
// refused with a clear error and never allocates more than a small multiple of its own size.
#pragma once

#include <cstddef>

namespace rma::proto {

struct Limits {
  // One ZeroMQ frame (also set as ZMQ_MAXMSGSIZE, so an oversized frame drops the connection):
  // a payload plus room for the rest of its body. Keep it max_payload_bytes + 1 MiB.
  size_t max_frame_bytes = 17u << 20;
  // Body frames in one message (batching): more are refused.
  size_t max_bodies = 1024;
  // A task payload or result.
  size_t max_payload_bytes = 16u << 20;
  // Any other string (names, errors, headers).
  size_t max_string_bytes = 64u << 10;
  // Elements in one msgpack array / pairs in one map.
  size_t max_array = 4096;
  size_t max_map = 256;
  // Nesting depth of containers.
  size_t max_depth = 8;
  // Total msgpack objects in one body: bounds decoder memory for hostile bodies full of tiny
  // containers.
  size_t max_objects = 65536;
};

}  // namespace rma::proto
