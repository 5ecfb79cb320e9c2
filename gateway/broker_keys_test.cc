// The broker's keys as a gateway holds them (broker_keys.h) and what each scope opens (auth.h):
// a presented key is found by its hash, an expired or unknown one is not, a member account's key
// never carries the admin scope whatever the answer says, "unchanged" keeps the set, and a
// contributor key opens the enrolment route but not the task routes.
#include "gateway/broker_keys.h"

#include <gtest/gtest.h>

#include "common/sha256.h"

namespace rma::gateway {
namespace {

using nlohmann::json;

const std::string kAlice = "rma_0a0a0a0a_00112233445566778899aabbccddeeff";
const std::string kRoot = "rma_0b0b0b0b_00112233445566778899aabbccddeeff";
const std::string kOld = "rma_0c0c0c0c_00112233445566778899aabbccddeeff";

json Entry(const std::string& key, const std::string& account, const std::string& role,
           const json& scopes, int64_t expires_at = 0, const json& services = json::array()) {
  return {{"hash", Sha256Hex(key)},  {"prefix", key.substr(4, 8)},
          {"account", account},      {"role", role},
          {"scopes", scopes},        {"services", services},
          {"expires_at", expires_at}};
}

TEST(BrokerKeysTest, KeysAreFoundByTheirHashUntilTheyExpire) {
  BrokerKeys keys;
  EXPECT_FALSE(keys.heard());
  const Time now = FromUnixMs(5'000'000);
  json doc = {{"version", 3},
              {"accounts", 1},
              {"keys",
               {Entry(kAlice, "alice", "member", {"client"}, 0, {"echo"}),
                Entry(kOld, "alice", "member", {"client"}, ToUnixMs(now) - 1)}}};
  ASSERT_TRUE(keys.Apply(doc).ok());
  EXPECT_TRUE(keys.heard());
  EXPECT_TRUE(keys.has_accounts());
  EXPECT_EQ(keys.version(), 3u);
  auto alice = keys.Find(kAlice, now);
  ASSERT_NE(alice, nullptr);
  EXPECT_EQ(alice->account, "alice");
  EXPECT_EQ(alice->prefix, "0a0a0a0a");
  EXPECT_EQ(alice->services, std::vector<std::string>{"echo"});
  EXPECT_EQ(alice->scopes, kScopeClient);
  EXPECT_EQ(keys.Find(kOld, now), nullptr) << "expired";
  EXPECT_EQ(keys.Find(kRoot, now), nullptr) << "unknown";
  EXPECT_EQ(keys.Find("not-a-broker-key", now), nullptr);
  EXPECT_EQ(keys.TakeUsed(), "0a0a0a0a") << "last_used_at travels with the next poll";
  EXPECT_EQ(keys.TakeUsed(), "");
}

TEST(BrokerKeysTest, OnlyAnAdminAccountsKeyIsAnAdminKey) {
  BrokerKeys keys;
  json doc = {{"version", 1},
              {"keys",
               {Entry(kAlice, "alice", "member", {"admin", "client"}),
                Entry(kRoot, "root", "admin", {"admin"})}}};
  ASSERT_TRUE(keys.Apply(doc).ok());
  auto alice = keys.Find(kAlice, Time{});
  ASSERT_NE(alice, nullptr);
  EXPECT_EQ(alice->scopes, kScopeClient);
  EXPECT_EQ(alice->role, Role::kClient);
  auto root = keys.Find(kRoot, Time{});
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->role, Role::kAdmin);
}

TEST(BrokerKeysTest, UnchangedKeepsTheSetAndANewVersionReplacesIt) {
  BrokerKeys keys;
  ASSERT_TRUE(
      keys.Apply({{"version", 1}, {"keys", {Entry(kAlice, "alice", "member", {"client"})}}}).ok());
  ASSERT_TRUE(keys.Apply({{"version", 1}, {"unchanged", true}}).ok());
  EXPECT_NE(keys.Find(kAlice, Time{}), nullptr);
  // Revoked at the broker: the next version no longer has it.
  ASSERT_TRUE(keys.Apply({{"version", 2}, {"keys", json::array()}}).ok());
  EXPECT_EQ(keys.Find(kAlice, Time{}), nullptr);
  // Malformed answers change nothing; malformed entries are skipped.
  EXPECT_FALSE(keys.Apply({{"keys", json::array()}}).ok());
  ASSERT_TRUE(
      keys.Apply({{"version", 3},
                  {"keys", {json{{"hash", "short"}}, Entry(kRoot, "root", "admin", {"admin"})}}})
          .ok());
  EXPECT_NE(keys.Find(kRoot, Time{}), nullptr);
}

TEST(BrokerKeysTest, ABrokerWithoutAccountsHasNone) {
  BrokerKeys keys;
  ASSERT_TRUE(keys.Apply({{"version", 0}, {"keys", json::array()}}).ok());
  EXPECT_TRUE(keys.heard());
  EXPECT_FALSE(keys.has_accounts());
  // A database on which no account was made yet (the demo pool): still no accounts.
  ASSERT_TRUE(keys.Apply({{"version", 77}, {"accounts", 0u}, {"keys", json::array()}}).ok());
  EXPECT_FALSE(keys.has_accounts());
  ASSERT_TRUE(keys.Apply({{"version", 78}, {"accounts", 1u}, {"keys", json::array()}}).ok());
  EXPECT_TRUE(keys.has_accounts()) << "even with every key revoked, the pool stays closed";
}

TEST(BrokerKeysTest, AKeyCreatedHereWorksAtOnce) {
  BrokerKeys keys;
  ASSERT_TRUE(keys.Apply({{"version", 1}, {"keys", json::array()}}).ok());
  keys.AddCreated({{"key", kAlice},
                   {"prefix", "0a0a0a0a"},
                   {"account", "alice"},
                   {"scopes", {"client"}},
                   {"services", nullptr},
                   {"expires_at", nullptr}},
                  "admin");
  EXPECT_NE(keys.Find(kAlice, Time{}), nullptr);
}

TEST(ScopesTest, EachScopeOpensItsRoutes) {
  ApiKey contributor;
  contributor.scopes = kScopeContributor;
  EXPECT_TRUE(ApiKeys::Allows(contributor, Access::kContributor).ok());
  EXPECT_TRUE(ApiKeys::Allows(contributor, Access::kAccount).ok());
  EXPECT_FALSE(ApiKeys::Allows(contributor, Access::kClient).ok());
  EXPECT_FALSE(ApiKeys::Allows(contributor, Access::kAdmin).ok());
  ApiKey client;
  client.scopes = kScopeClient;
  EXPECT_TRUE(ApiKeys::Allows(client, Access::kClient).ok());
  EXPECT_FALSE(ApiKeys::Allows(client, Access::kContributor).ok());
  EXPECT_FALSE(ApiKeys::Allows(client, Access::kMetrics).ok());
  ApiKey admin;
  admin.scopes = kScopeAdmin;
  for (Access a : {Access::kClient, Access::kAdmin, Access::kMetrics, Access::kContributor,
                   Access::kAccount}) {
    EXPECT_TRUE(ApiKeys::Allows(admin, a).ok());
  }
}

}  // namespace
}  // namespace rma::gateway
