// Unit tests of the gateway's config file.
#include "gateway/options.h"

#include <gtest/gtest.h>

namespace rma::gateway {
namespace {

using nlohmann::json;

TEST(GatewayConfigTest, AppliesEveryKey) {
  GatewayOptions o;
  std::string broker = "tcp://127.0.0.1:5556";
  json j = json::parse(R"({
    "broker": "tcp://10.0.0.1:5556", "listen": "127.0.0.1:9000", "threads": 4,
    "max_body_bytes": 2048, "max_header_bytes": 4096, "submit_timeout_ms": 1500,
    "call_timeout_ms": 2000, "max_call_timeout_ms": 60000, "max_wait_ms": 30000,
    "header_timeout_ms": 5000, "metrics_timeout_ms": 500, "public_metrics": true,
    "max_pending_requests": 77,
    "rate_limit": {"rate_per_s": 50, "burst": 100},
    "cors_origins": ["https://app.example"],
    "api_keys": [{"key": "client-key-123", "name": "web"},
                 {"key": "admin-key-123", "role": "admin", "rate_per_s": 5}]
  })");
  ASSERT_TRUE(ApplyConfigJson(j, &o, &broker).ok());
  EXPECT_EQ(broker, "tcp://10.0.0.1:5556");
  EXPECT_EQ(o.listen, "127.0.0.1:9000");
  EXPECT_EQ(o.threads, 4u);
  EXPECT_EQ(o.max_body_bytes, 2048u);
  EXPECT_EQ(o.max_header_bytes, 4096u);
  EXPECT_EQ(o.submit_timeout, Ms(1500));
  EXPECT_EQ(o.default_call_timeout, Ms(2000));
  EXPECT_EQ(o.max_call_timeout, Ms(60000));
  EXPECT_EQ(o.max_wait, Ms(30000));
  EXPECT_EQ(o.header_timeout, Ms(5000));
  EXPECT_EQ(o.metrics_timeout, Ms(500));
  EXPECT_EQ(o.max_pending, 77u);
  EXPECT_TRUE(o.public_metrics);
  EXPECT_EQ(o.rate_limit.rate_per_s, 50);
  EXPECT_EQ(o.rate_limit.burst, 100);
  EXPECT_EQ(o.cors_origins, std::vector<std::string>{"https://app.example"});
  ASSERT_EQ(o.api_keys.size(), 2u);
  EXPECT_EQ(o.api_keys[0].role, Role::kClient);
  EXPECT_EQ(o.api_keys[0].name, "web");
  EXPECT_FALSE(o.api_keys[0].limit);
  EXPECT_EQ(o.api_keys[1].role, Role::kAdmin);
  ASSERT_TRUE(o.api_keys[1].limit);
  EXPECT_EQ(o.api_keys[1].limit->rate_per_s, 5);
  EXPECT_EQ(o.api_keys[1].limit->burst, 100);  // inherited from rate_limit
}

TEST(GatewayConfigTest, RefusesUnknownKeysAndWrongTypes) {
  GatewayOptions o;
  std::string broker;
  for (const char* bad : {
           R"({"nope": 1})",
           R"({"threads": "4"})",
           R"({"threads": 0})",
           R"({"max_body_bytes": -5})",
           R"({"public_metrics": "yes"})",
           R"({"cors_origins": "https://x"})",
           R"({"api_keys": [{"role": "admin"}]})",
           R"({"api_keys": [{"key": "k-123456789", "role": "root"}]})",
           R"({"api_keys": [{"key": "k-123456789", "extra": 1}]})",
           R"({"rate_limit": {"rate_per_s": -1}})",
           R"([1, 2])",
       }) {
    EXPECT_FALSE(ApplyConfigJson(json::parse(bad), &o, &broker).ok()) << bad;
  }
}

TEST(GatewayConfigTest, MissingFileIsAnError) {
  GatewayOptions o;
  std::string broker;
  EXPECT_EQ(LoadConfigFile("/nonexistent/rma-gateway.json", &o, &broker).code(),
            StatusCode::kNotFound);
}

TEST(GatewayConfigTest, KeyFlagsMayCarryAName) {
  ApiKey k = KeyFromFlag("secret-123:dashboard", Role::kAdmin);
  EXPECT_EQ(k.key, "secret-123");
  EXPECT_EQ(k.name, "dashboard");
  EXPECT_EQ(k.role, Role::kAdmin);
  EXPECT_EQ(KeyFromFlag("plain-key-1", Role::kClient).name, "");
}

}  // namespace
}  // namespace rma::gateway
