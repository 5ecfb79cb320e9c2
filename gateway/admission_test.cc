// Unit tests of admission: connections per address and the large-body budget.
#include "gateway/admission.h"

#include <gtest/gtest.h>

namespace rma::gateway {
namespace {

TEST(ConnectionLimiterTest, EachAddressGetsItsLimitAndSlotsComeBack) {
  auto limiter = std::make_shared<ConnectionLimiter>(2);
  ConnectionLimiter::Slot a = limiter->Acquire("10.0.0.1");
  ConnectionLimiter::Slot b = limiter->Acquire("10.0.0.1");
  EXPECT_TRUE(a.held() && b.held());
  EXPECT_FALSE(limiter->Acquire("10.0.0.1").held());
  EXPECT_TRUE(limiter->Acquire("10.0.0.2").held());  // and given back at once
  EXPECT_EQ(limiter->open("10.0.0.2"), 0u);
  {
    ConnectionLimiter::Slot moved = std::move(a);
    EXPECT_EQ(limiter->open("10.0.0.1"), 2u);
  }
  EXPECT_EQ(limiter->open("10.0.0.1"), 1u);
  EXPECT_TRUE(limiter->Acquire("10.0.0.1").held());
  auto unlimited = std::make_shared<ConnectionLimiter>(0);
  std::vector<ConnectionLimiter::Slot> many;
  many.reserve(1000);
  for (int i = 0; i < 1000; ++i) many.push_back(unlimited->Acquire("10.0.0.1"));
  EXPECT_TRUE(many.back().held());
}

TEST(BodyBudgetTest, LeasesHoldBytesUntilReleased) {
  auto budget = std::make_shared<BodyBudget>(100);
  BodyBudget::Lease a;
  BodyBudget::Lease b;
  ASSERT_TRUE(budget->Reserve(60, &a));
  EXPECT_FALSE(budget->Reserve(50, &b));
  EXPECT_EQ(b.bytes(), 0u);
  ASSERT_TRUE(budget->Reserve(40, &b));
  EXPECT_EQ(budget->used(), 100u);
  EXPECT_FALSE(b.GrowTo(41));
  EXPECT_EQ(b.bytes(), 40u);
  a.Release();
  EXPECT_TRUE(b.GrowTo(90));
  EXPECT_EQ(budget->used(), 90u);
  {
    BodyBudget::Lease moved = std::move(b);
    EXPECT_EQ(moved.bytes(), 90u);
  }
  EXPECT_EQ(budget->used(), 0u);
  EXPECT_FALSE(budget->Reserve(101, &a));
}

}  // namespace
}  // namespace rma::gateway
