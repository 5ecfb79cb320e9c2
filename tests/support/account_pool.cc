// See account_pool.h.
#include "tests/support/account_pool.h"

#include <gmock/gmock.h>

#include <iostream>
#include <regex>

namespace rma::testing {

using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {
std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }
}  // namespace

void AccountPool::SetUp() {
  RMA_REQUIRE_PG();
  db_ = std::make_unique<FreshDatabase>();
  keys_ = TempDir("rma-accounts-keys");
  Process keygen =
      Process::Start("rma-broker", {"keygen", keys_, "--name", "broker"}, keys_ + "/keygen.log");
  ASSERT_EQ(keygen.Wait(20s), std::optional<int>(0)) << keygen.Log();
  ClusterOptions o;
  o.broker_args = {"--db", db_->url(), "--curve-secret-file", keys_ + "/broker.key",
                   "--bootstrap-admin"};
  o.broker_args.insert(o.broker_args.end(), extra_broker_args_.begin(), extra_broker_args_.end());
  o.gateway_args = {"--broker-accounts"};
  o.gateway_args.insert(o.gateway_args.end(), extra_gateway_args_.begin(),
                        extra_gateway_args_.end());
  cluster_ = std::make_unique<Cluster>(o);
  // The bootstrap key is printed once, on the broker's stdout (its log here).
  std::smatch m;
  const std::string log = cluster_->broker().Log();
  ASSERT_TRUE(std::regex_search(log, m, std::regex("admin API key[^:]*: (rma_[0-9a-f_]+)"))) << log;
  admin_ = m[1];
  // Until its first poll of the broker's keys the gateway answers 503 (never open).
  ASSERT_TRUE(WaitUntil([&] { return Call("GET", "/api/account", admin_).status == 200; }, 10s))
      << cluster_->Logs();
}

void AccountPool::TearDown() {
  if (HasFailure() && cluster_) std::cerr << cluster_->Logs();
  cluster_.reset();
  db_.reset();
}

HttpResponse AccountPool::Call(const std::string& method, const std::string& path,
                               const std::string& key, const json& body) {
  std::vector<std::string> headers;
  if (!key.empty()) headers.push_back("X-API-Key: " + key);
  if (method != "GET") headers.push_back("Content-Type: application/json");
  return HttpCall(method, cluster_->Url(path), body.is_null() ? "" : body.dump(), headers);
}

std::string AccountPool::AccountWithKey(const std::string& name, const json& scopes,
                                        const json& services) {
  HttpResponse a = Call("POST", "/api/admin/accounts", admin_, {{"name", name}});
  EXPECT_EQ(a.status, 201) << a.body;
  json body = {{"scopes", scopes}};
  if (!services.is_null()) body["services"] = services;
  HttpResponse k = Call("POST", "/api/admin/accounts/" + name + "/keys", admin_, body);
  EXPECT_EQ(k.status, 201) << k.body;
  const std::string key = k.Json().value("key", "");
  EXPECT_THAT(key, ::testing::StartsWith("rma_"));
  return key;
}

std::string AccountPool::EnrolToken(const std::string& account, const std::string& key) {
  HttpResponse t =
      Call("POST", "/api/admin/accounts/" + account + "/enrol-tokens", key, json::object());
  EXPECT_EQ(t.status, 201) << t.body;
  return t.Json().value("token", "");
}

Process& AccountPool::StartWorker(const std::string& name, std::vector<std::string> extra) {
  std::vector<std::string> args = {"--broker-key", keys_ + "/broker.pub",
                                   "--service",    "echo=builtin:echo",
                                   "--service",    "sleep=builtin:sleep"};
  args.insert(args.end(), extra.begin(), extra.end());
  return cluster_->StartWorker(name, args);
}

std::string AccountPool::WorkerKey(const std::string& name) {
  return FirstLine(WaitForFile(cluster_->dir() + "/worker-" + name + "/worker.key.pub", 20s));
}

json AccountPool::WorkerRecord(const std::string& worker_id) {
  json doc = Call("GET", "/api/admin/workers", admin_).Json();
  if (!doc.is_object() || !doc["workers"].is_array()) return nullptr;
  for (const json& w : doc["workers"]) {
    if (w.value("worker_id", "") == worker_id) return w;
  }
  return nullptr;
}

bool AccountPool::Live(const std::string& worker_id) {
  json w = WorkerRecord(worker_id);
  return w.is_object() && w.value("status", "") != "offline";
}

std::string AccountPool::Submit(const std::string& key, const std::string& service,
                                const json& payload) {
  HttpResponse r = Call("POST", "/api/tasks", key, {{"service", service}, {"payload", payload}});
  EXPECT_EQ(r.status, 202) << r.body;
  return r.Json().value("task_id", "");
}

json AccountPool::WaitTask(const std::string& key, const std::string& id) {
  HttpResponse r = Call("GET", "/api/tasks/" + id + "?wait=20", key);
  EXPECT_EQ(r.status, 200) << r.body;
  return r.Json();
}

}  // namespace rma::testing
