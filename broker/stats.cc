// See stats.h.
#include "broker/stats.h"

#include <algorithm>
#include <cmath>

namespace rma::broker {

const std::vector<double>& LatencyHistogram::PrometheusBounds() {
  static const std::vector<double> kBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                              0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
                                              5,      10,      30,     60,    120,    300,   600};
  return kBounds;
}

int LatencyHistogram::FineIndex(int64_t us) {
  if (us < 1) us = 1;
  // Position of the highest set bit gives the power of two; the next 3 bits the sub-bucket.
  int power = 63 - __builtin_clzll(static_cast<unsigned long long>(us));
  int sub = power >= 3 ? static_cast<int>((us >> (power - 3)) & 7)
                       : static_cast<int>((us << (3 - power)) & 7);
  int index = power * kSubBuckets + sub;
  return std::min(index, kFineBuckets - 1);
}

int64_t LatencyHistogram::FineUpperBound(int index) {
  int power = index / kSubBuckets;
  int sub = index % kSubBuckets;
  // Bucket covers [2^p * (8+sub)/8, 2^p * (9+sub)/8).
  double upper = std::ldexp(1.0, power) * (9.0 + sub) / 8.0;
  return static_cast<int64_t>(upper);
}

void LatencyHistogram::Record(Duration d) {
  int64_t us = std::max<int64_t>(0, d.count());
  ++fine_[FineIndex(us)];
  double seconds = static_cast<double>(us) / 1e6;
  const auto& bounds = PrometheusBounds();
  size_t i = std::lower_bound(bounds.begin(), bounds.end(), seconds) - bounds.begin();
  ++coarse_[i];
  ++count_;
  sum_seconds_ += seconds;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kFineBuckets; ++i) fine_[i] += other.fine_[i];
  for (size_t i = 0; i < coarse_.size(); ++i) coarse_[i] += other.coarse_[i];
  count_ += other.count_;
  sum_seconds_ += other.sum_seconds_;
}

std::vector<uint64_t> LatencyHistogram::CumulativeCounts() const {
  std::vector<uint64_t> out(PrometheusBounds().size());
  uint64_t running = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    running += coarse_[i];
    out[i] = running;
  }
  return out;
}

Duration LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return Duration(0);
  q = std::clamp(q, 0.0, 1.0);
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < kFineBuckets; ++i) {
    seen += fine_[i];
    if (seen >= rank) return Duration(FineUpperBound(i));
  }
  return Duration(FineUpperBound(kFineBuckets - 1));
}

void RateWindow::Advance(int64_t second) {
  if (second <= current_second_) return;
  int64_t steps = std::min<int64_t>(second - current_second_, static_cast<int64_t>(slots_.size()));
  for (int64_t i = 1; i <= steps; ++i) {
    slots_[static_cast<size_t>((current_second_ + i) % static_cast<int64_t>(slots_.size()))] = 0;
  }
  current_second_ = second;
}

void RateWindow::Add(Time now, uint64_t n) {
  int64_t second = ToUnixMs(now) / 1000;
  Advance(second);
  if (second < current_second_) return;  // late event for a slot already rolled over: ignore
  slots_[static_cast<size_t>(second % static_cast<int64_t>(slots_.size()))] += n;
}

double RateWindow::PerSecond(Time now, int seconds) const {
  seconds = std::clamp(seconds, 1, 60);
  int64_t second = ToUnixMs(now) / 1000;
  uint64_t total = 0;
  // Full seconds before the current one.
  for (int i = 1; i <= seconds; ++i) {
    int64_t s = second - i;
    if (s > current_second_ || current_second_ - s >= static_cast<int64_t>(slots_.size()) - 1)
      continue;
    total += slots_[static_cast<size_t>(s % static_cast<int64_t>(slots_.size()))];
  }
  return static_cast<double>(total) / seconds;
}

MinuteStats& History::At(Time now) {
  int64_t minute = ToUnixMs(now) / 60000 * 60000;
  if (minutes_.empty() || minutes_.back().minute_start_ms < minute) {
    minutes_.emplace_back();
    minutes_.back().minute_start_ms = minute;
    while (minutes_.size() > max_minutes_) minutes_.pop_front();
  }
  return minutes_.back();
}

void History::Recent(Time now, Duration window, LatencyHistogram* queue_wait,
                     LatencyHistogram* run_time) const {
  int64_t since = ToUnixMs(now - window) / 60000 * 60000;
  for (const MinuteStats& m : minutes_) {
    if (m.minute_start_ms < since) continue;
    queue_wait->Merge(m.queue_wait);
    run_time->Merge(m.run_time);
  }
}

}  // namespace rma::broker
