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

TEST(SameOriginTest, HostAndPortOfTheHostHeader) {
  EXPECT_TRUE(SameOrigin("http://127.0.0.1:8080", "127.0.0.1:8080"));
  EXPECT_TRUE(SameOrigin("https://Pool.Example.org", "pool.example.org"));
  EXPECT_TRUE(SameOrigin("https://pool.example.org:443", "pool.example.org"));
  EXPECT_TRUE(SameOrigin("http://pool.example.org", "pool.example.org:80"));
  EXPECT_TRUE(SameOrigin("http://[::1]:8080", "[::1]:8080"));
  EXPECT_FALSE(SameOrigin("http://evil.example", "127.0.0.1:8080"));
  EXPECT_FALSE(SameOrigin("http://127.0.0.1:8081", "127.0.0.1:8080"));
  EXPECT_FALSE(SameOrigin("http://127.0.0.1", "127.0.0.1:8080"));
  EXPECT_FALSE(SameOrigin("https://pool.example.org", "pool.example.org:80"));
  EXPECT_FALSE(SameOrigin("null", "127.0.0.1:8080"));
  EXPECT_FALSE(SameOrigin("file://", "127.0.0.1:8080"));
  EXPECT_FALSE(SameOrigin("http://127.0.0.1:8080", ""));
  EXPECT_FALSE(SameOrigin("http://a@127.0.0.1:8080", "127.0.0.1:8080"));
  EXPECT_FALSE(SameOrigin("http://127.0.0.1:8080/", "127.0.0.1:8080"));
}

TEST(CrossSiteRefusalTest, OnlyAllowedOrOwnOriginsMayChangeState) {
  CorsPolicy none;
  CorsPolicy app({"https://app.example"});
  const std::string_view host = "gw.example:8080";
  // No browser headers: curl, rmactl, scripts.
  EXPECT_FALSE(none.CrossSiteRefusal(std::nullopt, std::nullopt, host));
  // The gateway's own pages.
  EXPECT_FALSE(none.CrossSiteRefusal("http://gw.example:8080", "same-origin", host));
  EXPECT_FALSE(none.CrossSiteRefusal(std::nullopt, "same-origin", host));
  EXPECT_FALSE(none.CrossSiteRefusal(std::nullopt, "none", host));
  // Elsewhere.
  EXPECT_TRUE(none.CrossSiteRefusal("http://evil.example", std::nullopt, host));
  EXPECT_TRUE(none.CrossSiteRefusal("null", std::nullopt, host));
  EXPECT_TRUE(none.CrossSiteRefusal(std::nullopt, "cross-site", host));
  EXPECT_TRUE(app.CrossSiteRefusal("http://evil.example", "cross-site", host));
  // A configured origin may.
  EXPECT_FALSE(app.CrossSiteRefusal("https://app.example", "cross-site", host));
  EXPECT_TRUE(app.CrossSiteRefusal(std::nullopt, "Cross-Site", host));
}

}  // namespace
}  // namespace rma::gateway
