// The manifest follows the health probes: probed services join after one good probe and leave after
// the configured number of failures; services without a probe are always advertised. The Monitor
// publishes each round through its wake descriptor, on its own thread.
#include "worker/monitor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>

namespace rma::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A probed handler whose health the test sets.
class FakeBackend final : public Handler {
 public:
  std::string_view kind() const override { return "http"; }
  bool probed() const override { return true; }
  std::string Describe() const override { return "fake"; }
  Result<HandlerOutput> Run(const proto::TaskAssignment&, const CancelToken&) override {
    return HandlerOutput{};
  }
  Status CheckHealth() override {
    ++probes;
    return up.load() ? Status::Ok() : Status::Unavailable("connection refused");
  }
  std::atomic<bool> up{false};
  std::atomic<int> probes{0};
};

class Builtin final : public Handler {
 public:
  std::string_view kind() const override { return "builtin"; }
  std::string Describe() const override { return "builtin"; }
  Result<HandlerOutput> Run(const proto::TaskAssignment&, const CancelToken&) override {
    return HandlerOutput{};
  }
};

class CountingSampler final : public Sampler {
 public:
  Readings Sample() override { return Readings{0.5, static_cast<double>(++samples), 0.25}; }
  int samples = 0;
};

std::vector<std::string> Names(const std::vector<proto::ServiceInfo>& services) {
  std::vector<std::string> out;
  out.reserve(services.size());
  for (const auto& s : services) out.push_back(s.name);
  return out;
}

TEST(ManifestTrackerTest, ProbedServicesJoinOnSuccessAndLeaveAfterRepeatedFailures) {
  auto rag = std::make_shared<FakeBackend>();
  ManifestTracker tracker(
      {{"echo", "builtin:echo", std::make_shared<Builtin>()}, {"rag", "http://x", rag}},
      /*failures_to_withdraw=*/2);
  EXPECT_THAT(Names(tracker.Advertised()), ElementsAre("echo"));

  auto first = tracker.Observe(1, Status::Unavailable("refused"));
  ASSERT_TRUE(first.has_value()) << "a backend down at start-up is reported once";
  EXPECT_THAT(*first, HasSubstr("not advertised"));
  EXPECT_FALSE(tracker.Observe(1, Status::Unavailable("refused")).has_value());

  auto up = tracker.Observe(1, Status::Ok());
  ASSERT_TRUE(up.has_value());
  EXPECT_THAT(*up, HasSubstr("advertised"));
  EXPECT_THAT(Names(tracker.Advertised()), ElementsAre("echo", "rag"));
  EXPECT_EQ(tracker.Advertised()[1].kind, "http");
  EXPECT_FALSE(tracker.Observe(1, Status::Ok()).has_value());

  // One failed probe is not enough to withdraw it, and a success in between starts over.
  EXPECT_FALSE(tracker.Observe(1, Status::Unavailable("timeout")).has_value());
  EXPECT_FALSE(tracker.Observe(1, Status::Ok()).has_value());
  EXPECT_FALSE(tracker.Observe(1, Status::Unavailable("timeout")).has_value());
  auto down = tracker.Observe(1, Status::Unavailable("HTTP 503"));
  ASSERT_TRUE(down.has_value());
  EXPECT_THAT(*down, HasSubstr("withdrawn"));
  EXPECT_THAT(*down, HasSubstr("HTTP 503"));
  EXPECT_THAT(Names(tracker.Advertised()), ElementsAre("echo"));

  // Back again.
  EXPECT_TRUE(tracker.Observe(1, Status::Ok()).has_value());
  EXPECT_THAT(Names(tracker.Advertised()), ElementsAre("echo", "rag"));
  // Unprobed services ignore probe results.
  EXPECT_FALSE(tracker.Observe(0, Status::Unavailable("x")).has_value());
  EXPECT_THAT(Names(tracker.Advertised()), ElementsAre("echo", "rag"));
}

TEST(MonitorTest, EachRoundProbesSamplesAndPublishes) {
  auto rag = std::make_shared<FakeBackend>();
  auto sampler = std::make_unique<CountingSampler>();
  Monitor monitor({{"echo", "builtin:echo", std::make_shared<Builtin>()}, {"rag", "x", rag}},
                  MonitorOptions{Seconds(3600), 1}, std::move(sampler));
  EXPECT_TRUE(monitor.has_probes());
  MonitorSnapshot before = monitor.Take();
  EXPECT_FALSE(before.probed);
  EXPECT_THAT(Names(before.manifest), ElementsAre("echo"));

  rag->up = true;
  monitor.RunRound();
  pollfd p{monitor.wake_fd(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 1) << "a finished round wakes the control thread";
  MonitorSnapshot after = monitor.Take();
  EXPECT_EQ(poll(&p, 1, 0), 0) << "Take() clears the wake-up";
  EXPECT_TRUE(after.probed);
  EXPECT_THAT(Names(after.manifest), ElementsAre("echo", "rag"));
  EXPECT_EQ(after.readings, (Readings{0.5, 1, 0.25}));

  rag->up = false;
  monitor.RunRound();
  EXPECT_THAT(Names(monitor.Take().manifest), ElementsAre("echo"));
  EXPECT_EQ(rag->probes, 2);
}

TEST(MonitorTest, WithoutProbesTheManifestIsReadyAtOnce) {
  Monitor monitor({{"echo", "builtin:echo", std::make_shared<Builtin>()}}, MonitorOptions{},
                  nullptr);
  EXPECT_FALSE(monitor.has_probes());
  MonitorSnapshot s = monitor.Take();
  EXPECT_TRUE(s.probed);
  EXPECT_THAT(Names(s.manifest), ElementsAre("echo"));
}

TEST(MonitorTest, TheThreadProbesUntilStopped) {
  auto rag = std::make_shared<FakeBackend>();
  rag->up = true;
  Monitor monitor({{"rag", "x", rag}}, MonitorOptions{Ms(1), 1}, nullptr);
  monitor.Start();
  pollfd p{monitor.wake_fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 20000), 1);
  EXPECT_THAT(Names(monitor.Take().manifest), ElementsAre("rag"));
  // Keeps probing: a withdrawal shows up in a later round.
  rag->up = false;
  bool withdrawn = false;
  for (int i = 0; i < 1000 && !withdrawn; ++i) {
    ASSERT_EQ(poll(&p, 1, 20000), 1);
    withdrawn = monitor.Take().manifest.empty();
  }
  EXPECT_TRUE(withdrawn);
  EXPECT_GE(rag->probes, 2);
  monitor.Stop();
}

}  // namespace
}  // namespace rma::worker
