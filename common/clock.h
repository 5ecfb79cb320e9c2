// Time for rma: one representation (microseconds since the Unix epoch) and an injectable Clock.
//
// Core logic never reads a clock itself: the broker loop reads Clock::Now() once per event and
// passes it in, and tests drive a FakeClock (Envoy's SimulatedTimeSystem idea). SystemClock is wall
// time anchored once and then advanced by the monotonic clock, so a wall-clock step (NTP) cannot
// reorder timers in a running process. Both clocks are safe to read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace rma {

using Duration = std::chrono::microseconds;
using Time = std::chrono::time_point<std::chrono::system_clock, Duration>;

inline constexpr Duration Ms(int64_t ms) { return std::chrono::milliseconds(ms); }
inline constexpr Duration Seconds(int64_t s) { return std::chrono::seconds(s); }

inline int64_t ToUnixMs(Time t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline int64_t ToUnixUs(Time t) { return t.time_since_epoch().count(); }
inline Time FromUnixMs(int64_t ms) { return Time(std::chrono::milliseconds(ms)); }
inline Time FromUnixUs(int64_t us) { return Time(Duration(us)); }
inline int64_t ToMs(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}
inline double ToSecondsF(Duration d) { return static_cast<double>(d.count()) / 1e6; }

// RFC 3339 in UTC with milliseconds: "2026-11-22T10:20:00.123Z".
std::string FormatTime(Time t);
// The date part only, "2026-11-22", in UTC.
std::string FormatDate(Time t);
// Start of the UTC day that holds t.
Time StartOfUtcDay(Time t);

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Time Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  SystemClock();
  Time Now() const override;

 private:
  Time wall_anchor_;
  std::chrono::steady_clock::time_point steady_anchor_;
};

// A clock that moves only when told to. Starts at a fixed, realistic date so formatted times are
// stable.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(Time start = FromUnixMs(1'800'000'000'000)) : now_us_(ToUnixUs(start)) {}
  Time Now() const override { return FromUnixUs(now_us_.load(std::memory_order_acquire)); }
  void Advance(Duration d) { now_us_.fetch_add(d.count(), std::memory_order_acq_rel); }
  void Set(Time t) { now_us_.store(ToUnixUs(t), std::memory_order_release); }

 private:
  std::atomic<int64_t> now_us_;
};

}  // namespace rma
