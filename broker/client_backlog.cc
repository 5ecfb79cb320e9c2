// See client_backlog.h.
#include "broker/client_backlog.h"

#include <spdlog/spdlog.h>

namespace rma::broker {

void ClientBacklog::Send(const std::string& identity, proto::OutMessage message, SendFn send) {
  auto it = clients_.find(identity);
  if (it == clients_.end()) {
    Status s = send(identity, message);
    if (s.ok()) return;
    if (s.code() != StatusCode::kResourceExhausted) {
      spdlog::debug("dropped an answer to a client: {}", s.message());
      return;
    }
    it = clients_.try_emplace(identity).first;
  }
  Keep(it->second, std::move(message));
  if (it->second.messages.empty()) Forget(it);
}

void ClientBacklog::Keep(Waiting& waiting, proto::OutMessage message) {
  const size_t bytes = message.body_bytes();
  const bool chunk = message.command() == proto::Command::kCallPartial;
  const size_t scale = chunk ? 1 : 2;
  if (waiting.bytes + bytes > scale * options_.max_client_bytes ||
      total_bytes_ + bytes > scale * options_.max_total_bytes) {
    if (chunk) {
      ++dropped_chunks_;
    } else {
      // Logged at powers of two: a client that never reads must not flood the log either.
      ++dropped_answers_;
      if ((dropped_answers_ & (dropped_answers_ - 1)) == 0) {
        spdlog::warn(
            "dropped {} answer(s) to clients that do not read; this one, a {}, had {} "
            "bytes waiting before it",
            dropped_answers_, proto::CommandName(message.command()), waiting.bytes);
      }
    }
    return;
  }
  waiting.bytes += bytes;
  total_bytes_ += bytes;
  ++kept_;
  waiting.messages.push_back(std::move(message));
}

void ClientBacklog::Forget(std::unordered_map<std::string, Waiting>::iterator it) {
  total_bytes_ -= it->second.bytes;
  clients_.erase(it);
}

void ClientBacklog::Retry(SendFn send) {
  for (auto it = clients_.begin(); it != clients_.end();) {
    Waiting& waiting = it->second;
    bool gone = false;
    while (!waiting.messages.empty()) {
      proto::OutMessage& front = waiting.messages.front();
      const size_t bytes = front.body_bytes();
      Status s = send(it->first, front);
      if (s.code() == StatusCode::kResourceExhausted) break;
      if (!s.ok()) {
        gone = true;
        break;
      }
      waiting.bytes -= bytes;
      total_bytes_ -= bytes;
      waiting.messages.pop_front();
    }
    if (gone) dropped_gone_ += waiting.messages.size();
    if (gone || waiting.messages.empty()) {
      auto next = std::next(it);
      Forget(it);
      it = next;
    } else {
      ++it;
    }
  }
}

size_t ClientBacklog::waiting_messages() const {
  size_t n = 0;
  for (const auto& [identity, waiting] : clients_) n += waiting.messages.size();
  return n;
}

}  // namespace rma::broker
