// Unit tests of API keys: who may use which route.
#include "gateway/auth.h"

#include <gtest/gtest.h>

namespace rma::gateway {
namespace {

ApiKeys Keys() {
  auto keys = ApiKeys::Create({{"client-key-1", Role::kClient, "", std::nullopt},
                               {"admin-key-1", Role::kAdmin, "ops", std::nullopt}});
  EXPECT_TRUE(keys.ok()) << keys.status().ToString();
  return std::move(*keys);
}

TEST(ApiKeysTest, WithoutKeysEverythingIsOpen) {
  ApiKeys none;
  EXPECT_FALSE(none.enabled());
  auto r = none.Authorize("", Access::kAdmin, false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, nullptr);
}

TEST(ApiKeysTest, MissingKeyIsUnauthenticated) {
  ApiKeys keys = Keys();
  EXPECT_EQ(keys.Authorize("", Access::kClient, false).status().code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(keys.Authorize("", Access::kAdmin, false).status().code(),
            StatusCode::kUnauthenticated);
}

TEST(ApiKeysTest, WrongKeyOrRoleIsPermissionDenied) {
  ApiKeys keys = Keys();
  EXPECT_EQ(keys.Authorize("client-key-2", Access::kClient, false).status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(keys.Authorize("client-key-1", Access::kAdmin, false).status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(keys.Authorize("client-key-1", Access::kMetrics, false).status().code(),
            StatusCode::kPermissionDenied);
}

TEST(ApiKeysTest, RolesOpenTheirRoutes) {
  ApiKeys keys = Keys();
  auto client = keys.Authorize("client-key-1", Access::kClient, false);
  ASSERT_TRUE(client.ok());
  EXPECT_EQ((*client)->name, "client-1");
  auto admin_on_client = keys.Authorize("admin-key-1", Access::kClient, false);
  ASSERT_TRUE(admin_on_client.ok());
  EXPECT_EQ((*admin_on_client)->name, "ops");
  EXPECT_TRUE(keys.Authorize("admin-key-1", Access::kAdmin, false).ok());
  EXPECT_TRUE(keys.Authorize("admin-key-1", Access::kMetrics, false).ok());
}

TEST(ApiKeysTest, OpenRoutesAndPublicMetricsNeedNoKey) {
  ApiKeys keys = Keys();
  EXPECT_TRUE(keys.Authorize("", Access::kOpen, false).ok());
  EXPECT_TRUE(keys.Authorize("", Access::kMetrics, /*public_metrics=*/true).ok());
  EXPECT_FALSE(keys.Authorize("", Access::kMetrics, false).ok());
}

TEST(ApiKeysTest, RefusesBadKeys) {
  EXPECT_FALSE(ApiKeys::Create({{"short", Role::kClient, "", std::nullopt}}).ok());
  EXPECT_FALSE(ApiKeys::Create({{"has space in it", Role::kClient, "", std::nullopt}}).ok());
  EXPECT_FALSE(ApiKeys::Create({{std::string(300, 'k'), Role::kClient, "", std::nullopt}}).ok());
  EXPECT_FALSE(ApiKeys::Create({{"same-key-twice", Role::kClient, "", std::nullopt},
                                {"same-key-twice", Role::kAdmin, "", std::nullopt}})
                   .ok());
}

TEST(PresentedKeyTest, ReadsXApiKeyThenBearer) {
  EXPECT_EQ(PresentedKey(std::string_view("k1"), std::string_view("Bearer k2")), "k1");
  EXPECT_EQ(PresentedKey(std::nullopt, std::string_view("Bearer  k2 ")), "k2");
  EXPECT_EQ(PresentedKey(std::nullopt, std::string_view("bearer k3")), "k3");
  EXPECT_EQ(PresentedKey(std::nullopt, std::string_view("Basic abc")), "");
  EXPECT_EQ(PresentedKey(std::string_view(""), std::nullopt), "");
  EXPECT_EQ(PresentedKey(std::nullopt, std::nullopt), "");
}

TEST(ApiKeysTest, EachKeyActsForAnAccount) {
  // SHA-256("abc") = ba7816bf8f01cfea...
  EXPECT_EQ(AnonymousAccountOf("abc"), "key-ba7816bf8f01");
  ApiKey named{"named-key-123", Role::kClient, "web", std::nullopt, ""};
  ApiKey rotated{"named-key-456", Role::kClient, "web", std::nullopt, ""};
  ApiKey unnamed{"unnamed-key-1", Role::kAdmin, "", std::nullopt, ""};
  auto keys = ApiKeys::Create({named, rotated, unnamed});
  ASSERT_TRUE(keys.ok());
  auto a = keys->Authorize("named-key-123", Access::kClient, false);
  auto b = keys->Authorize("named-key-456", Access::kClient, false);
  auto c = keys->Authorize("unnamed-key-1", Access::kClient, false);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ((*a)->account, "web");
  EXPECT_EQ((*b)->account, "web");  // two keys of one account share its tasks
  EXPECT_EQ((*c)->account, AnonymousAccountOf("unnamed-key-1"));
  EXPECT_EQ((*c)->name, "admin-1");  // the log name is not the account: it depends on the order
}

}  // namespace
}  // namespace rma::gateway
