// Unit tests of the route table and matcher.
#include "gateway/router.h"

#include <gtest/gtest.h>

#include <set>

namespace rma::gateway {
namespace {

RouteId IdOf(std::string_view method, std::string_view path) {
  RouteMatch m = MatchRoute(method, path);
  EXPECT_NE(m.route, nullptr) << method << " " << path;
  return m.route == nullptr ? RouteId::kHealth : m.route->id;
}

TEST(RouterTest, MatchesEveryFixedRoute) {
  EXPECT_EQ(IdOf("GET", "/health"), RouteId::kHealth);
  EXPECT_EQ(IdOf("GET", "/metrics"), RouteId::kMetrics);
  EXPECT_EQ(IdOf("POST", "/api/tasks"), RouteId::kSubmitTask);
  EXPECT_EQ(IdOf("GET", "/api/tasks/"), RouteId::kListTasks);
  EXPECT_EQ(IdOf("GET", "/api/tasks/42"), RouteId::kGetTask);
  EXPECT_EQ(IdOf("DELETE", "/api/tasks/42"), RouteId::kCancelTask);
  EXPECT_EQ(IdOf("GET", "/api/admin/workers"), RouteId::kAdminWorkers);
  EXPECT_EQ(IdOf("POST", "/api/admin/tasks/42/retry"), RouteId::kAdminRetryTask);
  EXPECT_EQ(IdOf("POST", "/api/admin/tasks/42/discard"), RouteId::kAdminDiscardTask);
  EXPECT_EQ(IdOf("POST", "/api/admin/workers/w-1/drain"), RouteId::kAdminDrainWorker);
}

TEST(RouterTest, ServiceRoutesCarryNameAndRestOfPath) {
  RouteMatch m = MatchRoute("PUT", "/api/service/rag/v1/query/");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->id, RouteId::kServiceCall);
  EXPECT_EQ(m.Param("name"), "rag");
  EXPECT_EQ(m.Param("path"), "/v1/query/");

  m = MatchRoute("GET", "/api/service/rag");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.Param("path"), "/");

  m = MatchRoute("PATCH", "/api/ocr/page");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->id, RouteId::kShortServiceCall);
  EXPECT_EQ(m.Param("name"), "ocr");
  EXPECT_EQ(m.Param("path"), "/page");
}

TEST(RouterTest, ReservedNamesAreNeverServices) {
  EXPECT_EQ(MatchRoute("GET", "/api/admin/nope").route, nullptr);
  EXPECT_TRUE(MatchRoute("GET", "/api/admin/nope").allowed.empty());
  EXPECT_EQ(MatchRoute("GET", "/api/tasks/1/2").route, nullptr);
  EXPECT_EQ(MatchRoute("GET", "/api/service").route, nullptr);
  EXPECT_EQ(MatchRoute("GET", "/api").route, nullptr);
  EXPECT_EQ(MatchRoute("GET", "/nothing").route, nullptr);
}

TEST(RouterTest, WrongMethodListsTheAllowedOnes) {
  RouteMatch m = MatchRoute("PUT", "/api/tasks/42");
  EXPECT_EQ(m.route, nullptr);
  std::set<std::string> allowed(m.allowed.begin(), m.allowed.end());
  EXPECT_EQ(allowed, (std::set<std::string>{"GET", "DELETE", "HEAD"}));

  m = MatchRoute("GET", "/api/admin/tasks/1/retry");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_EQ(m.allowed, std::vector<std::string>{"POST"});
  EXPECT_EQ(MatchRoute("TRACE", "/api/rag/x").route, nullptr);
  EXPECT_FALSE(MatchRoute("TRACE", "/api/rag/x").allowed.empty());
}

TEST(RouterTest, HeadIsAnsweredLikeGet) {
  RouteMatch m = MatchRoute("HEAD", "/health");
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->id, RouteId::kHealth);
  EXPECT_TRUE(m.head_only);
  // Service calls forward HEAD itself.
  m = MatchRoute("HEAD", "/api/service/rag/x");
  ASSERT_NE(m.route, nullptr);
  EXPECT_FALSE(m.head_only);
}

TEST(RouterTest, AccessMatchesTheSpec) {
  for (const Route& r : Routes()) {
    if (r.id == RouteId::kAdminEnrolToken) {
      // Contributors enrol their own workers (the handler checks the account).
      EXPECT_EQ(r.access, Access::kContributor) << r.pattern;
    } else if (r.id == RouteId::kAccount) {
      EXPECT_EQ(r.access, Access::kAccount) << r.pattern;  // any key: its own account
    } else if (r.id == RouteId::kLeaderboard) {
      // Public unless --private-leaderboard (then any key).
      EXPECT_EQ(r.access, Access::kLeaderboard) << r.pattern;
    } else if (r.pattern.rfind("/api/admin/", 0) == 0) {
      EXPECT_EQ(r.access, Access::kAdmin) << r.pattern;
    } else if (r.pattern.rfind("/api/", 0) == 0) {
      EXPECT_EQ(r.access, Access::kClient) << r.pattern;
    }
  }
  EXPECT_EQ(MatchRoute("GET", "/health").route->access, Access::kOpen);
  EXPECT_EQ(MatchRoute("GET", "/metrics").route->access, Access::kMetrics);
}

TEST(RouterTest, RouteNamesAreUnique) {
  std::set<std::string_view> names;
  for (const Route& r : Routes()) EXPECT_TRUE(names.insert(r.name).second) << r.name;
}

TEST(RouterTest, OpenApiPathDropsTheEllipsis) {
  EXPECT_EQ(OpenApiPath("/api/service/{name}/{path...}"), "/api/service/{name}/{path}");
  EXPECT_EQ(OpenApiPath("/api/tasks/{id}"), "/api/tasks/{id}");
}

}  // namespace
}  // namespace rma::gateway
