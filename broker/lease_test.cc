// Lease (lease.h): acquiring, renewing, losing and stepping down, driven by a fake clock.
#include "broker/lease.h"

#include <gtest/gtest.h>

namespace rma::broker {
namespace {

class LeaseTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  LeaseOptions options_{Seconds(5), Ms(500), Ms(250)};
  Lease lease_{options_, clock_.Now()};
};

TEST_F(LeaseTest, StartsAsStandbyThatTriesToAcquireAtOnce) {
  EXPECT_FALSE(lease_.Leading(clock_.Now()));
  EXPECT_EQ(lease_.Next(clock_.Now()), Lease::Action::kAcquire);
  EXPECT_LE(lease_.due(), clock_.Now());
}

TEST_F(LeaseTest, AcquiredLeaseLeadsUntilShortOfItsEndAndRenewsAThirdIn) {
  const Time sent = clock_.Now();
  clock_.Advance(Ms(20));
  lease_.OnAcquired(sent, 7, clock_.Now());
  EXPECT_TRUE(lease_.Leading(clock_.Now()));
  EXPECT_EQ(lease_.epoch(), 7);
  EXPECT_EQ(lease_.Next(clock_.Now()), Lease::Action::kRenew);
  EXPECT_EQ(lease_.due(), sent + Seconds(5) / 3);
  // Counted from when the statement was sent, less a margin: before the database's expiry.
  EXPECT_EQ(lease_.valid_until(), sent + Ms(4500));
  clock_.Set(sent + Ms(4499));
  EXPECT_TRUE(lease_.Leading(clock_.Now()));
  clock_.Set(sent + Ms(4500));
  EXPECT_FALSE(lease_.Leading(clock_.Now()));
}

TEST_F(LeaseTest, RenewalsKeepTheLeaseAndMoveTheNextOne) {
  lease_.OnAcquired(clock_.Now(), 1, clock_.Now());
  for (int i = 0; i < 10; ++i) {
    clock_.Set(lease_.due());
    const Time sent = clock_.Now();
    clock_.Advance(Ms(5));
    lease_.OnRenewed(sent, clock_.Now());
    EXPECT_TRUE(lease_.Leading(clock_.Now()));
    EXPECT_EQ(lease_.valid_until(), sent + Ms(4500));
  }
  EXPECT_EQ(lease_.terms(), 1u);
}

TEST_F(LeaseTest, FailedRenewalsRetrySoonAndTheLeaderStepsDownWhenTheLeaseRunsOut) {
  const Time start = clock_.Now();
  lease_.OnAcquired(start, 3, start);
  clock_.Set(lease_.due());
  lease_.OnFailed(clock_.Now());
  EXPECT_TRUE(lease_.Leading(clock_.Now()));
  EXPECT_EQ(lease_.due(), clock_.Now() + Ms(250));
  // The database stays away: the leader stops serving on its own, by its clock alone.
  clock_.Set(start + Ms(4500));
  EXPECT_FALSE(lease_.Leading(clock_.Now()));
  lease_.OnFailed(clock_.Now());
  EXPECT_EQ(lease_.role(), Lease::Role::kStandby);
  EXPECT_EQ(lease_.epoch(), 0);
  EXPECT_EQ(lease_.Next(clock_.Now()), Lease::Action::kAcquire);
}

TEST_F(LeaseTest, APausedLeaderWhoseRenewalAnswersLateStepsDown) {
  // SIGSTOP between sending a renewal and reading its answer: the lease ran out meanwhile, so the
  // late success must not make it lead again with the old epoch.
  const Time start = clock_.Now();
  lease_.OnAcquired(start, 4, start);
  const Time sent = lease_.due();
  clock_.Set(sent + Seconds(30));
  EXPECT_FALSE(lease_.Leading(clock_.Now()));
  lease_.OnRenewed(sent, clock_.Now());
  EXPECT_FALSE(lease_.Leading(clock_.Now()));
  EXPECT_EQ(lease_.role(), Lease::Role::kStandby);
}

TEST_F(LeaseTest, AcquireAnsweredAfterTheLeaseWouldHaveEndedDoesNotLead) {
  const Time sent = clock_.Now();
  clock_.Advance(Seconds(6));
  lease_.OnAcquired(sent, 9, clock_.Now());
  EXPECT_FALSE(lease_.Leading(clock_.Now()));
  EXPECT_EQ(lease_.Next(clock_.Now()), Lease::Action::kAcquire);
}

TEST_F(LeaseTest, LosingToANewerEpochStepsDownAtOnce) {
  lease_.OnAcquired(clock_.Now(), 2, clock_.Now());
  clock_.Advance(Seconds(1));
  lease_.OnLost(clock_.Now());
  EXPECT_FALSE(lease_.Leading(clock_.Now()));
  EXPECT_EQ(lease_.due(), clock_.Now() + Ms(500));
}

TEST_F(LeaseTest, AStandbyRemembersTheLeadersEpochAndPollsAgain) {
  lease_.OnHeld(12, clock_.Now());
  EXPECT_FALSE(lease_.Leading(clock_.Now()));
  EXPECT_EQ(lease_.leader_epoch(), 12);
  EXPECT_EQ(lease_.due(), clock_.Now() + Ms(500));
  lease_.OnAcquired(clock_.Now(), 13, clock_.Now());
  EXPECT_TRUE(lease_.Leading(clock_.Now()));
  EXPECT_EQ(lease_.terms(), 1u);
}

TEST_F(LeaseTest, ALeaderPausedPastItsLeaseAcquiresAfreshInsteadOfRenewing) {
  lease_.OnAcquired(clock_.Now(), 5, clock_.Now());
  clock_.Advance(Seconds(30));  // SIGSTOP while waiting for the next renewal
  EXPECT_EQ(lease_.Next(clock_.Now()), Lease::Action::kAcquire);
  EXPECT_EQ(lease_.role(), Lease::Role::kStandby);
  EXPECT_EQ(lease_.epoch(), 0);
}

}  // namespace
}  // namespace rma::broker
