// Test support for PgStore tests: a harness that drives the store the way the broker loop does
// (writes, Flush(), replies collected when poll_fd() is readable) and task records to write.
#pragma once

#include <poll.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "broker/pg_store.h"

namespace rma::broker {

using namespace std::chrono_literals;

// The reply's message for the client as T, or nullptr.
template <typename T>
const T* MessageAs(const StoreReply& r) {
  return r.message ? std::get_if<T>(&*r.message) : nullptr;
}

// Drives a PgStore like the broker loop: writes, Flush(), and replies collected from poll_fd().
class Harness {
 public:
  explicit Harness(std::unique_ptr<PgStore> store) : store_(std::move(store)) {}
  PgStore& store() { return *store_; }
  std::vector<StoreReply>& replies() { return replies_; }

  // Pumps the store's notifications until `done` holds or `timeout` passes.
  bool PumpUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = 20s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      pollfd pfd{store_->poll_fd(), POLLIN, 0};
      if (poll(&pfd, 1, 20) > 0) store_->OnReadable(&replies_);
    }
    return true;
  }
  bool WaitDurable(uint64_t seq) {
    store_->Flush();
    return PumpUntil([&] { return store_->durable_seq() >= seq; });
  }
  // The next reply (in arrival order), waiting for it.
  std::optional<StoreReply> NextReply() {
    if (!PumpUntil([&] { return !replies_.empty(); })) return std::nullopt;
    StoreReply r = std::move(replies_.front());
    replies_.erase(replies_.begin());
    return r;
  }
  void Reset() { store_.reset(); }

 private:
  std::unique_ptr<PgStore> store_;
  std::vector<StoreReply> replies_;
};

inline TaskRecord Task(uint64_t id, std::string service = "echo",
                       proto::TaskStatus status = proto::TaskStatus::kQueued,
                       uint32_t priority = 0) {
  TaskRecord r;
  r.id = TaskId(id);
  r.service = std::move(service);
  r.status = status;
  r.priority = priority;
  r.payload = "payload-" + std::to_string(id);
  r.content_type = "text/plain";
  r.max_attempts = 3;
  r.timeout_ms = 30000;
  r.created_at = FromUnixMs(1'800'000'000'000 + static_cast<int64_t>(id));
  r.run_at = r.created_at;
  return r;
}

inline TaskWrite Insert(TaskRecord r) { return TaskWrite{WriteKind::kInsert, std::move(r)}; }
inline TaskWrite Update(TaskRecord r) {
  r.payload.clear();
  r.content_type.clear();
  return TaskWrite{WriteKind::kUpdate, std::move(r)};
}

}  // namespace rma::broker
