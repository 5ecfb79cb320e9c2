// Tests of the latency histogram, the per-second rate window and the per-minute history.
#include "broker/stats.h"

#include <gtest/gtest.h>

namespace rma::broker {
namespace {

TEST(LatencyHistogramTest, PercentilesAreWithinTheBucketResolution) {
  LatencyHistogram h;
  for (int i = 1; i <= 1000; ++i) h.Record(Ms(i));  // 1..1000 ms
  EXPECT_EQ(h.count(), 1000u);
  auto near = [](Duration got, double want_ms) {
    double ms = static_cast<double>(got.count()) / 1000.0;
    return ms >= want_ms * 0.95 && ms <= want_ms * 1.15;
  };
  EXPECT_TRUE(near(h.Percentile(0.5), 500)) << h.Percentile(0.5).count();
  EXPECT_TRUE(near(h.Percentile(0.99), 990)) << h.Percentile(0.99).count();
  EXPECT_EQ(LatencyHistogram().Percentile(0.5), Duration(0));
}

TEST(LatencyHistogramTest, PrometheusBucketsAreCumulativeAndExact) {
  LatencyHistogram h;
  h.Record(Duration(50));  // 0.05 ms -> le 0.0001
  h.Record(Ms(1));         // exactly 1 ms -> le 0.001
  h.Record(Ms(3));         // -> le 0.005
  h.Record(Seconds(700));  // beyond the last bound -> only +Inf
  auto c = h.CumulativeCounts();
  const auto& b = LatencyHistogram::PrometheusBounds();
  ASSERT_EQ(c.size(), b.size());
  EXPECT_EQ(c[0], 1u);
  EXPECT_EQ(c[3], 2u);  // le 0.001
  EXPECT_EQ(c[5], 3u);  // le 0.005
  EXPECT_EQ(c.back(), 3u);
  EXPECT_EQ(h.count(), 4u);
  EXPECT_NEAR(h.sum_seconds(), 700.00405, 1e-6);
}

TEST(LatencyHistogramTest, MergeAddsCounts) {
  LatencyHistogram a;
  LatencyHistogram b;
  a.Record(Ms(1));
  b.Record(Ms(2));
  a.Merge(b);
  EXPECT_EQ(a.count(), 2u);
}

TEST(RateWindowTest, AveragesFullSecondsAndForgetsOldOnes) {
  RateWindow w;
  Time t0 = FromUnixMs(1'000'000'000'000);
  for (int s = 0; s < 10; ++s) w.Add(t0 + Seconds(s), 100);
  EXPECT_DOUBLE_EQ(w.PerSecond(t0 + Seconds(10), 10), 100.0);
  EXPECT_DOUBLE_EQ(w.PerSecond(t0 + Seconds(10), 60), 1000.0 / 60);
  EXPECT_DOUBLE_EQ(w.PerSecond(t0 + Seconds(200), 60), 0.0);
}

TEST(HistoryTest, KeepsOneBucketPerMinuteAndDropsTheOldest) {
  History h(3);
  Time t0 = FromUnixMs(60'000 * 1000);
  for (int m = 0; m < 5; ++m) ++h.At(t0 + Seconds(60 * m)).completed;
  ++h.At(t0 + Seconds(60 * 4 + 30)).completed;
  ASSERT_EQ(h.minutes().size(), 3u);
  EXPECT_EQ(h.minutes().back().completed, 2u);
  EXPECT_EQ(h.minutes().front().minute_start_ms, ToUnixMs(t0 + Seconds(120)));
}

}  // namespace
}  // namespace rma::broker
