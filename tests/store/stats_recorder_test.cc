// Unit tests (no database) for the per-minute statistics the broker writes in PostgreSQL mode:
// rows from the scheduler's counters, flushed when a minute ends or every flush interval, merged
// per minute, and percentiles estimated from histogram buckets.
#include "broker/stats_recorder.h"

#include <gtest/gtest.h>

namespace rma::broker {
namespace {

// A SchedulerOutput that forgets everything: the recorder only reads the scheduler's counters.
class NullOutput final : public SchedulerOutput {
 public:
  void ToWorker(const std::string&, const proto::ToWorkerMessage&) override {}
  void ToClient(const std::string&, const proto::ToClientMessage&) override {}
  uint64_t ToClientWhenDurable(const std::string&, proto::Accepted) override { return 0; }
  void ToClientAfter(const std::string&, proto::ToClientMessage, uint64_t) override {}
  void Record(TaskWrite) override {}
  void RecordWorker(WorkerRecord) override {}
};

proto::Submit AsyncSubmit(const std::string& service) {
  proto::Submit s;
  s.service = service;
  s.payload = "x";
  return s;
}

TEST(MinuteStatsRecorderTest, RowsFollowTheMinuteAndTheFlushInterval) {
  NullOutput out;
  Scheduler scheduler(BrokerConfig{}, &out, /*durable=*/false, 1);
  MinuteStatsRecorder recorder(Seconds(10));
  const Time t0 = FromUnixMs(1'800'000'000'000 + 5'000);  // 5 s into a minute
  EXPECT_TRUE(recorder.Poll(t0, scheduler).empty());
  for (int i = 0; i < 3; ++i) scheduler.OnSubmit(t0, "c", AsyncSubmit("echo"));
  scheduler.OnSubmit(t0, "c", AsyncSubmit("ocr"));
  EXPECT_TRUE(recorder.Poll(t0 + Seconds(1), scheduler).empty());  // neither due
  std::vector<ServiceMinuteStats> current = recorder.Current(scheduler);
  ASSERT_EQ(current.size(), 2u);
  for (const ServiceMinuteStats& r : current) {
    EXPECT_EQ(r.queue_depth, r.service == "echo" ? 3 : 1) << r.service;  // nothing runs them
  }

  std::vector<ServiceMinuteStats> rows = recorder.Poll(t0 + Seconds(10), scheduler);
  ASSERT_EQ(rows.size(), 2u);  // idle services write no row
  for (const ServiceMinuteStats& r : rows) {
    EXPECT_EQ(r.minute, FromUnixMs(1'800'000'000'000));
    EXPECT_EQ(r.submitted, r.service == "echo" ? 3u : 1u) << r.service;
  }
  // Only what is new since is counted again.
  scheduler.OnSubmit(t0 + Seconds(20), "c", AsyncSubmit("echo"));
  EXPECT_TRUE(recorder.Poll(t0 + Seconds(12), scheduler).empty());
  // The loop polls at the start of each iteration: the minute that ended gets what came before,
  // and the idle ocr its queue depth alone.
  rows = recorder.Poll(t0 + Seconds(56), scheduler);
  ASSERT_EQ(rows.size(), 2u);
  for (const ServiceMinuteStats& r : rows) {
    EXPECT_EQ(r.submitted, r.service == "echo" ? 1u : 0u) << r.service;
    EXPECT_EQ(r.queue_depth, r.service == "echo" ? 4 : 1) << r.service;
    EXPECT_EQ(r.minute, FromUnixMs(1'800'000'000'000));
  }
  EXPECT_TRUE(recorder.Poll(t0 + Seconds(56), scheduler).empty());
  scheduler.OnSubmit(t0 + Seconds(57), "c", AsyncSubmit("echo"));
  EXPECT_TRUE(recorder.Poll(t0 + Seconds(58), scheduler).empty());
  rows = recorder.Poll(t0 + Seconds(66), scheduler);  // the flush interval, within the minute
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].minute, FromUnixMs(1'800'000'060'000));
  scheduler.OnSubmit(t0 + Seconds(67), "c", AsyncSubmit("echo"));
  scheduler.OnSubmit(t0 + Seconds(67), "c", AsyncSubmit("echo"));
  rows = recorder.Drain(scheduler);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].submitted, 2u);
  EXPECT_EQ(rows[0].minute, FromUnixMs(1'800'000'060'000));
  // Nothing new is counted; what remains is the waiting tasks' depth (for the history's last
  // point).
  for (const ServiceMinuteStats& r : recorder.Current(scheduler)) {
    EXPECT_EQ(r.submitted, 0u) << r.service;
    EXPECT_GT(r.queue_depth, 0) << r.service;
  }
}

TEST(BucketQuantileTest, InterpolatesWithinTheBucketLikePrometheus) {
  LatencyHistogram before;
  LatencyHistogram after;
  before.Record(Ms(100));  // not counted: it was there before
  after.Record(Ms(100));
  for (int i = 0; i < 100; ++i) after.Record(Ms(3));  // bucket (2.5 ms, 5 ms]
  double p50 = BucketQuantileMs(before.CumulativeCounts(), after.CumulativeCounts(), before.count(),
                                after.count(), 0.5);
  EXPECT_GT(p50, 2.5);
  EXPECT_LE(p50, 5.0);
  EXPECT_DOUBLE_EQ(BucketQuantileMs(before.CumulativeCounts(), before.CumulativeCounts(),
                                    before.count(), before.count(), 0.5),
                   0.0);
  LatencyHistogram huge;
  huge.Record(Seconds(5000));
  EXPECT_DOUBLE_EQ(BucketQuantileMs({}, huge.CumulativeCounts(), 0, huge.count(), 0.99),
                   LatencyHistogram::PrometheusBounds().back() * 1000.0);
}

TEST(ServiceMinuteStatsTest, MergeAddsCountsAndWeighsPercentiles) {
  ServiceMinuteStats a;
  a.submitted = 2;
  a.run_time_samples = 3;
  a.run_time_p50_ms = 10;
  a.run_time_p99_ms = 40;
  ServiceMinuteStats b;
  b.submitted = 5;
  b.run_time_samples = 1;
  b.run_time_p50_ms = 30;
  b.run_time_p99_ms = 35;
  a.Merge(b);
  EXPECT_EQ(a.submitted, 7u);
  EXPECT_EQ(a.run_time_samples, 4u);
  EXPECT_DOUBLE_EQ(a.run_time_p50_ms, 15.0);
  EXPECT_DOUBLE_EQ(a.run_time_p99_ms, 40.0);
}

}  // namespace
}  // namespace rma::broker
