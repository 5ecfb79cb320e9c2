// Tests of the clocks and time formatting.
#include "common/clock.h"

#include <gtest/gtest.h>

namespace rma {
namespace {

TEST(ClockTest, FakeClockMovesOnlyWhenAdvanced) {
  FakeClock clock(FromUnixMs(1000));
  EXPECT_EQ(ToUnixMs(clock.Now()), 1000);
  clock.Advance(Ms(250));
  EXPECT_EQ(ToUnixMs(clock.Now()), 1250);
  clock.Set(FromUnixMs(5));
  EXPECT_EQ(ToUnixMs(clock.Now()), 5);
}

TEST(ClockTest, SystemClockIsCloseToWallTimeAndNeverGoesBack) {
  SystemClock clock;
  Time a = clock.Now();
  Time b = clock.Now();
  EXPECT_LE(a, b);
  auto wall = std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
  EXPECT_LT(std::chrono::abs(wall - b), Seconds(1));
}

TEST(ClockTest, FormatsRfc3339InUtcWithMilliseconds) {
  EXPECT_EQ(FormatTime(FromUnixMs(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatTime(FromUnixMs(1'800'000'000'123)), "2027-01-15T08:00:00.123Z");
  EXPECT_EQ(FormatDate(FromUnixMs(1'800'000'000'123)), "2027-01-15");
  EXPECT_EQ(ToUnixMs(StartOfUtcDay(FromUnixMs(1'800'000'000'123))), 1'799'971'200'000);
}

}  // namespace
}  // namespace rma
