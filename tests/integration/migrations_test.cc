// The numbered migrations in schemas/sql/ apply cleanly, in order, to a fresh database, and the
// tables and indexes the broker relies on exist afterwards. Needs the PostgreSQL server
// scripts/test.sh starts (RMA_TEST_PG_URL); label "pg".
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <pqxx/pqxx>
#include <random>

#include "tests/support/process.h"

namespace rma::testing {
namespace {

std::string ServerUrl() {
  const char* url = std::getenv("RMA_TEST_PG_URL");
  return url == nullptr ? "" : url;
}

// A fresh, uniquely named database on the test server; dropped afterwards.
class FreshDatabase {
 public:
  FreshDatabase() {
    std::mt19937_64 rng(std::random_device{}());
    name_ = "rma_migrations_" + std::to_string(rng() % 1000000000);
    pqxx::connection admin(ServerUrl());
    pqxx::nontransaction tx(admin);
    tx.exec("CREATE DATABASE " + name_);
    std::string url = ServerUrl();
    url = url.substr(0, url.rfind('/') + 1) + name_;
    url_ = url;
  }
  ~FreshDatabase() {
    try {
      pqxx::connection admin(ServerUrl());
      pqxx::nontransaction tx(admin);
      tx.exec("DROP DATABASE IF EXISTS " + name_);
    } catch (const std::exception&) {
    }
  }
  const std::string& url() const { return url_; }

 private:
  std::string name_;
  std::string url_;
};

std::vector<std::filesystem::path> MigrationFiles() {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(RMA_SQL_DIR)) {
    if (e.path().extension() == ".sql") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class MigrationsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (ServerUrl().empty()) {
      if (std::getenv("RMA_REQUIRE_PG") != nullptr) FAIL() << "RMA_TEST_PG_URL is not set";
      GTEST_SKIP() << "no PostgreSQL: run through scripts/test.sh";
    }
  }
};

TEST_F(MigrationsTest, FilesAreNumberedFromOneWithoutGaps) {
  auto files = MigrationFiles();
  ASSERT_FALSE(files.empty());
  for (size_t i = 0; i < files.size(); ++i) {
    int number = std::stoi(files[i].filename().string().substr(0, 3));
    EXPECT_EQ(number, static_cast<int>(i + 1)) << files[i];
  }
}

TEST_F(MigrationsTest, EveryMigrationAppliesToAFreshDatabase) {
  FreshDatabase db;
  pqxx::connection conn(db.url());
  for (const auto& file : MigrationFiles()) {
    pqxx::work tx(conn);
    ASSERT_NO_THROW(tx.exec(ReadFile(file.string()))) << file;
    tx.commit();
  }
  pqxx::work tx(conn);
  for (const char* table : {"rma_migrations", "workers", "tasks", "service_stats_minute"}) {
    auto r = tx.exec("SELECT to_regclass('public." + std::string(table) + "') IS NOT NULL");
    EXPECT_TRUE(r[0][0].as<bool>()) << table;
  }
  auto idx = tx.exec("SELECT count(*) FROM pg_indexes WHERE tablename = 'tasks'");
  EXPECT_GE(idx[0][0].as<int>(), 6);
  // A task row round-trips with its bytea payload, and the status check rejects nonsense.
  tx.exec(
      "INSERT INTO tasks (task_id, service, status, payload, max_attempts, timeout_ms, created_at, "
      "run_at) "
      "VALUES (1, 'echo', 'queued', '\\x00ff', 3, 1000, now(), now())");
  EXPECT_EQ(tx.exec("SELECT length(payload) FROM tasks WHERE task_id = 1")[0][0].as<int>(), 2);
  tx.exec("SAVEPOINT bad");
  EXPECT_THROW(tx.exec("UPDATE tasks SET status = 'weird' WHERE task_id = 1"),
               pqxx::check_violation);
}

}  // namespace
}  // namespace rma::testing
