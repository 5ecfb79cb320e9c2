// CURVE key files and lists (curve_keys.h): keys made here survive a round trip through their
// files, a secret file others can read is refused, lists take comments and name a bad line, and
// a '#' inside a key (a Z85 character) does not start a comment.
#include "protocol/curve_keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace rma::proto {
namespace {

namespace fs = std::filesystem;

class CurveKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("rma-curve-keys-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(Path(name)) << text;
  }

  fs::path dir_;
};

TEST_F(CurveKeysTest, AGeneratedKeypairIsConsistent) {
  ASSERT_TRUE(CurveAvailable());
  auto keys = GenerateCurveKeypair();
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  EXPECT_TRUE(IsZ85Key(keys->public_key));
  EXPECT_TRUE(IsZ85Key(keys->secret_key));
  EXPECT_NE(keys->public_key, keys->secret_key);
  auto again = KeypairFromSecret(keys->secret_key);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->public_key, keys->public_key);
  EXPECT_FALSE(IsZ85Key("too short"));
  EXPECT_FALSE(IsZ85Key(std::string(40, ' ')));
  EXPECT_FALSE(KeypairFromSecret("not a key").ok());
}

TEST_F(CurveKeysTest, KeygenWritesAPrivateSecretAndAPublicFileAndNeverOverwrites) {
  auto keys = WriteNewKeypair(Path("keys"), "broker");
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  struct stat st {};
  ASSERT_EQ(stat(Path("keys/broker.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto read = ReadSecretKeyFile(Path("keys/broker.key"));
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->public_key, keys->public_key);
  auto pub = ResolvePublicKey(Path("keys/broker.pub"));
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  EXPECT_EQ(*pub, keys->public_key);
  EXPECT_EQ(*ResolvePublicKey(keys->public_key), keys->public_key);
  EXPECT_FALSE(ResolvePublicKey(Path("nothing-here")).ok());
  // A 40-character path is valid Z85 too ('/' and '.' are Z85 characters): the file wins.
  const std::string forty = "keys/" + std::string(35 - 4, 'p') + ".pub";
  ASSERT_EQ(forty.size(), 40u);
  ASSERT_TRUE(IsZ85Key(forty));
  fs::current_path(dir_);
  Write(forty, keys->public_key + "\n");
  EXPECT_EQ(*ResolvePublicKey(forty), keys->public_key);
  auto second = WriteNewKeypair(Path("keys"), "broker");
  EXPECT_EQ(second.status().code(), StatusCode::kAlreadyExists);
}

TEST_F(CurveKeysTest, ASecretKeyFileOthersCanReadIsRefused) {
  auto keys = WriteNewKeypair(Path("k"), "gw");
  ASSERT_TRUE(keys.ok());
  chmod(Path("k/gw.key").c_str(), 0644);
  auto read = ReadSecretKeyFile(Path("k/gw.key"));
  EXPECT_EQ(read.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(read.status().message().find("chmod 600"), std::string::npos);
}

TEST_F(CurveKeysTest, LoadOrCreateMakesAKeyOnceAndKeepsIt) {
  auto first = LoadOrCreateSecretKeyFile(Path("data/worker.key"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = LoadOrCreateSecretKeyFile(Path("data/worker.key"));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(first->public_key, second->public_key);
  EXPECT_EQ(*ResolvePublicKey(Path("data/worker.key.pub")), first->public_key);
}

TEST_F(CurveKeysTest, KeyListsTakeCommentsAndKeysThatHoldAHash) {
  const std::string a = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
  // About a third of all keys hold a '#' (never first: Z85's first character of a group stops
  // short of it).
  std::string hash_key;
  for (int i = 0; i < 1000 && hash_key.empty(); ++i) {
    auto k = GenerateCurveKeypair();
    if (k.ok() && k->public_key.find('#') != std::string::npos) hash_key = k->public_key;
  }
  ASSERT_TRUE(IsZ85Key(hash_key));
  Write("clients", "# gateways\n\n  " + a + "   gateway-1 (eu)\n" + hash_key + "\n# " + a + "\n");
  auto keys = ReadKeyList(Path("clients"));
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  EXPECT_EQ(*keys, (std::set<std::string>{a, hash_key}));

  Write("bad", a + "\nnot-a-key\n");
  auto bad = ReadKeyList(Path("bad"));
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("line 2"), std::string::npos) << bad.status().message();
  Write("glued", a + "x\n");  // a 41st character that is not a space: not a key
  EXPECT_FALSE(ReadKeyList(Path("glued")).ok());
  EXPECT_FALSE(ReadKeyList(Path("missing")).ok());
}

}  // namespace
}  // namespace rma::proto
