// Unit tests of the CORS policy.
#include "gateway/cors.h"

#include <gtest/gtest.h>

namespace rma::gateway {
namespace {

std::string Find(const HeaderList& h, const std::string& name) {
  for (const auto& [n, v] : h) {
    if (n == name) return v;
  }
  return "<absent>";
}

TEST(CorsTest, DisabledByDefault) {
  CorsPolicy cors;
  EXPECT_FALSE(cors.enabled());
  EXPECT_TRUE(cors.ResponseHeaders("https://a.example").empty());
}

TEST(CorsTest, EchoesAllowedOriginsOnly) {
  CorsPolicy cors({"https://App.example/", "http://localhost:5173"});
  HeaderList h = cors.ResponseHeaders("https://app.example");
  EXPECT_EQ(Find(h, "Access-Control-Allow-Origin"), "https://app.example");
  EXPECT_EQ(Find(h, "Vary"), "Origin");
  EXPECT_NE(Find(h, "Access-Control-Expose-Headers").find("Retry-After"), std::string::npos);
  EXPECT_TRUE(cors.ResponseHeaders("https://evil.example").empty());
  EXPECT_TRUE(cors.ResponseHeaders("").empty());
}

TEST(CorsTest, StarAllowsAnyOrigin) {
  CorsPolicy cors({"*"});
  EXPECT_EQ(Find(cors.ResponseHeaders("https://x.example"), "Access-Control-Allow-Origin"), "*");
}

TEST(CorsTest, PreflightGrantsMethodsAndKnownHeaders) {
  CorsPolicy cors({"https://app.example"});
  auto h = cors.PreflightHeaders("https://app.example", "POST",
                                 "Content-Type, X-API-Key, X-Custom-Thing, Cookie, ",
                                 {"GET", "POST", "HEAD"});
  ASSERT_TRUE(h);
  EXPECT_EQ(Find(*h, "Access-Control-Allow-Methods"), "GET, POST, HEAD");
  EXPECT_EQ(Find(*h, "Access-Control-Allow-Headers"), "content-type, x-api-key, x-custom-thing");
  EXPECT_EQ(Find(*h, "Access-Control-Max-Age"), "600");
}

TEST(CorsTest, PreflightRefusesOtherOriginsAndMethods) {
  CorsPolicy cors({"https://app.example"});
  EXPECT_FALSE(cors.PreflightHeaders("https://evil.example", "GET", "", {"GET"}));
  EXPECT_FALSE(cors.PreflightHeaders("https://app.example", "DELETE", "", {"GET", "POST"}));
}

}  // namespace
}  // namespace rma::gateway
