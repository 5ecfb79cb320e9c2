// The console's pure rules (console.h): the attempt log, the task browser's cursor and filters, the
// connection history and the history charts' buckets.
#include "broker/console.h"

#include <gtest/gtest.h>

namespace rma::broker {
namespace {

const Time kT0 = FromUnixMs(1'800'000'000'000);

TEST(AttemptLogTest, RecordsStartsAndEndsOldestFirst) {
  std::vector<proto::AttemptEntry> log;
  OpenAttempt(&log, 1, "w1", kT0);
  CloseAttempt(&log, kT0 + Seconds(2), "failed", "handler_error", "boom");
  OpenAttempt(&log, 2, "w2", kT0 + Seconds(3));
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].outcome, "failed");
  EXPECT_EQ(log[0].ended_at_ms, ToUnixMs(kT0) + 2000);
  EXPECT_EQ(log[0].error, "boom");
  EXPECT_EQ(log[1].outcome, "running");
  EXPECT_EQ(log[1].ended_at_ms, 0);
  CloseAttempt(&log, kT0 + Seconds(4), "completed", "", "");
  EXPECT_EQ(log[1].outcome, "completed");
  // Nothing open: a second close changes nothing.
  CloseAttempt(&log, kT0 + Seconds(9), "cancelled", "", "");
  EXPECT_EQ(log[1].outcome, "completed");
}

TEST(AttemptLogTest, AnAttemptLeftOpenIsClosedAsLostByTheNext) {
  std::vector<proto::AttemptEntry> log;
  OpenAttempt(&log, 1, "w1", kT0);
  OpenAttempt(&log, 2, "w2", kT0 + Seconds(1));
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].outcome, "worker_lost");
  EXPECT_EQ(log[1].outcome, "running");
}

TEST(AttemptLogTest, ALeaseGivenBackReopensItsEntry) {
  std::vector<proto::AttemptEntry> log;
  OpenAttempt(&log, 1, "w1", kT0);
  CloseAttempt(&log, kT0 + Seconds(1), "worker_lost", "worker_lost", "missed heartbeats");
  OpenAttempt(&log, 1, "w1", kT0 + Seconds(2));  // it comes back still running attempt 1
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].outcome, "running");
  EXPECT_EQ(log[0].ended_at_ms, 0);
  EXPECT_TRUE(log[0].error.empty());
  EXPECT_EQ(log[0].started_at_ms, ToUnixMs(kT0));
}

TEST(AttemptLogTest, IsBoundedAndKeepsTheNewest) {
  std::vector<proto::AttemptEntry> log;
  for (uint32_t a = 1; a <= proto::kMaxAttemptLog + 10; ++a) {
    OpenAttempt(&log, a, "w", kT0);
    CloseAttempt(&log, kT0, "requeued", "", std::string(5000, 'x'));
  }
  ASSERT_EQ(log.size(), proto::kMaxAttemptLog);
  EXPECT_EQ(log.back().attempt, proto::kMaxAttemptLog + 10);
  EXPECT_EQ(log.front().attempt, 11u);
  EXPECT_EQ(log.back().error.size(), proto::kMaxAttemptErrorBytes);
}

TEST(ListCursorTest, RoundTripsAndRefusesAnythingElse) {
  ListCursor c{1'800'000'000'123'456, 18'446'744'073'709'551'615ull};
  auto back = DecodeCursor(EncodeCursor(c));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, c);
  EXPECT_LE(EncodeCursor(c).size(), 48u);
  for (const char* bad :
       {"", ".", "1.", ".1", "a.1", "1.a", "-1.2", "1.2.3", "1 .2", "99999999999999999999999.1"}) {
    EXPECT_FALSE(DecodeCursor(bad).ok()) << bad;
  }
}

TEST(ListFilterTest, AccountIsAnAdminFilterAndOwnersSeeTheirOwn) {
  proto::List l;
  l.owner = "alice";
  auto f = ParseListFilter(l);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->owner, "alice");
  l.account = "bob";
  EXPECT_EQ(ParseListFilter(l).status().code(), StatusCode::kPermissionDenied);
  l.admin = true;
  f = ParseListFilter(l);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->owner, "bob");
  l.account.clear();
  EXPECT_FALSE(ParseListFilter(l)->owner.has_value());
  l.status = "nope";
  EXPECT_EQ(ParseListFilter(l).status().code(), StatusCode::kInvalidArgument);
  l.status.clear();
  l.cursor = "x";
  EXPECT_EQ(ParseListFilter(l).status().code(), StatusCode::kInvalidArgument);
  l.cursor.clear();
  l.limit = 50000;
  EXPECT_EQ(ParseListFilter(l)->limit, kMaxListLimit);
}

