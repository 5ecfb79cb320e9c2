// Test support: a pool with accounts, for end-to-end tests of the identity layer and of credits
// (issues 13 and 16). rma-broker on a fresh PostgreSQL database with CURVE and --bootstrap-admin
// (plus the test's own broker flags), rma-gateway taking its keys from the broker
// (--broker-accounts, plus the test's own gateway flags), and rma-worker processes with their own
// keys, enrolled through the documented commands. Used from the test's main thread.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/store/pg_env.h"
#include "tests/support/cluster.h"

namespace rma::testing {

class AccountPool : public ::testing::Test {
 protected:
  // Extra flags for the broker and the gateway; set before SetUp runs (in the constructor).
  std::vector<std::string> extra_broker_args_;
  std::vector<std::string> extra_gateway_args_;

  void SetUp() override;
  void TearDown() override;

  HttpResponse Call(const std::string& method, const std::string& path, const std::string& key,
                    const nlohmann::json& body = nullptr);
  // A new account and a key of it with `scopes`; the key.
  std::string AccountWithKey(const std::string& name, const nlohmann::json& scopes,
                             const nlohmann::json& services = nullptr);
  std::string EnrolToken(const std::string& account, const std::string& key);
  // An rma-worker with services echo and sleep (builtins) and `extra` flags.
  Process& StartWorker(const std::string& name, std::vector<std::string> extra);
  std::string WorkerKey(const std::string& name);
  // The admin API's record of a worker (null when it has none).
  nlohmann::json WorkerRecord(const std::string& worker_id);
  bool Live(const std::string& worker_id);
  // Submits `payload` to `service` with `key`; the task id ("" when refused).
  std::string Submit(const std::string& key, const std::string& service,
                     const nlohmann::json& payload);
  nlohmann::json WaitTask(const std::string& key, const std::string& id);

  std::unique_ptr<FreshDatabase> db_;
  std::string keys_;
  std::unique_ptr<Cluster> cluster_;
  std::string admin_;
};

}  // namespace rma::testing
