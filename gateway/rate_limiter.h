// Per-key request rate limits: one token bucket per API key (or per client address when the gateway
// runs without keys). Time comes from an injected Clock, so tests drive a FakeClock.
//
// Threads: Pistache's reactor threads call Take() concurrently; the buckets sit behind one mutex
// (a map lookup and a few arithmetic operations per request).
#pragma once

#include <mutex>
#include <string>
#include <unordered_map>

#include "common/clock.h"
#include "common/mutex.h"

namespace rma::gateway {

struct RateLimit {
  double rate_per_s = 0;  // sustained requests per second; 0 = unlimited
  double burst = 0;       // bucket size; 0 = max(1, rate_per_s)
  bool unlimited() const { return rate_per_s <= 0; }
};

// A token bucket. Not thread-safe; RateLimiter guards its buckets.
class TokenBucket {
 public:
  TokenBucket(RateLimit limit, Time now);
  // Takes one token if there is one. Otherwise returns false and sets *retry_after to the time
  // until the next token.
  bool Take(Time now, Duration* retry_after);
  // Whether the bucket has refilled completely by `now` (it carries no state worth keeping).
  bool Full(Time now) const;

 private:
  double Level(Time now) const;
  RateLimit limit_;
  double capacity_;
  double tokens_;
  Time updated_;
};

class RateLimiter {
 public:
  // At most `max_buckets` keys are tracked; full buckets are forgotten first. A key that cannot get
  // a bucket because every tracked bucket is busy is let through (and counted in overflowed()).
  explicit RateLimiter(const Clock* clock, size_t max_buckets = 100000)
      : clock_(clock), max_buckets_(max_buckets) {}

  struct Decision {
    bool allowed = true;
    Duration retry_after{0};
  };
  Decision Take(const std::string& key, const RateLimit& limit);

  size_t buckets() const;
  uint64_t overflowed() const;

 private:
  void Sweep(Time now) RMA_REQUIRES(mu_);

  const Clock* clock_;
  const size_t max_buckets_;
  mutable Mutex mu_;
  std::unordered_map<std::string, TokenBucket> buckets_ RMA_GUARDED_BY(mu_);
  uint64_t overflowed_ RMA_GUARDED_BY(mu_) = 0;
};

}  // namespace rma::gateway
