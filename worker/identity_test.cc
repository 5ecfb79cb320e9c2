// The worker's identity files (identity.h): the CURVE key made on first start is kept across
// restarts, and --new-key puts a different one in its place, still private (0600), with a
// matching worker.key.pub and no temporary file left behind.
#include "worker/identity.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace rma::worker {
namespace {

namespace fs = std::filesystem;

class WorkerKeyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("rma-worker-identity-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  unsigned Mode(const std::string& name) const {
    struct stat st {};
    EXPECT_EQ(stat(Path(name).c_str(), &st), 0) << name;
    return st.st_mode & 0777;
  }
  std::string FirstLine(const std::string& name) const {
    std::ifstream in(Path(name));
    std::string line;
    std::getline(in, line);
    return line;
  }

  fs::path dir_;
};

TEST_F(WorkerKeyTest, TheKeyMadeOnFirstStartIsKept) {
  auto first = LoadOrCreateWorkerKey(dir_.string());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(Mode("worker.key"), 0600u);
  EXPECT_EQ(FirstLine("worker.key.pub"), first->public_key);
  auto again = LoadOrCreateWorkerKey(dir_.string());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->public_key, first->public_key);
  EXPECT_EQ(again->secret_key, first->secret_key);
}

TEST_F(WorkerKeyTest, ANewKeyReplacesTheOldOneAndStaysPrivate) {
  auto old_key = LoadOrCreateWorkerKey(dir_.string());
  ASSERT_TRUE(old_key.ok()) << old_key.status().ToString();
  // Someone loosened the old file's mode: the new one is private whatever the old one was.
  ASSERT_EQ(chmod(Path("worker.key").c_str(), 0644), 0);

  auto new_key = ReplaceWorkerKey(dir_.string());
  ASSERT_TRUE(new_key.ok()) << new_key.status().ToString();
  EXPECT_NE(new_key->public_key, old_key->public_key);
  EXPECT_NE(new_key->secret_key, old_key->secret_key);
  EXPECT_EQ(Mode("worker.key"), 0600u);
  EXPECT_EQ(FirstLine("worker.key.pub"), new_key->public_key);
  EXPECT_FALSE(fs::exists(Path("worker.key.tmp")));
  EXPECT_FALSE(fs::exists(Path("worker.key.pub.tmp")));
  // The next start uses the new key.
  auto loaded = LoadOrCreateWorkerKey(dir_.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->public_key, new_key->public_key);
  EXPECT_EQ(loaded->secret_key, new_key->secret_key);
}

TEST_F(WorkerKeyTest, ANewKeyInAnEmptyDataDirectoryIsMadeThere) {
  auto key = ReplaceWorkerKey(Path("nested/data"));
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(Mode("nested/data/worker.key"), 0600u);
  auto loaded = LoadOrCreateWorkerKey(Path("nested/data"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->public_key, key->public_key);
}

}  // namespace
}  // namespace rma::worker
