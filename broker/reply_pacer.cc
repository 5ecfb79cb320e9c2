// See reply_pacer.h.
#include "broker/reply_pacer.h"

#include <algorithm>

namespace rma::broker {

ReplyPacer::ReplyPacer(ReplyPacerOptions options)
    : options_(options), total_(std::make_shared<proto::InFlightBytes>()) {}

size_t ReplyPacer::PacedBytes(const proto::ToClientMessage& message) {
  const auto* info = std::get_if<proto::TaskInfo>(&message);
  return info == nullptr ? 0 : info->task.result.size();
}

bool ReplyPacer::Fits(const Client& c, size_t bytes, int64_t mine, int64_t all) const {
  mine += c.in_flight->bytes();
  all += total_->bytes();
  const auto b = static_cast<int64_t>(bytes);
  // A reply bigger than a whole window goes when the window is empty, never "never".
  return (mine <= 0 || mine + b <= static_cast<int64_t>(options_.window_bytes)) &&
         (all <= 0 || all + b <= static_cast<int64_t>(options_.total_window_bytes));
}

ReplyPacer::Verdict ReplyPacer::Offer(Time now, const std::string& client,
                                      proto::ToClientMessage& message,
                                      std::shared_ptr<proto::InFlightBytes>* in_flight) {
  const size_t bytes = PacedBytes(message);
  if (bytes < options_.large_bytes) return Verdict::kSendNow;
  auto [it, fresh] = clients_.try_emplace(client);
  Client& c = it->second;
  if (fresh) c.in_flight = std::make_shared<proto::InFlightBytes>(total_);
  // A known client is looked at again soon, to forget it once its window is empty.
  next_check_ = std::min(next_check_, now + options_.recheck);
  if (c.waiting.empty() && Fits(c, bytes)) {
    *in_flight = c.in_flight;
    return Verdict::kSendNow;
  }
  if (c.waiting_bytes + bytes > options_.max_deferred_bytes ||
      deferred_bytes_total_ + bytes > options_.max_deferred_total_bytes) {
    ++refused_;
    return Verdict::kRefused;
  }
  c.waiting.push_back(std::move(message));
  c.waiting_bytes += bytes;
  deferred_bytes_total_ += bytes;
  return Verdict::kDeferred;
}

void ReplyPacer::TakeDue(Time now, std::vector<Due>* out) {
  // The replies moved out here are counted only when the caller sends them, after this returns:
  // until then they are tallied here, so one call cannot release more than the windows allow.
  int64_t released_all = 0;
  for (auto it = clients_.begin(); it != clients_.end();) {
    Client& c = it->second;
    int64_t released_mine = 0;
    while (!c.waiting.empty()) {
      const size_t bytes = PacedBytes(c.waiting.front());
      if (!Fits(c, bytes, released_mine, released_all)) break;
      c.waiting_bytes -= bytes;
      deferred_bytes_total_ -= bytes;
      released_mine += static_cast<int64_t>(bytes);
      released_all += static_cast<int64_t>(bytes);
      out->push_back({it->first, std::move(c.waiting.front()), c.in_flight});
      c.waiting.pop_front();
    }
    if (c.waiting.empty() && released_mine == 0 && c.in_flight->bytes() == 0) {
      it = clients_.erase(it);
    } else {
      ++it;
    }
  }
  next_check_ = clients_.empty() ? Time::max() : now + options_.recheck;
}

}  // namespace rma::broker
