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

TEST(GatewayConfigTest, ReadsTheExposureAndAdmissionKeys) {
  GatewayOptions o;
  std::string broker;
  ASSERT_TRUE(ApplyConfigJson(json::parse(R"({"allow_anonymous": true, "max_connections_per_ip": 9,
                                              "large_body_budget_bytes": 2097152})"),
                              &o, &broker)
                  .ok());
  EXPECT_TRUE(o.allow_anonymous);
  EXPECT_EQ(o.max_connections_per_ip, 9u);
  EXPECT_EQ(o.large_body_budget, 2097152u);
  for (const char* bad : {R"({"allow_anonymous": "yes"})", R"({"max_connections_per_ip": -1})",
                          R"({"large_body_budget_bytes": 5})"}) {
    EXPECT_FALSE(ApplyConfigJson(json::parse(bad), &o, &broker).ok()) << bad;
  }
}

TEST(LoopbackTest, OnlyLoopbackNamesAndAddresses) {
  for (const char* yes : {"127.0.0.1:8080", "127.1.2.3:0", "localhost:80", "LocalHost:1",
                          "[::1]:8080", "127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackListen(yes)) << yes;
  }
  for (const char* no :
       {"0.0.0.0:8080", "10.0.0.1:80", "[::]:8080", ":8080", "*:8080", "127.0.0.1.evil.example:80",
        "localhost.evil.example:80", "128.0.0.1:1", "127.0.0.256:1", "example.org:80", ""}) {
    EXPECT_FALSE(IsLoopbackListen(no)) << no;
  }
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1:41234"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("rebind.evil.example:41234"));
}

std::string Listen(const GatewayOptions& o, std::string* warning) {
  auto r = CheckExposure(o, warning);
  return r.ok() ? *r : "refused: " + r.status().message();
}

TEST(ExposureTest, NoKeysMeansLoopbackUnlessAnonymousIsAllowed) {
  std::string warning;
  GatewayOptions o;
  // Not given: loopback without keys (with a warning), every address with keys.
  EXPECT_EQ(Listen(o, &warning), "127.0.0.1:8080");
  EXPECT_NE(warning.find("127.0.0.1:8080"), std::string::npos);
  GatewayOptions keyed;
  keyed.api_keys.push_back(KeyFromFlag("client-key-123", Role::kClient));
  warning.clear();
  EXPECT_EQ(Listen(keyed, &warning), "0.0.0.0:8080");
  EXPECT_TRUE(warning.empty());
  // Given: a public address without keys is refused, naming the ways out.
  o.listen = "0.0.0.0:8080";
  auto refused = CheckExposure(o, &warning);
  ASSERT_FALSE(refused.ok());
  for (const char* named : {"--admin-key", "--client-key", "--allow-anonymous"}) {
    EXPECT_NE(refused.status().message().find(named), std::string::npos) << named;
  }
  o.allow_anonymous = true;
  warning.clear();
  EXPECT_EQ(Listen(o, &warning), "0.0.0.0:8080");
  EXPECT_NE(warning.find("OPEN"), std::string::npos);
  o.allow_anonymous = false;
  o.listen = "127.0.0.1:0";
  EXPECT_EQ(Listen(o, &warning), "127.0.0.1:0");
  keyed.listen = "0.0.0.0:9000";
  EXPECT_EQ(Listen(keyed, &warning), "0.0.0.0:9000");
}

}  // namespace
}  // namespace rma::gateway
