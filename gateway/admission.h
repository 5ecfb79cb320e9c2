// What the gateway lets in before it does any work for a peer: connections per client address
// (ConnectionLimiter) and the bytes of large request bodies it holds at once (BodyBudget). Both
// hand out RAII tokens, so whatever path a connection or a request takes — answered, refused,
// dropped by its client, timed out by Pistache — what it held is given back exactly once.
//
// Threads: any. Each class guards its own state (a mutex for the per-address map, an atomic for the
// byte count). The tokens keep a shared_ptr to their owner, so a token may outlive the gateway's
// context (a peer destroyed late by Pistache).
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>

#include "common/mutex.h"

namespace rma::gateway {

class ConnectionLimiter : public std::enable_shared_from_this<ConnectionLimiter> {
 public:
  // At most `per_address` connections from one address at once; 0 means no limit.
  explicit ConnectionLimiter(size_t per_address) : per_address_(per_address) {}

  // One connection's place; gives it back when destroyed.
  class Slot {
   public:
    Slot() = default;
    Slot(std::shared_ptr<ConnectionLimiter> owner, std::string address)
        : owner_(std::move(owner)), address_(std::move(address)) {}
    ~Slot() { Release(); }
    Slot(Slot&& other) noexcept = default;
    Slot& operator=(Slot&& other) noexcept {
      if (this != &other) {
        Release();
        owner_ = std::move(other.owner_);
        address_ = std::move(other.address_);
      }
      return *this;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    bool held() const { return owner_ != nullptr; }

   private:
    void Release();
    std::shared_ptr<ConnectionLimiter> owner_;
    std::string address_;
  };

  // A slot for a new connection from `address`, or an empty one when that address has its limit.
  Slot Acquire(const std::string& address);
  size_t open(const std::string& address) const;

 private:
  void Give(const std::string& address);
  const size_t per_address_;
  mutable Mutex mu_;
  std::unordered_map<std::string, size_t> open_ RMA_GUARDED_BY(mu_);
};

// Bytes of large request bodies held at once — being received, parsed, or travelling to the broker
// — so that many large uploads cannot exhaust the gateway's memory: a request that does not fit is
// refused (503 busy) before its body is read.
class BodyBudget : public std::enable_shared_from_this<BodyBudget> {
 public:
  explicit BodyBudget(size_t max_bytes) : max_(max_bytes) {}

  class Lease {
   public:
    Lease() = default;
    ~Lease() { Release(); }
    Lease(Lease&& other) noexcept : owner_(std::move(other.owner_)), bytes_(other.bytes_) {
      other.bytes_ = 0;
    }
    Lease& operator=(Lease&& other) noexcept {
      if (this != &other) {
        Release();
        owner_ = std::move(other.owner_);
        bytes_ = other.bytes_;
        other.bytes_ = 0;
      }
      return *this;
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

    size_t bytes() const { return bytes_; }
    // Holds `total` bytes in all (at least what it holds); false, holding what it held, when the
    // budget cannot give the difference.
    bool GrowTo(size_t total);
    void Release();

   private:
    friend class BodyBudget;
    std::shared_ptr<BodyBudget> owner_;
    size_t bytes_ = 0;
  };

  // A lease of `bytes`; false (and `lease` unchanged) when they do not fit.
  bool Reserve(size_t bytes, Lease* lease);
  size_t used() const { return used_.load(std::memory_order_relaxed); }
  size_t max() const { return max_; }

 private:
  bool Take(size_t bytes);
  void Give(size_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }
  const size_t max_;
  std::atomic<size_t> used_{0};
};

}  // namespace rma::gateway
