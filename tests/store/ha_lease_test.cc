// High availability against a real PostgreSQL (label "pg"; issue 18): PgLease over the lease row
// of schemas/sql/009_ha.sql — one leader at a time, a standby taking over an expired or released
// lease with a newer epoch, the leader stepping down when another broker takes it — and the fence:
// a PgStore whose epoch is no longer the leader's gets none of its writes in (both commit paths:
// the single multi-statement query of a small batch and the COPY transaction of a large one), says
// so, and becomes unavailable. System clock and real threads: waits poll with a deadline.
#include <gtest/gtest.h>

#include <atomic>

#include "broker/pg_lease.h"
#include "broker/pg_store.h"
#include "tests/store/pg_env.h"
#include "tests/store/pg_harness.h"
#include "tests/support/process.h"

namespace rma::broker {
namespace {

using testing::FreshDatabase;
using testing::QueryValue;
using testing::WaitUntil;

class HaLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RMA_REQUIRE_PG();
    db_ = std::make_unique<FreshDatabase>();
  }
  std::unique_ptr<PgLease> NewLease(const std::string& holder, Duration lease = Seconds(2)) {
    PgLeaseOptions o;
    o.url = db_->url();
    o.holder = holder;
    o.lease.lease = lease;
    o.lease.standby_poll = Ms(100);
    auto l = std::make_unique<PgLease>(o, &clock_);
    l->SetEndpoints("tcp://w-" + holder, "tcp://c-" + holder);
    l->Start();
    return l;
  }
  std::string Query(const std::string& sql) { return QueryValue(db_->url(), sql); }

  SystemClock clock_;
  std::unique_ptr<FreshDatabase> db_;
};

TEST_F(HaLeaseTest, OneLeadsTheOtherWaitsAndKnowsWhere) {
  auto a = NewLease("a");
  ASSERT_TRUE(WaitUntil([&] { return a->Leading(); }, 10s));
  auto b = NewLease("b");
  ASSERT_TRUE(WaitUntil([&] { return b->leader().live; }, 10s));
  EXPECT_FALSE(b->Leading());
  EXPECT_EQ(b->leader().holder, "a");
  EXPECT_EQ(b->leader().clients_endpoint, "tcp://c-a");
  EXPECT_EQ(b->leader().epoch, a->epoch());
  // Renewals keep it: well past one lease, a still leads and b waits.
  const auto until = std::chrono::steady_clock::now() + 3s;
  WaitUntil([&] { return !a->Leading() || std::chrono::steady_clock::now() >= until; }, 4s);
  EXPECT_TRUE(a->Leading());
  EXPECT_FALSE(b->Leading());
}

TEST_F(HaLeaseTest, AReleasedLeaseGoesToTheStandbyWithANewerEpoch) {
  auto a = NewLease("a");
  ASSERT_TRUE(WaitUntil([&] { return a->Leading(); }, 10s));
  const int64_t first = a->epoch();
  auto b = NewLease("b");
  ASSERT_TRUE(WaitUntil([&] { return b->leader().live; }, 10s));
  a.reset();  // a clean stop gives the lease up
  ASSERT_TRUE(WaitUntil([&] { return b->Leading(); }, 5s));
  EXPECT_EQ(b->epoch(), first + 1);
  EXPECT_EQ(Query("SELECT holder FROM broker_lease"), "b");
}

TEST_F(HaLeaseTest, ALeaderWhoseLeaseIsTakenStepsDown) {
  auto a = NewLease("a");
  ASSERT_TRUE(WaitUntil([&] { return a->Leading(); }, 10s));
  // Another broker took over (as after a pause that outlived the lease).
  Query(
      "UPDATE broker_lease SET epoch = epoch + 1, holder = 'other', expires_at = clock_timestamp() "
      "+ interval '1 hour' RETURNING epoch");
  EXPECT_TRUE(WaitUntil([&] { return !a->Leading(); }, 5s));
  EXPECT_EQ(a->leader().holder, "a");  // what it knew; its next poll reads the new leader
  EXPECT_TRUE(WaitUntil([&] { return a->leader().holder == "other"; }, 5s));
}

