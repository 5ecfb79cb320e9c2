// ClientBacklog: the answers a client's full pipe refused, kept in order and sent again once the
// client reads, so that a slow client (a gateway relaying many streams to slow HTTP readers) never
// loses the end of a call.
//
// The broker sends to clients without blocking; at ZeroMQ's high-water mark a ROUTER with
// ROUTER_MANDATORY answers EAGAIN (OutMessage::Send: ResourceExhausted) and the message would be
// lost: a streamed chunk (the gateway then ends that stream with `stream_interrupted`), or worse
// a call's final answer (the caller waits until its timeout). So a refused message waits here, and
// every later message to that client queues behind it (order matters: chunks, then the answer).
// Retry() sends what waits, oldest first, for each client until its pipe is full again; the loop
// calls it every turn and wakes within a few milliseconds while anything waits.
//
// Bounded: past `max_client_bytes` waiting for one client, or `max_total_bytes` for all, streamed
// chunks (CALL_PARTIAL) are dropped (their stream ends with `stream_interrupted`, a clear error,
// instead of growing memory); other answers still wait, up to twice those bounds, the reserve
// that keeps a call's end when its chunks overflow; past that they are dropped and counted too.
// A client that is gone (EHOSTUNREACH) loses what waits for it.
//
// Plain logic over an injected send function; owned by the broker loop (one thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

#include <absl/functional/function_ref.h>

#include "common/status.h"
#include "protocol/frames.h"

namespace rma::broker {

struct ClientBacklogOptions {
  size_t max_client_bytes = 32u << 20;
  size_t max_total_bytes = 256u << 20;
};

class ClientBacklog {
 public:
  // Sends one message: Ok, ResourceExhausted (the pipe is full; the message is left whole) or
  // another error (the peer is gone, ...).
  using SendFn = absl::FunctionRef<Status(const std::string& identity, proto::OutMessage& message)>;

  explicit ClientBacklog(ClientBacklogOptions options = {}) : options_(options) {}

  // Sends `message` to `identity`, or keeps it when messages already wait for that client or its
  // pipe is full.
  void Send(const std::string& identity, proto::OutMessage message, SendFn send);
  // Sends what waits, oldest first per client, until each pipe is full again.
  void Retry(SendFn send);

  bool empty() const { return clients_.empty(); }
  size_t bytes() const { return total_bytes_; }
  size_t waiting_messages() const;
  uint64_t kept() const { return kept_; }                        // messages that had to wait
  uint64_t dropped_chunks() const { return dropped_chunks_; }    // CALL_PARTIALs over the bound
  uint64_t dropped_answers() const { return dropped_answers_; }  // others over twice the bound
  uint64_t dropped_gone() const { return dropped_gone_; }        // waiting for a client now gone

 private:
  struct Waiting {
    std::deque<proto::OutMessage> messages;
    size_t bytes = 0;
  };
  // Keeps `message` if the bounds allow, else drops and counts it.
  void Keep(Waiting& waiting, proto::OutMessage message);
  void Forget(std::unordered_map<std::string, Waiting>::iterator it);

  ClientBacklogOptions options_;
  std::unordered_map<std::string, Waiting> clients_;
  size_t total_bytes_ = 0;
  uint64_t kept_ = 0;
  uint64_t dropped_chunks_ = 0;
  uint64_t dropped_answers_ = 0;
  uint64_t dropped_gone_ = 0;
};

}  // namespace rma::broker
