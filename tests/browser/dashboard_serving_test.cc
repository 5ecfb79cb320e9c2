// How a real rma-gateway serves the dashboard bundle it embeds (ctest label "e2e"): / and every
// file index.html names, with their content types, cache headers, ETag revalidation, gzip, HEAD and
// the errors around them — or, in a build without the dashboard, the 404 that says so.
#include <gtest/gtest.h>

#include <regex>

#include "tests/support/cluster.h"

namespace rma::testing {
namespace {

using nlohmann::json;

#if RMA_DASHBOARD_BUILT

// Every /assets/... path that index.html references.
std::vector<std::string> AssetPaths(const std::string& html) {
  std::vector<std::string> paths;
  std::regex ref(R"re((?:src|href)="(/assets/[^"]+)")re");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), ref); it != std::sregex_iterator();
       ++it) {
    paths.push_back((*it)[1]);
  }
  return paths;
}

std::string ExpectedType(const std::string& path) {
  auto ends_with = [&](const std::string& suffix) {
    return path.size() >= suffix.size() &&
           path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".js")) return "text/javascript; charset=utf-8";
  if (ends_with(".css")) return "text/css; charset=utf-8";
  if (ends_with(".svg")) return "image/svg+xml";
  return "?";
}

TEST(DashboardServingTest, RootServesTheBuiltPageRevalidatedOnEveryLoad) {
  Cluster cluster;
  HttpResponse page = HttpGet(cluster.Url("/"));
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(page.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(page.Header("cache-control"), "no-cache");
  EXPECT_EQ(page.Header("x-content-type-options"), "nosniff");
  EXPECT_NE(page.Header("content-security-policy").find("connect-src 'self'"), std::string::npos);
  EXPECT_NE(page.body.find("<div id=\"app\">"), std::string::npos) << page.body;
  EXPECT_NE(page.body.find("type=\"module\""), std::string::npos)
      << "the built page, not the source";
  EXPECT_EQ(page.body.find("/src/main.jsx"), std::string::npos) << "the source page was served";
  EXPECT_EQ(HttpGet(cluster.Url("/index.html")).body, page.body);

  const std::string etag = page.Header("etag");
  ASSERT_FALSE(etag.empty());
  HttpResponse again = HttpCall("GET", cluster.Url("/"), "", {"If-None-Match: " + etag});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_EQ(again.Header("etag"), etag);

  HttpResponse head = HttpCall("HEAD", cluster.Url("/"));
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(head.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(head.Header("etag"), etag);
  EXPECT_EQ(head.Header("content-length"), std::to_string(page.body.size()))
      << "HEAD announces the length a GET would have";

  HttpResponse post = HttpCall("POST", cluster.Url("/"), "x");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.Header("allow"), "GET, HEAD, OPTIONS");
}

TEST(DashboardServingTest, AssetsHaveTheirTypesLongLivedCachingAndGzip) {
  Cluster cluster;
  std::vector<std::string> assets = AssetPaths(HttpGet(cluster.Url("/")).body);
  ASSERT_GE(assets.size(), 2u) << "index.html should name its script and stylesheet";
  bool saw_script = false;
  for (const std::string& path : assets) {
    HttpResponse r = HttpGet(cluster.Url(path));
    ASSERT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.Header("content-type"), ExpectedType(path)) << path;
    EXPECT_EQ(r.Header("cache-control"), "public, max-age=31536000, immutable") << path;
    EXPECT_FALSE(r.Header("etag").empty()) << path;
    EXPECT_FALSE(r.body.empty()) << path;
    if (ExpectedType(path).rfind("text/javascript", 0) == 0) {
      saw_script = true;
      HttpResponse gz = HttpCall("GET", cluster.Url(path), "", {"Accept-Encoding: gzip"});
      EXPECT_EQ(gz.Header("content-encoding"), "gzip");
      EXPECT_EQ(gz.Header("vary"), "Accept-Encoding");
      ASSERT_GE(gz.body.size(), 2u);
      EXPECT_EQ(static_cast<unsigned char>(gz.body[0]), 0x1f);
      EXPECT_EQ(static_cast<unsigned char>(gz.body[1]), 0x8b);
      EXPECT_LT(gz.body.size(), r.body.size());
      EXPECT_NE(gz.Header("etag"), r.Header("etag")) << "each representation has its own tag";
    }
  }
  EXPECT_TRUE(saw_script);

  HttpResponse missing = HttpGet(cluster.Url("/assets/no-such-file.js"));
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.Json()["code"], "not_found") << missing.body;
  // The API is untouched by the static routes.
  HttpResponse workers = HttpGet(cluster.Url("/api/admin/workers"));
  EXPECT_EQ(workers.status, 200);
  EXPECT_TRUE(workers.Json()["workers"].is_array());
}

#else

TEST(DashboardServingTest, WithoutTheDashboardRootSaysItWasNotBuilt) {
  Cluster cluster;
  HttpResponse r = HttpGet(cluster.Url("/"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Header("content-type"), "application/json");
  EXPECT_EQ(r.Json()["code"], "dashboard_not_built") << r.body;
  EXPECT_EQ(HttpGet(cluster.Url("/api/admin/workers")).status, 200);
}

#endif

}  // namespace
}  // namespace rma::testing
