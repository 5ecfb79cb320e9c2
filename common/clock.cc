// SystemClock and time formatting; see clock.h.
#include "common/clock.h"

#include <fmt/format.h>

#include <ctime>

namespace rma {

SystemClock::SystemClock()
    : wall_anchor_(std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now())),
      steady_anchor_(std::chrono::steady_clock::now()) {}

Time SystemClock::Now() const {
  return wall_anchor_ +
         std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - steady_anchor_);
}

namespace {
std::tm UtcParts(Time t, int64_t* millis) {
  int64_t ms = ToUnixMs(t);
  int64_t secs = ms / 1000;
  int64_t rem = ms % 1000;
  if (rem < 0) {
    rem += 1000;
    secs -= 1;
  }
  if (millis != nullptr) *millis = rem;
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm parts{};
  gmtime_r(&tt, &parts);
  return parts;
}
}  // namespace

std::string FormatTime(Time t) {
  int64_t millis = 0;
  std::tm p = UtcParts(t, &millis);
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z", p.tm_year + 1900,
                     p.tm_mon + 1, p.tm_mday, p.tm_hour, p.tm_min, p.tm_sec, millis);
}

std::string FormatDate(Time t) {
  std::tm p = UtcParts(t, nullptr);
  return fmt::format("{:04d}-{:02d}-{:02d}", p.tm_year + 1900, p.tm_mon + 1, p.tm_mday);
}

Time StartOfUtcDay(Time t) {
  constexpr int64_t kDayMs = 86'400'000;
  int64_t ms = ToUnixMs(t);
  int64_t day = ms >= 0 ? ms / kDayMs : (ms - kDayMs + 1) / kDayMs;
  return FromUnixMs(day * kDayMs);
}

}  // namespace rma
