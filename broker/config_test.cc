// Tests of the broker's config file and validation.
#include "broker/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace rma::broker {
namespace {

std::string WriteTemp(const std::string& content) {
  char path[] = "/tmp/rma-config-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  std::ofstream(path) << content;
  return path;
}

TEST(ConfigTest, FileOverridesDefaults) {
  std::string path = WriteTemp(R"({
    // comments are allowed
    "heartbeat_ms": 500, "liveness": 5, "default_max_attempts": 7,
    "tier_cpu_min_cores": 6, "allow_simulated": true,
    "catalog": [{"service": "whisper", "tier": 1, "image": "w:1", "port": 9000, "min_gpu_memory_gb": 4}],
    "service_limits": {"vllm": {"max_concurrency": 2, "rate_per_s": 5.5}}
  })");
  BrokerConfig c;
  ASSERT_TRUE(LoadConfigFile(path, &c).ok());
  EXPECT_EQ(c.heartbeat_interval, Ms(500));
  EXPECT_EQ(c.liveness, 5u);
  EXPECT_EQ(c.default_max_attempts, 7u);
  EXPECT_EQ(c.tiers.cpu_min_cores, 6u);
  EXPECT_TRUE(c.allow_simulated);
  ASSERT_EQ(c.catalog.size(), 1u);
  EXPECT_EQ(c.catalog[0].service, "whisper");
  EXPECT_DOUBLE_EQ(c.catalog[0].min_gpu_memory_gb, 4);
  EXPECT_EQ(c.service_limits["vllm"].max_concurrency, 2u);
  EXPECT_DOUBLE_EQ(c.service_limits["vllm"].rate_per_s, 5.5);
  std::remove(path.c_str());
}

TEST(ConfigTest, UnknownKeysAndBadValuesAreErrors) {
  BrokerConfig c;
  std::string typo = WriteTemp(R"({"heartbeat": 500})");
  Status s = LoadConfigFile(typo, &c);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("heartbeat"), std::string::npos);
  std::string negative = WriteTemp(R"({"liveness": -1})");
  EXPECT_FALSE(LoadConfigFile(negative, &c).ok());
  std::string tier = WriteTemp(R"({"catalog": [{"service": "x", "tier": 4}]})");
  EXPECT_FALSE(LoadConfigFile(tier, &c).ok());
  std::string garbage = WriteTemp("not json");
  EXPECT_FALSE(LoadConfigFile(garbage, &c).ok());
  EXPECT_EQ(LoadConfigFile("/nonexistent/rma.json", &c).code(), StatusCode::kNotFound);
  for (const std::string& p : {typo, negative, tier, garbage}) std::remove(p.c_str());
}

TEST(ConfigTest, DonorPrioritySettings) {
  BrokerConfig c;
  EXPECT_EQ(c.aging, Seconds(60));
  EXPECT_DOUBLE_EQ(c.TierWeight(1), 3.0);
  EXPECT_DOUBLE_EQ(c.TierWeight(2), 1.5);
  EXPECT_DOUBLE_EQ(c.TierWeight(3), 1.0);
  EXPECT_EQ(c.contribution_half_life, Seconds(3600));
  std::string path = WriteTemp(
      R"({"aging_s": 2.5, "tier_weights": [4, 2, 0.5], "contribution_half_life_s": 600})");
  ASSERT_TRUE(LoadConfigFile(path, &c).ok());
  EXPECT_EQ(c.aging, Ms(2500));
  EXPECT_DOUBLE_EQ(c.TierWeight(1), 4.0);
  EXPECT_DOUBLE_EQ(c.TierWeight(3), 0.5);
  EXPECT_EQ(c.contribution_half_life, Seconds(600));
  EXPECT_TRUE(Validate(c).ok());
  std::string short_list = WriteTemp(R"({"tier_weights": [1, 2]})");
  EXPECT_FALSE(LoadConfigFile(short_list, &c).ok());
  c = BrokerConfig{};
  c.contribution_half_life = Duration(0);
  EXPECT_FALSE(Validate(c).ok());
  for (const std::string& p : {path, short_list}) std::remove(p.c_str());
}

// Verification (docs/architecture.md, "Verification"): a catalog entry's "verify" and the wait for
// a replica; a bad rule is refused naming its service.
TEST(ConfigTest, VerificationSettings) {
  BrokerConfig c;
  EXPECT_EQ(c.verify_wait, Seconds(30));
  std::string path = WriteTemp(R"({"verify_wait_ms": 5000, "catalog": [
      {"service": "sum", "tier": 2, "verify": {"sample_rate": 0.05, "compare": "numeric",
                                               "tolerance": 1e-6}},
      {"service": "llm", "tier": 1}]})");
  ASSERT_TRUE(LoadConfigFile(path, &c).ok());
  EXPECT_EQ(c.verify_wait, Seconds(5));
  ASSERT_EQ(c.catalog.size(), 2u);
  ASSERT_TRUE(c.catalog[0].verify.has_value());
  EXPECT_DOUBLE_EQ(c.catalog[0].verify->sample_rate, 0.05);
  EXPECT_EQ(c.catalog[0].verify->compare, VerifySpec::Compare::kNumeric);
  EXPECT_DOUBLE_EQ(c.catalog[0].verify->tolerance, 1e-6);
  EXPECT_FALSE(c.catalog[1].verify.has_value());
  std::string bad =
      WriteTemp(R"({"catalog": [{"service": "sum", "tier": 2, "verify": {"sample_rate": 2}}]})");
  Status s = LoadConfigFile(bad, &c);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("sum"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("sample_rate"), std::string::npos) << s.message();
  c = BrokerConfig{};
  c.verify_wait = Duration(0);
  EXPECT_FALSE(Validate(c).ok());
  for (const std::string& p : {path, bad}) std::remove(p.c_str());
}

// The reattach grace after a restart follows the heartbeat unless set; 0 is allowed (no hold).
TEST(ConfigTest, ReattachGraceDefaultsToHeartbeatTimesLiveness) {
  BrokerConfig c;
  EXPECT_EQ(c.ReattachGrace(), Seconds(9));
  std::string path = WriteTemp(R"({"heartbeat_ms": 500, "liveness": 4})");
  ASSERT_TRUE(LoadConfigFile(path, &c).ok());
  EXPECT_EQ(c.ReattachGrace(), Ms(2000));
  std::string zero = WriteTemp(R"({"reattach_grace_ms": 0})");
  ASSERT_TRUE(LoadConfigFile(zero, &c).ok());
  EXPECT_EQ(c.ReattachGrace(), Duration(0));
  for (const std::string& p : {path, zero}) std::remove(p.c_str());
}

TEST(ConfigTest, ValidateRejectsSettingsThatCannotWork) {
  BrokerConfig c;
  EXPECT_TRUE(Validate(c).ok());
  c.liveness = 0;
  EXPECT_FALSE(Validate(c).ok());
  c = BrokerConfig{};
  c.retry_backoff_max = Ms(1);
  EXPECT_FALSE(Validate(c).ok());
}

TEST(ConfigTest, DefaultCatalogCoversEveryTier) {
  std::set<uint32_t> tiers;
  for (const CatalogEntry& e : DefaultCatalog()) tiers.insert(e.tier);
  EXPECT_EQ(tiers, (std::set<uint32_t>{1, 2, 3}));
}

}  // namespace
}  // namespace rma::broker
