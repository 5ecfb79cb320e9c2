// See reply_pacer.h.
#include "broker/reply_pacer.h"

#include <algorithm>
#include <cmath>

namespace rma::broker {

size_t ReplyPacer::PacedBytes(const proto::ToClientMessage& message) {
  const auto* info = std::get_if<proto::TaskInfo>(&message);
  return info == nullptr ? 0 : info->task.result.size();
}

void ReplyPacer::Refill(Client& c, Time now) const {
  if (now > c.at) {
    c.tokens = std::min(static_cast<double>(options_.burst_bytes),
                        c.tokens + ToSecondsF(now - c.at) * options_.bytes_per_s);
  }
  c.at = std::max(c.at, now);
}

Time ReplyPacer::DueAt(const Client& c) const {
  if (c.waiting.empty()) return Time::max();
  const double need = static_cast<double>(PacedBytes(c.waiting.front())) - c.tokens;
  if (need <= 0) return c.at;
  return c.at + std::chrono::duration_cast<Duration>(
                    std::chrono::duration<double>(std::ceil(need) / options_.bytes_per_s));
}

ReplyPacer::Verdict ReplyPacer::Offer(Time now, const std::string& client,
                                      proto::ToClientMessage& message) {
  const size_t bytes = PacedBytes(message);
  if (bytes < options_.large_bytes) return Verdict::kSendNow;
  auto [it, fresh] = clients_.try_emplace(client);
  Client& c = it->second;
  if (fresh) {
    c.tokens = static_cast<double>(options_.burst_bytes);
    c.at = now;
  }
  Refill(c, now);
  // A reply bigger than the whole burst goes when the bucket is full, never "never".
  const double cost =
      std::min(static_cast<double>(bytes), static_cast<double>(options_.burst_bytes));
  if (c.waiting.empty() && c.tokens >= cost) {
    c.tokens -= cost;
    return Verdict::kSendNow;
  }
  if (c.waiting_bytes + bytes > options_.max_deferred_bytes) {
    ++refused_;
    return Verdict::kRefused;
  }
  c.waiting.push_back(std::move(message));
  c.waiting_bytes += bytes;
  deferred_bytes_total_ += bytes;
  return Verdict::kDeferred;
}

void ReplyPacer::TakeDue(Time now,
                         std::vector<std::pair<std::string, proto::ToClientMessage>>* out) {
  for (auto it = clients_.begin(); it != clients_.end();) {
    Client& c = it->second;
    Refill(c, now);
    while (!c.waiting.empty()) {
      const size_t bytes = PacedBytes(c.waiting.front());
      const double cost =
          std::min(static_cast<double>(bytes), static_cast<double>(options_.burst_bytes));
      if (c.tokens < cost) break;
      c.tokens -= cost;
      c.waiting_bytes -= bytes;
      deferred_bytes_total_ -= bytes;
      out->emplace_back(it->first, std::move(c.waiting.front()));
      c.waiting.pop_front();
    }
    // A client with nothing waiting and a full bucket is the same as one never seen: forget it,
    // so the table holds only clients that are being paced.
    if (c.waiting.empty() && c.tokens >= static_cast<double>(options_.burst_bytes)) {
      it = clients_.erase(it);
    } else {
      ++it;
    }
  }
}

Time ReplyPacer::NextDue() const {
  Time next = Time::max();
  for (const auto& [id, c] : clients_) next = std::min(next, DueAt(c));
  return next;
}

}  // namespace rma::broker