TEST(ListFilterTest, MatchesEveryFilterAndPagesAfterTheCursor) {
  TaskRecord t;
  t.id = TaskId(7);
  t.service = "ocr";
  t.status = proto::TaskStatus::kDead;
  t.owner = "alice";
  t.worker_id = "w1";
  t.error_code = "timeout";
  t.created_at = kT0;
  proto::List l;
  l.admin = true;
  auto match = [&] { return Matches(*ParseListFilter(l), t); };
  EXPECT_TRUE(match());
  l.service = "ocr";
  l.status = "dead";
  l.worker_id = "w1";
  l.error_code = "timeout";
  l.account = "alice";
  l.since_ms = ToUnixMs(kT0);
  l.until_ms = ToUnixMs(kT0) + 1;
  EXPECT_TRUE(match());
  l.until_ms = ToUnixMs(kT0);  // exclusive
  EXPECT_FALSE(match());
  l.until_ms = 0;
  l.worker_id = "w2";
  EXPECT_FALSE(match());
  l.worker_id.clear();
  // After a cursor: only what comes later in the order (older, or as old with a smaller id).
  l.cursor = EncodeCursor({ToUnixUs(kT0), 8});
  EXPECT_TRUE(match());
  l.cursor = EncodeCursor({ToUnixUs(kT0), 7});
  EXPECT_FALSE(match());
  l.cursor = EncodeCursor({ToUnixUs(kT0) - 1, 9});
  EXPECT_FALSE(match());
}

TEST(ConnectionHistoryTest, KeepsTheLastFifty) {
  std::deque<ConnectionEvent> events;
  for (int i = 0; i < 120; ++i) {
    NoteConnection(&events, kT0 + Seconds(i), i % 2 ? "connected" : "disconnected",
                   std::string(1000, 'd'));
  }
  ASSERT_EQ(events.size(), kMaxConnectionEvents);
  EXPECT_EQ(events.back().at, kT0 + Seconds(119));
  EXPECT_EQ(events.front().at, kT0 + Seconds(70));
  EXPECT_EQ(events.back().detail.size(), 200u);
}

TEST(HistoryTest, RangesHaveTheirStepsAndPoints) {
  EXPECT_EQ(ParseHistoryRange("1h")->points, 60);
  EXPECT_EQ(ParseHistoryRange("24h")->step_s, 900);
  EXPECT_EQ(ParseHistoryRange("24h")->points, 96);
  EXPECT_EQ(ParseHistoryRange("7d")->step_s, 7200);
  EXPECT_EQ(ParseHistoryRange("7d")->points, 84);
  EXPECT_FALSE(ParseHistoryRange("2h").ok());
}

ServiceMinuteStats Minute(Time at, const std::string& service, uint64_t completed, uint64_t samples,
                          double p50, int64_t depth) {
  ServiceMinuteStats m;
  m.minute = at;
  m.service = service;
  m.submitted = completed;
  m.completed = completed;
  m.queue_wait_samples = samples;
  m.queue_wait_p50_ms = p50;
  m.queue_wait_p99_ms = p50 * 2;
  m.queue_depth = depth;
  return m;
}

TEST(HistoryTest, BucketsAddCountsAndWeighPercentilesBySamples) {
  const Time now = FromUnixMs(1'800'000'000'000 / 900'000 * 900'000 + 5 * 60'000 + 7'000);
  const Time bucket = FromUnixMs(ToUnixMs(now) / 900'000 * 900'000);
  std::vector<ServiceMinuteStats> rows = {
      Minute(bucket, "a", 10, 1, 100, 4), Minute(bucket + Seconds(60), "a", 20, 3, 200, 6),
      Minute(bucket + Seconds(60), "b", 5, 0, 0, 1),
      Minute(bucket - Seconds(24 * 3600), "a", 99, 1, 1, 1)};  // out of range
  std::vector<HistoryPoint> points = BucketHistory(*ParseHistoryRange("24h"), now, rows);
  ASSERT_EQ(points.size(), 96u);
  const HistoryPoint& last = points.back();
  EXPECT_EQ(last.at, bucket);
  EXPECT_EQ(last.completed, 35u);
  ASSERT_TRUE(last.queue_wait_p50_ms.has_value());
  EXPECT_DOUBLE_EQ(*last.queue_wait_p50_ms, 175.0);  // (100*1 + 200*3) / 4
  EXPECT_EQ(last.queue_depth, 7);                    // a's last minute (6) + b's (1)
  EXPECT_NEAR(last.throughput_per_s, 35.0 / 900, 0.001);
  EXPECT_EQ(points[94].at, bucket - Seconds(900));
  const HistoryPoint& empty = points[0];
  EXPECT_EQ(empty.completed, 0u);
  EXPECT_FALSE(empty.queue_wait_p50_ms.has_value());
  EXPECT_FALSE(empty.run_time_p99_ms.has_value());
  EXPECT_EQ(empty.queue_depth, 0);
}

}  // namespace
}  // namespace rma::broker
