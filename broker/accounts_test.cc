// Accounts (accounts.h): the shapes of keys and tokens, the argument rules, and the registry the
// loop keeps (what a gateway's poll gets, which worker keys are enrolled or revoked).
#include "broker/accounts.h"

#include <gtest/gtest.h>

#include <set>

namespace rma::broker {
namespace {

TEST(AccountsTest, KeysAndTokensHaveTheirShapeAndAreUnpredictable) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string prefix;
    const std::string key = NewApiKey(&prefix);
    EXPECT_TRUE(LooksLikeApiKey(key)) << key;
    EXPECT_EQ(key.substr(4, 8), prefix);
    EXPECT_FALSE(LooksLikeEnrolToken(key));
    const std::string token = NewEnrolToken();
    EXPECT_TRUE(LooksLikeEnrolToken(token)) << token;
    EXPECT_FALSE(LooksLikeApiKey(token));
    EXPECT_TRUE(seen.insert(key).second);
    EXPECT_TRUE(seen.insert(token).second);
  }
  EXPECT_FALSE(LooksLikeApiKey("rma_1234567_00112233445566778899aabbccddeeff0"));
  EXPECT_FALSE(LooksLikeApiKey("rma_1234567G_00112233445566778899aabbccddeeff"));
  EXPECT_FALSE(LooksLikeEnrolToken("rma_enrol_00112233445566778899AABBCCDDEEFF"));
}

TEST(AccountsTest, SecretsAreStoredAsTheirSha256) {
  EXPECT_EQ(SecretHash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(SecretHash("abc").size(), 64u);
}

TEST(AccountsTest, NamesScopesAndServiceListsAreChecked) {
  EXPECT_TRUE(CheckAccountName("alice").ok());
  EXPECT_TRUE(CheckAccountName("a.b_c-9").ok());
  EXPECT_FALSE(CheckAccountName("").ok());
  EXPECT_FALSE(CheckAccountName("-alice").ok());
  EXPECT_FALSE(CheckAccountName("al ice").ok());
  EXPECT_FALSE(CheckAccountName(std::string(65, 'a')).ok());
  auto scopes = ParseScopes("contributor, client,client");
  ASSERT_TRUE(scopes.ok());
  EXPECT_EQ(*scopes, (std::vector<std::string>{"client", "contributor"}));
  EXPECT_FALSE(ParseScopes("").ok());
  EXPECT_FALSE(ParseScopes("client,root").ok());
  auto services = ParseServiceList("ocr,echo");
  ASSERT_TRUE(services.ok());
  EXPECT_EQ(*services, (std::vector<std::string>{"echo", "ocr"}));
  EXPECT_TRUE(ParseServiceList("")->empty());
  EXPECT_FALSE(ParseServiceList("ok,../etc").ok());
}

TEST(AccountsTest, AccountQueriesAreRecognised) {
  for (const char* q : {"keys", "accounts", "account", "account_create", "key_create", "key_revoke",
                        "enrol_token_create", "credential_revoke"}) {
    EXPECT_TRUE(IsAccountQuery(q)) << q;
  }
  EXPECT_FALSE(IsAccountQuery("workers"));
  EXPECT_FALSE(IsAccountQuery("enrol")) << "enrolment comes from READY, never from a client";
}

TEST(AccountRegistryTest, GatewaysGetLiveKeysOrUnchanged) {
  AccountRegistry r;
  EXPECT_FALSE(r.loaded());
  const Time now = FromUnixMs(1'000'000);
  AccountsSnapshot s;
  s.keys.push_back({"aaaaaaaa", std::string(64, 'a'), "alice", "member", "", {"client"}, {}, {}});
  s.keys.push_back({"bbbbbbbb",
                    std::string(64, 'b'),
                    "bob",
                    "member",
                    "",
                    {"client"},
                    {"echo"},
                    now - Seconds(1)});  // expired
  s.keys.push_back(
      {"cccccccc", std::string(64, 'c'), "root", "admin", "", {"admin"}, {}, now + Seconds(60)});
  r.Replace(s);
  EXPECT_TRUE(r.loaded());
  nlohmann::json doc = r.KeysDocument(now, 0);
  EXPECT_EQ(doc["version"], r.version());
  EXPECT_EQ(doc["accounts"], 0u) << "the snapshot named no accounts";
  ASSERT_EQ(doc["keys"].size(), 2u) << "the expired key is not handed out";
  EXPECT_EQ(doc["keys"][0]["prefix"], "aaaaaaaa");
  EXPECT_EQ(doc["keys"][0]["expires_at"], 0);
  EXPECT_EQ(doc["keys"][1]["role"], "admin");
  EXPECT_EQ(doc["keys"][1]["expires_at"], ToUnixMs(now + Seconds(60)));
  EXPECT_FALSE(doc["keys"][0].contains("key")) << "never the key itself";
  nlohmann::json same = r.KeysDocument(now, r.version());
  EXPECT_TRUE(same.value("unchanged", false));
  EXPECT_FALSE(same.contains("keys"));
  const uint64_t before = r.version();
  r.Replace(s);
  EXPECT_GT(r.version(), before) << "every change is a new version";
}

TEST(AccountRegistryTest, CredentialsAreEnrolledOrRevoked) {
  AccountRegistry r;
  AccountsSnapshot s;
  s.credentials.push_back({"KEY-A", "alice", "w1", "w1", {"echo"}, 2, false});
  s.credentials.push_back({"KEY-B", "bob", "w2", "w2", {}, 0, true});
  r.Replace(s);
  EXPECT_EQ(r.EnrolledKeys(), (std::set<std::string>{"KEY-A"}));
  EXPECT_EQ(r.RevokedKeys(), (std::set<std::string>{"KEY-B"}));
  ASSERT_NE(r.Credential("KEY-A"), nullptr);
  EXPECT_EQ(r.Credential("KEY-A")->account, "alice");
  EXPECT_EQ(r.Credential("KEY-A")->tier_cap, 2u);
  EXPECT_EQ(r.Credential("KEY-C"), nullptr);
}

}  // namespace
}  // namespace rma::broker
