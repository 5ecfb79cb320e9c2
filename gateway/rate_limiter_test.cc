// Unit tests of the token buckets, driven by a FakeClock.
#include "gateway/rate_limiter.h"

#include <gtest/gtest.h>

namespace rma::gateway {
namespace {

TEST(RateLimiterTest, AllowsTheBurstThenRefusesWithRetryAfter) {
  FakeClock clock;
  RateLimiter limiter(&clock);
  RateLimit limit{2, 3};  // 2/s, bursts of 3
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Take("k", limit).allowed) << i;
  RateLimiter::Decision d = limiter.Take("k", limit);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, Ms(500));
  clock.Advance(Ms(499));
  EXPECT_FALSE(limiter.Take("k", limit).allowed);
  clock.Advance(Ms(2));
  EXPECT_TRUE(limiter.Take("k", limit).allowed);
  EXPECT_FALSE(limiter.Take("k", limit).allowed);
}

TEST(RateLimiterTest, RefillsAtTheRateUpToTheBurst) {
  FakeClock clock;
  RateLimiter limiter(&clock);
  RateLimit limit{10, 5};
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.Take("k", limit).allowed);
  EXPECT_FALSE(limiter.Take("k", limit).allowed);
  clock.Advance(Seconds(60));  // far more than needed: capped at the burst
  int allowed = 0;
  while (limiter.Take("k", limit).allowed) ++allowed;
  EXPECT_EQ(allowed, 5);
}

TEST(RateLimiterTest, KeysHaveTheirOwnBuckets) {
  FakeClock clock;
  RateLimiter limiter(&clock);
  RateLimit limit{1, 1};
  EXPECT_TRUE(limiter.Take("a", limit).allowed);
  EXPECT_FALSE(limiter.Take("a", limit).allowed);
  EXPECT_TRUE(limiter.Take("b", limit).allowed);
}

TEST(RateLimiterTest, UnlimitedNeverRefusesAndKeepsNoBucket) {
  FakeClock clock;
  RateLimiter limiter(&clock);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(limiter.Take("k", RateLimit{}).allowed);
  EXPECT_EQ(limiter.buckets(), 0u);
}

TEST(RateLimiterTest, ZeroBurstMeansTheRate) {
  FakeClock clock;
  RateLimiter limiter(&clock);
  RateLimit limit{4, 0};
  int allowed = 0;
  while (limiter.Take("k", limit).allowed) ++allowed;
  EXPECT_EQ(allowed, 4);
}

TEST(RateLimiterTest, ForgetsFullBucketsWhenTheTableIsFull) {
  FakeClock clock;
  RateLimiter limiter(&clock, /*max_buckets=*/2);
  RateLimit limit{1, 1};
  EXPECT_TRUE(limiter.Take("a", limit).allowed);
  EXPECT_TRUE(limiter.Take("b", limit).allowed);
  // Both buckets are busy: a third key is let through untracked.
  EXPECT_TRUE(limiter.Take("c", limit).allowed);
  EXPECT_EQ(limiter.overflowed(), 1u);
  EXPECT_EQ(limiter.buckets(), 2u);
  clock.Advance(Seconds(2));  // a and b have refilled: they make room
  EXPECT_TRUE(limiter.Take("c", limit).allowed);
  EXPECT_FALSE(limiter.Take("c", limit).allowed);
  EXPECT_EQ(limiter.buckets(), 1u);
}

}  // namespace
}  // namespace rma::gateway
