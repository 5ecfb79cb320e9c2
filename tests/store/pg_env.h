// Test support for the PostgreSQL store's tests: the server scripts/test.sh starts
// (RMA_TEST_PG_URL), a fresh uniquely named database on it per test, and a private server of the
// test's own (scripts/pg.sh in a temporary directory) for tests that stop and restart PostgreSQL.
// Used from the test's main thread.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>

namespace rma::testing {

// The URL of the server scripts/test.sh started, or "".
std::string TestServerUrl();

// In a test's SetUp: skips without a server, or fails when scripts/test.sh demands one.
#define RMA_REQUIRE_PG()                                                                    \
  do {                                                                                      \
    if (::rma::testing::TestServerUrl().empty()) {                                          \
      if (std::getenv("RMA_REQUIRE_PG") != nullptr) FAIL() << "RMA_TEST_PG_URL is not set"; \
      GTEST_SKIP() << "no PostgreSQL: run through scripts/test.sh";                         \
    }                                                                                       \
  } while (0)

// A database created on `server_url` (default: the test server) and dropped at destruction.
class FreshDatabase {
 public:
  explicit FreshDatabase(const std::string& server_url = TestServerUrl());
  ~FreshDatabase();
  FreshDatabase(const FreshDatabase&) = delete;
  FreshDatabase& operator=(const FreshDatabase&) = delete;
  const std::string& url() const { return url_; }

 private:
  std::string server_url_;
  std::string name_;
  std::string url_;
};

// A PostgreSQL server of this test alone (fsync as configured by initdb defaults: on), stopped
// and removed at destruction. Start() again after Stop() keeps the URL.
class PrivatePg {
 public:
  PrivatePg();
  ~PrivatePg();
  PrivatePg(const PrivatePg&) = delete;
  PrivatePg& operator=(const PrivatePg&) = delete;
  const std::string& url() const { return url_; }
  bool Start();
  void Stop();

 private:
  std::string dir_;
  std::string url_;
};

// Runs one SQL statement on `url` and returns the first column of the first row ("" if none).
std::string QueryValue(const std::string& url, const std::string& sql);

// Waits (up to `timeout`) until every task of `ids` (as the HTTP API prints them: unsigned decimal)
// is completed on record at `url`; *progress says "N of M acknowledged tasks completed".
bool WaitAllCompleted(const std::string& url, const std::set<std::string>& ids,
                      std::chrono::milliseconds timeout, std::string* progress);

}  // namespace rma::testing
