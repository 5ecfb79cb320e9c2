// Statistics the broker keeps in memory for the admin API, /metrics and the dashboard: counters,
// latency histograms (cumulative, in Prometheus buckets, and fine-grained for percentiles) and
// short histories for the dashboard's charts. Owned by the scheduler on the broker loop thread;
// nothing here is thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <vector>

#include "common/clock.h"

namespace rma::broker {

// Latencies in two forms: counts per Prometheus bucket (exact for /metrics) and per log-scaled
// bucket with ~9% resolution (for percentiles). 1 us .. ~70 minutes; longer values land in the last
// bucket.
class LatencyHistogram {
 public:
  // Upper bounds of the Prometheus buckets, in seconds (+Inf is implied).
  static const std::vector<double>& PrometheusBounds();

  void Record(Duration d);
  void Merge(const LatencyHistogram& other);
  uint64_t count() const { return count_; }
  double sum_seconds() const { return sum_seconds_; }
  // Cumulative count of values <= PrometheusBounds()[i].
  std::vector<uint64_t> CumulativeCounts() const;
  // q in [0, 1]; 0 when empty.
  Duration Percentile(double q) const;

 private:
  static constexpr int kSubBuckets = 8;
  static constexpr int kFineBuckets = 33 * kSubBuckets;
  static int FineIndex(int64_t us);
  static int64_t FineUpperBound(int index);

  std::array<uint64_t, kFineBuckets> fine_{};
  std::vector<uint64_t> coarse_ = std::vector<uint64_t>(PrometheusBounds().size() + 1, 0);
  uint64_t count_ = 0;
  double sum_seconds_ = 0;
};

// Events per second over the last minute, in one-second slots.
class RateWindow {
 public:
  void Add(Time now, uint64_t n = 1);
  // Average per second over the last `seconds` full seconds (<= 60).
  double PerSecond(Time now, int seconds = 60) const;

 private:
  void Advance(int64_t second);
  std::array<uint64_t, 61> slots_{};
  int64_t current_second_ = 0;
};

// One minute of the pool's history, for the dashboard's charts.
struct MinuteStats {
  int64_t minute_start_ms = 0;
  uint64_t submitted = 0;
  uint64_t completed = 0;
  uint64_t failed = 0;
  LatencyHistogram queue_wait;
  LatencyHistogram run_time;
};

class History {
 public:
  explicit History(size_t minutes = 60) : max_minutes_(minutes) {}
  MinuteStats& At(Time now);  // the bucket for now's minute, creating it (and dropping old ones)
  const std::deque<MinuteStats>& minutes() const { return minutes_; }
  // Merged latencies of the minutes that started within `window` before now.
  void Recent(Time now, Duration window, LatencyHistogram* queue_wait,
              LatencyHistogram* run_time) const;

 private:
  size_t max_minutes_;
  std::deque<MinuteStats> minutes_;
};

// Counters for the whole pool and for each service.
struct Counters {
  uint64_t submitted = 0;
  uint64_t completed = 0;
  uint64_t failed = 0;   // attempts that failed (each retry counts)
  uint64_t retried = 0;  // retries scheduled
  uint64_t dead = 0;     // dead-lettered
  uint64_t cancelled = 0;
  uint64_t expired = 0;
  uint64_t requeued = 0;  // given back because the worker was lost
  uint64_t rejected = 0;  // submissions refused (no provider for sync calls, queue full, bad input)
};

}  // namespace rma::broker
