// Unit test of the per-worker metrics the monitoring examples alert on (deploy/prometheus/): the
// broker's metrics document lists every known worker with its liveness and the age of its last
// heartbeat (broker/admin.cc), and the gateway renders them as rma_worker_up and
// rma_worker_heartbeat_age_seconds (gateway/metrics.cc). The scheduler runs on a fake clock.
#include <gtest/gtest.h>

#include <string>

#include "broker/admin.h"
#include "broker/scheduler_test_util.h"
#include "gateway/metrics.h"

namespace rma::broker::testing {
namespace {

using nlohmann::json;

class WorkerMetricsTest : public SchedulerFixture {};

TEST_F(WorkerMetricsTest, EveryKnownWorkerHasUpAndHeartbeatAge) {
  Register("gpu-1", GpuCaps(), {"vllm"});
  Register("cpu-1", CpuCaps(), {"echo"});
  Advance(Ms(500));
  // cpu-1 stops heartbeating: after `liveness` intervals it is offline, and stays listed.
  beating_.erase("cpu-1");
  AdvanceInSteps(Seconds(10));

  json doc = MetricsDocument(s(), now());
  ASSERT_TRUE(doc["workers"].is_array()) << doc.dump();
  ASSERT_EQ(doc["workers"].size(), 2u);
  for (const json& w : doc["workers"]) {
    if (w["worker_id"] == "gpu-1") {
      EXPECT_TRUE(w["alive"].get<bool>());
      EXPECT_LT(w["heartbeat_age_s"].get<double>(), 1.0);
      EXPECT_EQ(w["tier"], 1);
    } else {
      EXPECT_EQ(w["worker_id"], "cpu-1");
      EXPECT_FALSE(w["alive"].get<bool>());
      EXPECT_NEAR(w["heartbeat_age_s"].get<double>(), 10.0, 0.2);
    }
  }

  std::string text;
  gateway::RenderBrokerMetrics(doc, true, &text);
  EXPECT_NE(text.find("# TYPE rma_worker_up gauge\n"), std::string::npos) << text;
  EXPECT_NE(text.find("rma_worker_up{worker_id=\"gpu-1\",name=\"gpu-1\",tier=\"1\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("rma_worker_up{worker_id=\"cpu-1\",name=\"cpu-1\",tier=\"2\"} 0\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE rma_worker_heartbeat_age_seconds gauge\n"), std::string::npos);
  EXPECT_NE(text.find("rma_worker_heartbeat_age_seconds{worker_id=\"cpu-1\",name=\"cpu-1\"} 10"),
            std::string::npos)
      << text;
}

TEST(WorkerMetricsRenderTest, NamesAreEscapedAndOddEntriesSkipped) {
  json doc = {{"workers", json::array({{{"worker_id", "w\"1"},
                                        {"name", "a\\b"},
                                        {"tier", 3},
                                        {"alive", true},
                                        {"heartbeat_age_s", 1.5}},
                                       "not an object"})}};
  std::string text;
  gateway::RenderBrokerMetrics(doc, true, &text);
  EXPECT_NE(text.find("rma_worker_up{worker_id=\"w\\\"1\",name=\"a\\\\b\",tier=\"3\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find("rma_worker_heartbeat_age_seconds{worker_id=\"w\\\"1\",name=\"a\\\\b\"} 1.5\n"),
      std::string::npos)
      << text;
}

}  // namespace
}  // namespace rma::broker::testing
