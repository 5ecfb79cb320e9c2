// See rate_limiter.h.
#include "gateway/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace rma::gateway {

TokenBucket::TokenBucket(RateLimit limit, Time now)
    : limit_(limit),
      capacity_(limit.burst > 0 ? limit.burst : std::max(1.0, limit.rate_per_s)),
      tokens_(capacity_),
      updated_(now) {}

double TokenBucket::Level(Time now) const {
  double elapsed = std::max(0.0, ToSecondsF(now - updated_));
  return std::min(capacity_, tokens_ + elapsed * limit_.rate_per_s);
}

bool TokenBucket::Take(Time now, Duration* retry_after) {
  if (limit_.unlimited()) return true;
  tokens_ = Level(now);
  if (now > updated_) updated_ = now;
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return true;
  }
  double wait_s = (1.0 - tokens_) / limit_.rate_per_s;
  *retry_after = Duration(static_cast<int64_t>(std::ceil(wait_s * 1e6)));
  return false;
}

bool TokenBucket::Full(Time now) const { return limit_.unlimited() || Level(now) >= capacity_; }

RateLimiter::Decision RateLimiter::Take(const std::string& key, const RateLimit& limit) {
  Decision d;
  if (limit.unlimited()) return d;
  const Time now = clock_->Now();
  MutexLock lock(&mu_);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_buckets_) Sweep(now);
    if (buckets_.size() >= max_buckets_) {
      ++overflowed_;
      return d;
    }
    it = buckets_.emplace(key, TokenBucket(limit, now)).first;
  }
  d.allowed = it->second.Take(now, &d.retry_after);
  return d;
}

void RateLimiter::Sweep(Time now) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    if (it->second.Full(now)) {
      it = buckets_.erase(it);
    } else {
      ++it;
    }
  }
}

size_t RateLimiter::buckets() const {
  MutexLock lock(&mu_);
  return buckets_.size();
}

uint64_t RateLimiter::overflowed() const {
  MutexLock lock(&mu_);
  return overflowed_;
}

}  // namespace rma::gateway
