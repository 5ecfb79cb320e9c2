// Paces large replies to each client, so a burst of reads of big results cannot make the broker
// hold gigabytes of encoded answers at once.
//
// A TASK_INFO carrying a result is encoded into its own buffer for every request that asks for it
// (each answer has its own `ref`): 150 GETs of one 8 MiB result are 1.2 GB of replies, all made in
// one loop iteration and held until ZeroMQ has written them out. ReplyPacer gives every client a
// byte bucket for large replies (burst, then a steady rate). A large reply within the bucket goes
// now; one beyond it waits here, in order, as the message itself (its result is shared with the
// task, not copied); past max_deferred_bytes of waiting replies a client's next large reply is
// refused (the caller answers ERROR resource_exhausted and the client may ask again later).
// Small replies are never held. Plain logic with an injected clock; owned by the broker loop.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "protocol/messages.h"

namespace rma::broker {

struct ReplyPacerOptions {
  size_t large_bytes = 1u << 20;            // replies with a result at least this big are paced
  size_t burst_bytes = 64u << 20;           // per client, sent at once
  double bytes_per_s = 512.0 * (1u << 20);  // per client, steady rate after the burst
  size_t max_deferred_bytes = 256u << 20;   // per client, waiting here (counted per reply)
};

class ReplyPacer {
 public:
  enum class Verdict { kSendNow, kDeferred, kRefused };

  explicit ReplyPacer(ReplyPacerOptions options = {}) : options_(options) {}

  // The bytes that count for pacing: the result of a TASK_INFO, 0 for anything else.
  static size_t PacedBytes(const proto::ToClientMessage& message);
  // Whether `message` is large enough to be paced (cheap: the caller checks before copying).
  bool Applies(const proto::ToClientMessage& message) const {
    return PacedBytes(message) >= options_.large_bytes;
  }

  // Offers a reply to `client`. kSendNow: send it (its bytes were taken from the bucket).
  // kDeferred: `message` was moved in and comes back from TakeDue. kRefused: over the budget.
  Verdict Offer(Time now, const std::string& client, proto::ToClientMessage& message);

  // Moves out the waiting replies whose turn has come, in order per client.
  void TakeDue(Time now, std::vector<std::pair<std::string, proto::ToClientMessage>>* out);
  // When the next waiting reply is due (Time::max() when nothing waits).
  Time NextDue() const;

  size_t deferred_bytes() const { return deferred_bytes_total_; }
  uint64_t refused() const { return refused_; }

 private:
  struct Client {
    double tokens = 0;
    Time at{};
    std::deque<proto::ToClientMessage> waiting;
    size_t waiting_bytes = 0;
  };
  void Refill(Client& c, Time now) const;
  Time DueAt(const Client& c) const;

  ReplyPacerOptions options_;
  std::unordered_map<std::string, Client> clients_;
  size_t deferred_bytes_total_ = 0;
  uint64_t refused_ = 0;
};

}  // namespace rma::broker
