// Bounds the large replies the broker holds for each client, so clients that ask for big results
// and do not read the answers cannot make the broker hold gigabytes of them.
//
// A TASK_INFO carrying a result is encoded into its own buffer for every request that asks for it
// (each answer has its own `ref`): 150 GETs of one 8 MiB result are 1.2 GB of replies. Once handed
// to ZeroMQ, a reply stays in the broker's memory until ZeroMQ has written it to the connection,
// which for a client that does not read is never. So ReplyPacer gives each client a window: the
// bytes of large replies handed to ZeroMQ and not yet written out (proto::InFlightBytes, counted
// down by ZeroMQ's I/O thread) may not exceed `window_bytes`, nor all clients' together
// `total_window_bytes`. A large reply that does not fit waits here, in order, as the message itself
// (its result is shared with the task, not copied); past `max_deferred_bytes` waiting for one
// client (or `max_deferred_total_bytes` for all) a client's next large reply is refused (the caller
// answers ERROR resource_exhausted; the client may ask again later). Small replies are never held:
// ZeroMQ's high-water mark bounds how many of them a peer can leave unread.
// Plain logic with an injected clock; owned by the broker loop.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "protocol/frames.h"
#include "protocol/messages.h"

namespace rma::broker {

struct ReplyPacerOptions {
  size_t large_bytes = 1u << 20;  // replies with a result at least this big
  // The defaults keep a 1 GiB broker within its budget (docs/configuration.md, "Budgets"): a
  // waiting reply read back from the record holds its own copy of the result.
  size_t window_bytes = 64u << 20;               // per client, handed to ZeroMQ, not written out
  size_t total_window_bytes = 128u << 20;        // all clients together
  size_t max_deferred_bytes = 64u << 20;         // per client, waiting here (counted per reply)
  size_t max_deferred_total_bytes = 128u << 20;  // all clients together
  Duration recheck = Ms(5);  // how often waiting replies look at their window again
};

class ReplyPacer {
 public:
  enum class Verdict { kSendNow, kDeferred, kRefused };

  // A reply whose turn has come: send it with its body counted by `in_flight`.
  struct Due {
    std::string client;
    proto::ToClientMessage message;
    std::shared_ptr<proto::InFlightBytes> in_flight;
  };

  explicit ReplyPacer(ReplyPacerOptions options = {});

  // The bytes that count for pacing: the result of a TASK_INFO, 0 for anything else.
  static size_t PacedBytes(const proto::ToClientMessage& message);
  // Whether `message` is large enough to be paced (cheap: the caller checks before copying).
  bool Applies(const proto::ToClientMessage& message) const {
    return PacedBytes(message) >= options_.large_bytes;
  }

  // Offers a reply to `client`. kSendNow: send it now, its body counted by *in_flight (the caller
  // adds it to an OutMessage with that counter before it offers the next reply). kDeferred:
  // `message` was moved in and comes back from TakeDue. kRefused: over the waiting budget.
  Verdict Offer(Time now, const std::string& client, proto::ToClientMessage& message,
                std::shared_ptr<proto::InFlightBytes>* in_flight);

  // Moves out the waiting replies that now fit their windows, in order per client (the caller sends
  // each with its counter), and forgets clients with nothing waiting and nothing in flight.
  void TakeDue(Time now, std::vector<Due>* out);
  // When TakeDue should run next (Time::max() when no client is known).
  Time NextDue() const { return clients_.empty() ? Time::max() : next_check_; }

  size_t deferred_bytes() const { return deferred_bytes_total_; }
  int64_t in_flight_bytes() const { return total_->bytes(); }
  uint64_t refused() const { return refused_; }

 private:
  struct Client {
    std::shared_ptr<proto::InFlightBytes> in_flight;
    std::deque<proto::ToClientMessage> waiting;
    size_t waiting_bytes = 0;
  };
  // Whether `bytes` more fit c's window and the total, with `mine`/`all` bytes already promised.
  bool Fits(const Client& c, size_t bytes, int64_t mine = 0, int64_t all = 0) const;

  ReplyPacerOptions options_;
  std::shared_ptr<proto::InFlightBytes> total_;
  std::unordered_map<std::string, Client> clients_;
  size_t deferred_bytes_total_ = 0;
  uint64_t refused_ = 0;
  Time next_check_ = Time::max();
};

}  // namespace rma::broker
