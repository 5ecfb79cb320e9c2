// MinuteStatsRecorder: turns the scheduler's cumulative per-service counters and latency
// histograms into per-minute rows for the store (service_stats_minute), so "today" and the history
// survive a broker restart. It keeps, per service, the counters as they were when it last returned
// rows; a row is the difference, stamped with the minute it was counted in. Percentiles come from
// the histograms' Prometheus buckets, read like Prometheus' histogram_quantile (linear within a
// bucket). Each row also carries the service's queue depth when it was made; an idle service with
// tasks waiting writes a row of its depth alone once a minute. Owned by the broker loop thread.
#pragma once

#include <cstdint>
#include <vector>

#include "broker/scheduler.h"
#include "broker/store_types.h"
#include "common/clock.h"

namespace rma::broker {

class MinuteStatsRecorder {
 public:
  // `flush_every`: how often the minute in progress is also written (its rows so far; the store
  // merges rows of one minute), which bounds what a kill -9 loses.
  explicit MinuteStatsRecorder(Duration flush_every = Seconds(10)) : flush_every_(flush_every) {}

  // Call once per loop iteration before the iteration's events: returns the rows counted since the
  // last rows returned, when their minute has ended or flush_every has passed (usually nothing).
  std::vector<ServiceMinuteStats> Poll(Time now, const Scheduler& scheduler);
  // What Poll has not returned yet, without taking it (for a stats query).
  std::vector<ServiceMinuteStats> Current(const Scheduler& scheduler) const;
  // Takes what Poll has not returned yet (at shutdown).
  std::vector<ServiceMinuteStats> Drain(const Scheduler& scheduler);

 private:
  struct Baseline {
    Counters counters;
    std::vector<uint64_t> queue_wait;  // cumulative Prometheus bucket counts
    std::vector<uint64_t> run_time;
    uint64_t queue_wait_count = 0;  // including values past the last bucket
    uint64_t run_time_count = 0;
  };
  // `depth_only`: also a row for each idle service with tasks waiting (its queue depth only).
  std::vector<ServiceMinuteStats> Rows(const Scheduler& scheduler, bool depth_only) const;
  void Rebase(const Scheduler& scheduler);

  Duration flush_every_;
  int64_t minute_ms_ = -1;      // start of the minute being collected; -1 before the first Poll
  Time last_rows_{};            // when rows were last returned
  std::vector<Baseline> base_;  // by service index: the counters when rows were last returned
};

// The q-quantile (0..1) in milliseconds of the values counted between two cumulative bucket
// snapshots of a LatencyHistogram (bounds: LatencyHistogram::PrometheusBounds()). 0 when none.
double BucketQuantileMs(const std::vector<uint64_t>& before, const std::vector<uint64_t>& after,
                        uint64_t count_before, uint64_t count_after, double q);

}  // namespace rma::broker
