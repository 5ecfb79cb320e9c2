// StaticFiles over a small fake bundle: paths, content types, cache policy, ETag/304, gzip
// negotiation, HEAD, and the 404s (unknown file, dashboard not built). The real embedded bundle is
// checked end to end through a running gateway in tests/browser/dashboard_serving_test.cc.
#include "gateway/static_files.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>

namespace rma::gateway {
namespace {

constexpr std::array<EmbeddedFile, 3> kBundle = {{
    {"/index.html", "text/html; charset=utf-8", "\"aaaa\"", "<!doctype html><p>hi</p>", "GZHTML"},
    {"/assets/app-1234.js", "text/javascript; charset=utf-8", "\"bbbb\"", "console.log(1)", "GZJS"},
    {"/assets/logo-9.png", "image/png", "\"cccc\"", "PNGDATA", ""},
}};

std::string Header(const StaticReply& r, std::string_view name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return v;
  }
  return "<absent>";
}

TEST(StaticFilesTest, RoutesOnlyTheRootIndexAndAssets) {
  EXPECT_TRUE(StaticFiles::Handles("/"));
  EXPECT_TRUE(StaticFiles::Handles("/?refresh=1"));
  EXPECT_TRUE(StaticFiles::Handles("/index.html"));
  EXPECT_TRUE(StaticFiles::Handles("/assets/app-1234.js"));
  EXPECT_TRUE(StaticFiles::Handles("/assets/missing.css"));
  EXPECT_FALSE(StaticFiles::Handles("/api/admin/workers"));
  EXPECT_FALSE(StaticFiles::Handles("/health"));
  EXPECT_FALSE(StaticFiles::Handles("/assets"));
  EXPECT_FALSE(StaticFiles::Handles("/metrics"));
}

TEST(StaticFilesTest, RootIsIndexHtmlRevalidatedEveryTimeWithSecurityHeaders) {
  StaticFiles files(kBundle, "");
  StaticReply r = files.Serve({"/", false, "", ""});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(r.body, "<!doctype html><p>hi</p>");
  EXPECT_EQ(Header(r, "Cache-Control"), "no-cache");
  EXPECT_EQ(Header(r, "ETag"), "\"aaaa\"");
  EXPECT_EQ(Header(r, "Vary"), "Accept-Encoding");
  EXPECT_EQ(Header(r, "X-Content-Type-Options"), "nosniff");
  EXPECT_NE(Header(r, "Content-Security-Policy").find("default-src 'none'"), std::string::npos);
  EXPECT_EQ(Header(r, "Content-Encoding"), "<absent>");
  EXPECT_EQ(files.Serve({"/index.html?x=1", false, "", ""}).body, r.body);
}

TEST(StaticFilesTest, HashedAssetsAreImmutableForAYear) {
  StaticFiles files(kBundle, "");
  StaticReply r = files.Serve({"/assets/app-1234.js", false, "", ""});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(r.body, "console.log(1)");
  EXPECT_EQ(Header(r, "Cache-Control"), "public, max-age=31536000, immutable");
  EXPECT_EQ(Header(r, "Content-Security-Policy"), "<absent>");
}

TEST(StaticFilesTest, GzipOnlyWhenAcceptedAndAvailableWithItsOwnEtag) {
  StaticFiles files(kBundle, "");
  StaticReply gz = files.Serve({"/assets/app-1234.js", false, "", "gzip, deflate, br"});
  EXPECT_EQ(gz.body, "GZJS");
  EXPECT_EQ(Header(gz, "Content-Encoding"), "gzip");
  EXPECT_EQ(Header(gz, "ETag"), "\"bbbb-gz\"");
  EXPECT_EQ(gz.content_type, "text/javascript; charset=utf-8");

  StaticReply refused = files.Serve({"/assets/app-1234.js", false, "", "gzip;q=0, br"});
  EXPECT_EQ(refused.body, "console.log(1)");
  EXPECT_EQ(Header(refused, "Content-Encoding"), "<absent>");

  // No compressed copy: served as is, and nothing varies.
  StaticReply png = files.Serve({"/assets/logo-9.png", false, "", "gzip"});
  EXPECT_EQ(png.body, "PNGDATA");
  EXPECT_EQ(png.content_type, "image/png");
  EXPECT_EQ(Header(png, "Content-Encoding"), "<absent>");
  EXPECT_EQ(Header(png, "Vary"), "<absent>");
}

TEST(StaticFilesTest, MatchingEtagGetsNotModifiedWithoutBody) {
  StaticFiles files(kBundle, "");
  StaticReply r = files.Serve({"/", false, "\"zzzz\", W/\"aaaa\"", ""});
  EXPECT_EQ(r.status, 304);
  EXPECT_TRUE(r.body.empty());
  EXPECT_TRUE(r.content_type.empty());
  EXPECT_EQ(Header(r, "ETag"), "\"aaaa\"");
  EXPECT_EQ(Header(r, "Cache-Control"), "no-cache");
  // The identity tag does not validate the gzip copy, and the reverse.
  EXPECT_EQ(files.Serve({"/", false, "\"aaaa\"", "gzip"}).status, 200);
  EXPECT_EQ(files.Serve({"/", false, "\"aaaa-gz\"", "gzip"}).status, 304);
  EXPECT_EQ(files.Serve({"/", false, "\"other\"", ""}).status, 200);
}

TEST(StaticFilesTest, HeadHasTheHeadersButNoBody) {
  StaticFiles files(kBundle, "");
  StaticReply r = files.Serve({"/assets/app-1234.js", true, "", ""});
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(r.content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(Header(r, "ETag"), "\"bbbb\"");
}

TEST(StaticFilesTest, UnknownFileIsAJsonNotFound) {
  StaticFiles files(kBundle, "");
  StaticReply r = files.Serve({"/assets/nope.js", false, "", ""});
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.content_type, "application/json");
  nlohmann::json body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["code"], "not_found");
  EXPECT_NE(body["error"].get<std::string>().find("/assets/nope.js"), std::string::npos);
}

