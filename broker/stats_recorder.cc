// See stats_recorder.h.
#include "broker/stats_recorder.h"

#include <algorithm>

namespace rma::broker {

double BucketQuantileMs(const std::vector<uint64_t>& before, const std::vector<uint64_t>& after,
                        uint64_t count_before, uint64_t count_after, double q) {
  const std::vector<double>& bounds = LatencyHistogram::PrometheusBounds();
  if (count_after <= count_before) return 0;
  double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(count_after - count_before);
  uint64_t below = 0;  // values in earlier buckets
  for (size_t i = 0; i < bounds.size(); ++i) {
    uint64_t a = i < after.size() ? after[i] : 0;
    uint64_t b = i < before.size() ? before[i] : 0;
    uint64_t cumulative = a >= b ? a - b : 0;
    if (static_cast<double>(cumulative) >= rank && cumulative > below) {
      double lower = i == 0 ? 0.0 : bounds[i - 1];
      double fraction =
          (rank - static_cast<double>(below)) / static_cast<double>(cumulative - below);
      return (lower + (bounds[i] - lower) * std::clamp(fraction, 0.0, 1.0)) * 1000.0;
    }
    below = cumulative;
  }
  // Past the last finite bucket: all that can be said is "at least the largest bound".
  return bounds.back() * 1000.0;
}

void ServiceMinuteStats::Merge(const ServiceMinuteStats& o) {
  auto weighted = [](double a, uint64_t na, double b, uint64_t nb) {
    return na + nb == 0 ? 0.0
                        : (a * static_cast<double>(na) + b * static_cast<double>(nb)) /
                              static_cast<double>(na + nb);
  };
  queue_wait_p50_ms =
      weighted(queue_wait_p50_ms, queue_wait_samples, o.queue_wait_p50_ms, o.queue_wait_samples);
  queue_wait_p99_ms = std::max(queue_wait_p99_ms, o.queue_wait_p99_ms);
  run_time_p50_ms =
      weighted(run_time_p50_ms, run_time_samples, o.run_time_p50_ms, o.run_time_samples);
  run_time_p99_ms = std::max(run_time_p99_ms, o.run_time_p99_ms);
  queue_wait_samples += o.queue_wait_samples;
  run_time_samples += o.run_time_samples;
  submitted += o.submitted;
  completed += o.completed;
  failed += o.failed;
  dead += o.dead;
  if (o.queue_depth >= 0) queue_depth = o.queue_depth;  // the later value
}

namespace {
uint64_t Delta(uint64_t now, uint64_t then) { return now >= then ? now - then : 0; }
}  // namespace

void MinuteStatsRecorder::Rebase(const Scheduler& scheduler) {
  const auto& services = scheduler.services();
  base_.resize(services.size());
  for (size_t i = 0; i < services.size(); ++i) {
    base_[i].counters = services[i].counters;
    base_[i].queue_wait = services[i].queue_wait.CumulativeCounts();
    base_[i].run_time = services[i].run_time.CumulativeCounts();
    base_[i].queue_wait_count = services[i].queue_wait.count();
    base_[i].run_time_count = services[i].run_time.count();
  }
}

std::vector<ServiceMinuteStats> MinuteStatsRecorder::Rows(const Scheduler& scheduler,
                                                          bool depth_only) const {
  std::vector<ServiceMinuteStats> rows;
  if (minute_ms_ < 0) return rows;
  static const Baseline kZero{};
  const auto& services = scheduler.services();
  for (size_t i = 0; i < services.size(); ++i) {
    const Scheduler::Service& svc = services[i];
    // A service created during this minute has no baseline: everything it counted is new.
    const Baseline& b = i < base_.size() ? base_[i] : kZero;
    ServiceMinuteStats r;
    r.minute = FromUnixMs(minute_ms_);
    r.service = svc.name;
    r.submitted = Delta(svc.counters.submitted, b.counters.submitted);
    r.completed = Delta(svc.counters.completed, b.counters.completed);
    r.failed = Delta(svc.counters.failed, b.counters.failed);
    r.dead = Delta(svc.counters.dead, b.counters.dead);
    r.queue_wait_samples = Delta(svc.queue_wait.count(), b.queue_wait_count);
    r.run_time_samples = Delta(svc.run_time.count(), b.run_time_count);
    r.queue_depth = static_cast<int64_t>(svc.queued() + svc.delayed);
    if (r.submitted + r.completed + r.failed + r.dead + r.queue_wait_samples + r.run_time_samples ==
            0 &&
        (!depth_only || r.queue_depth == 0)) {
      continue;  // an idle service writes no row (but its queue depth once a minute)
    }
    if (r.queue_wait_samples > 0) {
      std::vector<uint64_t> qw = svc.queue_wait.CumulativeCounts();
      r.queue_wait_p50_ms =
          BucketQuantileMs(b.queue_wait, qw, b.queue_wait_count, svc.queue_wait.count(), 0.5);
      r.queue_wait_p99_ms =
          BucketQuantileMs(b.queue_wait, qw, b.queue_wait_count, svc.queue_wait.count(), 0.99);
    }
    if (r.run_time_samples > 0) {
      std::vector<uint64_t> rt = svc.run_time.CumulativeCounts();
      r.run_time_p50_ms =
          BucketQuantileMs(b.run_time, rt, b.run_time_count, svc.run_time.count(), 0.5);
      r.run_time_p99_ms =
          BucketQuantileMs(b.run_time, rt, b.run_time_count, svc.run_time.count(), 0.99);
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

std::vector<ServiceMinuteStats> MinuteStatsRecorder::Poll(Time now, const Scheduler& scheduler) {
  int64_t minute = ToUnixMs(now) / 60000 * 60000;
  if (minute_ms_ < 0) {
    minute_ms_ = minute;
    last_rows_ = now;
    Rebase(scheduler);
    return {};
  }
  if (minute <= minute_ms_ && now - last_rows_ < flush_every_) return {};
  // An idle service's queue depth is written when its minute ends, not at every flush.
  std::vector<ServiceMinuteStats> rows = Rows(scheduler, /*depth_only=*/minute > minute_ms_);
  Rebase(scheduler);
  minute_ms_ = std::max(minute_ms_, minute);
  last_rows_ = now;
  return rows;
}

std::vector<ServiceMinuteStats> MinuteStatsRecorder::Current(const Scheduler& scheduler) const {
  return Rows(scheduler, /*depth_only=*/true);
}

std::vector<ServiceMinuteStats> MinuteStatsRecorder::Drain(const Scheduler& scheduler) {
  std::vector<ServiceMinuteStats> rows = Rows(scheduler, /*depth_only=*/false);
  Rebase(scheduler);
  return rows;
}

}  // namespace rma::broker