TEST_F(HaLeaseTest, WritesOfAnEpochThatNoLongerLeadsAreFenced) {
  auto a = NewLease("a");
  ASSERT_TRUE(WaitUntil([&] { return a->Leading(); }, 10s));
  std::atomic<int64_t> fenced{0};
  PgStoreOptions o;
  o.url = db_->url();
  o.connect_wait = 2s;
  o.ha_epoch = a->epoch();
  o.on_fenced = [&](int64_t e) {
    fenced = e;
    a->OnFenced(e);
  };
  auto opened = PgStore::Open(o, &clock_);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Harness h(std::move(*opened));
  // While it leads, writes go in.
  ASSERT_TRUE(h.WaitDurable(h.store().Write(Insert(Task(1)))));
  EXPECT_EQ(Query("SELECT count(*) FROM tasks"), "1");

  Query(
      "UPDATE broker_lease SET epoch = epoch + 1, holder = 'other', expires_at = clock_timestamp() "
      "+ interval '1 hour' RETURNING epoch");
  // A small batch (one multi-statement query) and a large one (COPY): neither gets in.
  const uint64_t small = h.store().Write(Insert(Task(2)));
  h.store().Flush();
  ASSERT_TRUE(h.PumpUntil([&] { return !h.store().available(); }, 10s));
  EXPECT_EQ(fenced.load(), o.ha_epoch);
  EXPECT_LT(h.store().durable_seq(), small);
  EXPECT_FALSE(a->Leading());
  h.Reset();  // stopping does not drain fenced writes either
  EXPECT_EQ(Query("SELECT count(*) FROM tasks"), "1");

  // A second store of the same stale epoch, with a batch large enough for the COPY path.
  fenced = 0;
  auto again = PgStore::Open(o, &clock_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  Harness h2(std::move(*again));
  for (uint64_t id = 3; id < 103; ++id) h2.store().Write(Insert(Task(id)));
  h2.store().Flush();
  ASSERT_TRUE(h2.PumpUntil([&] { return !h2.store().available(); }, 10s));
  EXPECT_EQ(fenced.load(), o.ha_epoch);
  h2.Reset();
  EXPECT_EQ(Query("SELECT count(*) FROM tasks"), "1");
}

TEST_F(HaLeaseTest, AccountWritesOfASessionWithAStaleEpochAreFenced) {
  auto a = NewLease("a");
  ASSERT_TRUE(WaitUntil([&] { return a->Leading(); }, 10s));
  const std::string mine = std::to_string(a->epoch());
  // The leader's session (as PrepareHaSession sets it up) writes accounts.
  Query("SET rma.epoch = '" + mine +
        "'; INSERT INTO accounts (name, role) VALUES ('x', 'member') "
        "RETURNING name");
  EXPECT_EQ(Query("SELECT count(*) FROM accounts"), "1");
  Query(
      "UPDATE broker_lease SET epoch = epoch + 1, holder = 'other', expires_at = clock_timestamp() "
      "+ interval '1 hour' RETURNING epoch");
  EXPECT_THROW(Query("SET rma.epoch = '" + mine +
                     "'; INSERT INTO accounts (name, role) VALUES ('y', 'member') RETURNING name"),
               std::exception);
  EXPECT_THROW(Query("SET rma.epoch = '" + mine + "'; DELETE FROM accounts RETURNING name"),
               std::exception);
  EXPECT_EQ(Query("SELECT count(*) FROM accounts"), "1");
  // A session without an epoch (no --ha, an operator's psql) is not fenced.
  Query("INSERT INTO accounts (name, role) VALUES ('z', 'member') RETURNING name");
  EXPECT_EQ(Query("SELECT count(*) FROM accounts"), "2");
}

TEST_F(HaLeaseTest, BrokersWithAndWithoutHaDoNotShareADatabase) {
  PgStoreOptions plain;
  plain.url = db_->url();
  plain.connect_wait = 2s;
  {
    auto single = PgStore::Open(plain, &clock_);
    ASSERT_TRUE(single.ok()) << single.status().ToString();
    PgStoreOptions ha = plain;
    ha.ha_epoch = 1;
    auto refused = PgStore::Open(ha, &clock_);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(refused.status().message().find("without --ha"), std::string::npos);
  }
  // A broker without --ha on another database of the same server (another pool) is no obstacle:
  // advisory locks are per database, and so is the check.
  {
    FreshDatabase other;
    PgStoreOptions elsewhere = plain;
    elsewhere.url = other.url();
    auto neighbour = PgStore::Open(elsewhere, &clock_);
    ASSERT_TRUE(neighbour.ok()) << neighbour.status().ToString();
    PgStoreOptions ha = plain;
    ha.ha_epoch = 1;
    auto opened = PgStore::Open(ha, &clock_);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  }
  auto a = NewLease("a");
  ASSERT_TRUE(WaitUntil([&] { return a->Leading(); }, 10s));
  auto refused = PgStore::Open(plain, &clock_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("start this broker with --ha"), std::string::npos);
}

}  // namespace
}  // namespace rma::broker