TEST(StaticFilesTest, WithoutABundleEveryPathSaysTheDashboardWasNotBuiltAndWhy) {
  StaticFiles files({}, "it was built with -DRMA_BUILD_DASHBOARD=OFF");
  EXPECT_FALSE(files.built());
  for (std::string_view path : {"/", "/assets/app-1234.js"}) {
    StaticReply r = files.Serve({path, false, "", ""});
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(r.content_type, "application/json");
    nlohmann::json body = nlohmann::json::parse(r.body);
    EXPECT_EQ(body["code"], "dashboard_not_built");
    EXPECT_NE(body["error"].get<std::string>().find("RMA_BUILD_DASHBOARD=OFF"), std::string::npos)
        << body;
  }
}

TEST(StaticFilesTest, EtagListsAndWildcard) {
  EXPECT_TRUE(EtagMatches("*", "\"a\""));
  EXPECT_TRUE(EtagMatches("\"a\"", "\"a\""));
  EXPECT_TRUE(EtagMatches(" \"x\" ,  \"a\" ", "\"a\""));
  EXPECT_TRUE(EtagMatches("W/\"a\"", "\"a\""));
  EXPECT_FALSE(EtagMatches("", "\"a\""));
  EXPECT_FALSE(EtagMatches("\"ab\"", "\"a\""));
  EXPECT_FALSE(EtagMatches("\"a\"", ""));
}

TEST(StaticFilesTest, AcceptEncodingParsing) {
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("deflate, GZIP;q=0.5"));
  EXPECT_TRUE(AcceptsGzip("*"));
  EXPECT_TRUE(AcceptsGzip("x-gzip"));
  EXPECT_FALSE(AcceptsGzip(""));
  EXPECT_FALSE(AcceptsGzip("br, deflate"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("gzip; q=0.000"));
  EXPECT_FALSE(AcceptsGzip("gzipped"));
}

}  // namespace
}  // namespace rma::gateway
