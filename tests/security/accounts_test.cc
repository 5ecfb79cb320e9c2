// Accounts, keys and enrolment end to end (issue 13), with real processes: rma-broker on a fresh
// PostgreSQL database with CURVE and --bootstrap-admin, rma-gateway taking its keys from the
// broker (--broker-accounts), and rma-worker processes with their own keys.
//
// - A volunteer is enrolled, runs tasks, is revoked and re-enrolled through the documented
//   commands: a contributor key makes a one-time token, `rma-worker --enrol TOKEN` binds the
//   worker's key; the token cannot be used twice; an unenrolled key is refused; a revoked worker is
//   disconnected within 1 s, its running tasks complete on another worker, and it cannot come
//   back with its key; `--new-key --enrol` with a new token brings it back.
// - API keys: a key of account A cannot read account B's tasks; a revoked key stops working within
//   5 s; a key restricted to some services cannot submit to others; a contributor key makes tokens
//   for its own account only.
// tests/security/README.md records how each rule's test fails without it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/store/pg_env.h"
#include "tests/support/account_pool.h"
#include "tests/support/cluster.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using json = nlohmann::json;
using Steady = std::chrono::steady_clock;

// The pool of tests/support/account_pool.h, as it is.
class Accounts : public AccountPool {};

TEST_F(Accounts, AVolunteerIsEnrolledRunsIsRevokedAndReEnrolled) {
  const std::string alice = AccountWithKey("alice", {"client", "contributor"});
  AccountWithKey("bob", {"client"});
  // A contributor key makes tokens for its own account only.
  EXPECT_EQ(Call("POST", "/api/admin/accounts/bob/enrol-tokens", alice, json::object()).status,
            403);
  const std::string token = EnrolToken("alice", alice);
  ASSERT_THAT(token, ::testing::StartsWith("rma_enrol_"));

  StartWorker("w1", {"--enrol", token});
  ASSERT_TRUE(WaitUntil([&] { return Live("w1"); }, 30s)) << cluster_->Logs();
  const std::string key = WorkerKey("w1");
  json record = WorkerRecord("w1");
  EXPECT_EQ(record.value("account", ""), "alice") << "the admin API shows the contributor";
  EXPECT_EQ(record.value("key", ""), key);
  EXPECT_EQ(record.value("key_fingerprint", ""), key.substr(0, 8));
  ASSERT_TRUE(WaitForService(*cluster_, "echo", {"X-API-Key: " + admin_}));
  const std::string id = Submit(alice, "echo", "hello");
  EXPECT_EQ(WaitTask(alice, id).value("status", ""), "completed");

  // The token works once: another worker (another key) presenting it is refused and exits.
  Process& reuse = StartWorker("w2", {"--enrol", token});
  EXPECT_EQ(reuse.Wait(30s), std::optional<int>(3));
  EXPECT_THAT(reuse.Log(), HasSubstr("token"));
  EXPECT_FALSE(Live("w2"));
  // A key nobody enrolled is refused with the command that fixes it.
  Process& stranger = StartWorker("w3", {});
  EXPECT_EQ(stranger.Wait(30s), std::optional<int>(3));
  EXPECT_THAT(stranger.Log(), HasSubstr("rma-worker --enrol TOKEN"));

  // The volunteer's view: its worker, connected, and its task.
  json mine = Call("GET", "/api/account", alice).Json();
  ASSERT_TRUE(mine["workers"].is_array()) << mine.dump();
  ASSERT_EQ(mine["workers"].size(), 1u) << mine.dump();
  EXPECT_EQ(mine["workers"][0].value("key", ""), key);
  EXPECT_EQ(mine["workers"][0].value("connected", false), true);
  EXPECT_EQ(mine["tasks"].value("completed", 0), 1);

  // Revoked: gone within 1 s, refused at its next handshake with its key.
  const auto revoked_at = Steady::now();
  HttpResponse r = Call("DELETE", "/api/admin/workers/w1/credential", admin_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json().value("disconnected", false), true) << r.body;
  ASSERT_TRUE(WaitUntil([&] { return !Live("w1"); }, 1s)) << "still live 1 s after revocation";
  EXPECT_LT(Steady::now() - revoked_at, 1500ms);
  EXPECT_EQ(cluster_->worker("w1").Wait(20s), std::optional<int>(3)) << "told not to come back";
  Process& again = StartWorker("w1", {});
  EXPECT_EQ(again.Wait(30s), std::optional<int>(3));
  EXPECT_THAT(again.Log(), HasSubstr("refused this worker's key"));

  // Re-enrolled with a new key and a new token.
  const std::string token2 = EnrolToken("alice", alice);
  StartWorker("w1", {"--new-key", "--enrol", token2});
  ASSERT_TRUE(WaitUntil([&] { return Live("w1"); }, 30s)) << cluster_->Logs();
  EXPECT_NE(WorkerKey("w1"), key);
  EXPECT_EQ(WorkerRecord("w1").value("account", ""), "alice");
}

// A worker whose hardware claim its work does not bear out ("GPU", simulated here) is capped by
// an admin: ranked no better than the cap now, after it reconnects, until the cap is lifted.
class AccountsSimulated : public AccountPool {
 protected:
  AccountsSimulated() { extra_broker_args_ = {"--allow-simulated"}; }
};

TEST_F(AccountsSimulated, AnAdminCapsACredentialsTierForGood) {
  const std::string alice = AccountWithKey("alice", {"client", "contributor"});
  StartWorker("w1", {"--enrol", EnrolToken("alice", alice), "--simulate", "gpu"});
  ASSERT_TRUE(WaitUntil([&] { return Live("w1"); }, 30s)) << cluster_->Logs();
  EXPECT_EQ(WorkerRecord("w1").value("tier", 0), 1) << "claims a GPU";

  // Bad requests change nothing.
  EXPECT_EQ(Call("PATCH", "/api/admin/workers/w1/credential", admin_, json{{"tier_cap", 4}}).status,
            400);
  EXPECT_EQ(
      Call("PATCH", "/api/admin/workers/w1/credential", admin_, json{{"tier_cap", "3"}}).status,
      400);
  EXPECT_EQ(Call("PATCH", "/api/admin/workers/w1/credential", admin_, json::object()).status, 400);
  EXPECT_EQ(
      Call("PATCH", "/api/admin/workers/nobody/credential", admin_, json{{"tier_cap", 3}}).status,
      404);
  EXPECT_EQ(Call("PATCH", "/api/admin/workers/w1/credential", alice, json{{"tier_cap", 3}}).status,
            403);
  EXPECT_EQ(WorkerRecord("w1").value("tier", 0), 1);

  HttpResponse r = Call("PATCH", "/api/admin/workers/w1/credential", admin_, json{{"tier_cap", 3}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json().value("tier_cap", -1), 3) << r.body;
  EXPECT_EQ(r.Json().value("applied", false), true) << "the connected worker keeps its claim";
  EXPECT_EQ(WorkerRecord("w1").value("tier", 0), 3);
  // The cap is the credential's: it holds when the worker registers again.
  cluster_->worker("w1").Signal(SIGTERM);
  ASSERT_TRUE(cluster_->worker("w1").Wait(20s).has_value());
  ASSERT_TRUE(WaitUntil([&] { return !Live("w1"); }, 10s));
  StartWorker("w1", {"--simulate", "gpu"});
  ASSERT_TRUE(WaitUntil([&] { return Live("w1"); }, 30s)) << cluster_->Logs();
  EXPECT_EQ(WorkerRecord("w1").value("tier", 0), 3) << "the cap was lost at reconnection";
  ASSERT_TRUE(WaitForService(*cluster_, "echo", {"X-API-Key: " + admin_}));
  EXPECT_EQ(WaitTask(alice, Submit(alice, "echo", "x")).value("status", ""), "completed");
  json mine = Call("GET", "/api/account", alice).Json();
  ASSERT_EQ(mine["workers"].size(), 1u) << mine.dump();
  EXPECT_EQ(mine["workers"][0].value("tier_cap", -1), 3);
  // Its workers' reputation, rolled up per account.
  ASSERT_TRUE(mine["reputation"].is_object()) << mine.dump();
  EXPECT_EQ(mine["reputation"].value("credentials", -1), 1) << mine.dump();
  EXPECT_EQ(mine["reputation"].value("worst", ""), "probation") << mine.dump();
  EXPECT_EQ(mine["reputation"]["counts"].value("accepted", 0.0), 1.0) << mine.dump();
  // Lifted: the worker is ranked by its hardware again.
  r = Call("PATCH", "/api/admin/workers/w1/credential", admin_, json{{"tier_cap", 0}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(WorkerRecord("w1").value("tier", 0), 1);
}

TEST_F(Accounts, RevocationUnderLoadDisconnectsAtOnceAndItsTasksCompleteElsewhere) {
  const std::string alice = AccountWithKey("alice", {"client", "contributor"});
  StartWorker("w1", {"--enrol", EnrolToken("alice", alice), "--slots", "4"});
  ASSERT_TRUE(WaitUntil([&] { return Live("w1"); }, 30s)) << cluster_->Logs();
  ASSERT_TRUE(WaitForService(*cluster_, "sleep", {"X-API-Key: " + admin_}));
  std::vector<std::string> ids;
  // Two: a new volunteer on probation runs at most probation_slots (2) tasks at once.
  for (int i = 0; i < 2; ++i) ids.push_back(Submit(alice, "sleep", 1500));
  // Both are running on w1 before the second worker arrives.
  ASSERT_TRUE(WaitUntil([&] { return WorkerRecord("w1").value("in_flight", 0) == 2; }, 10s));
  StartWorker("w2", {"--enrol", EnrolToken("alice", alice), "--slots", "4"});
  ASSERT_TRUE(WaitUntil([&] { return Live("w2"); }, 30s)) << cluster_->Logs();

  const auto revoked_at = Steady::now();
  ASSERT_EQ(Call("DELETE", "/api/admin/workers/w1/credential", admin_).status, 200);
  ASSERT_TRUE(WaitUntil([&] { return !Live("w1"); }, 1s));
  EXPECT_LT(Steady::now() - revoked_at, 1500ms);
  for (const std::string& id : ids) {
    json t = WaitTask(alice, id);
    EXPECT_EQ(t.value("status", ""), "completed") << t.dump();
    EXPECT_EQ(t.value("worker_id", ""), "w2") << "a revoked worker's result is not taken";
  }
}

TEST_F(Accounts, KeysSeeOnlyTheirAccountStopWhenRevokedAndKeepToTheirServices) {
  const std::string alice = AccountWithKey("alice", {"client", "contributor"});
  const std::string bob = AccountWithKey("bob", {"client"});
  const std::string echo_only = AccountWithKey("carol", {"client"}, json::array({"echo"}));
  StartWorker("w1", {"--enrol", EnrolToken("alice", alice)});
  ASSERT_TRUE(WaitForService(*cluster_, "echo", {"X-API-Key: " + admin_}));

  const std::string id = Submit(alice, "echo", "alice's secret");
  EXPECT_EQ(WaitTask(alice, id).value("status", ""), "completed");
  EXPECT_EQ(Call("GET", "/api/tasks/" + id, bob).status, 404) << "bob cannot read alice's task";
  EXPECT_EQ(Call("DELETE", "/api/tasks/" + id, bob).status, 404);
  EXPECT_EQ(Call("GET", "/api/tasks/" + id, admin_).status, 200);
  EXPECT_EQ(Call("GET", "/api/tasks/" + id, alice).status, 200);
  json listed = Call("GET", "/api/tasks", bob).Json();
  EXPECT_TRUE(listed["tasks"].empty()) << listed.dump();

  // Client keys cannot use the admin API; unknown keys nothing.
  EXPECT_EQ(Call("GET", "/api/admin/accounts", bob).status, 403);
  EXPECT_EQ(Call("GET", "/api/tasks", "rma_00000000_00000000000000000000000000000000").status, 403);
  // A key restricted to echo cannot submit to sleep.
  EXPECT_EQ(Call("POST", "/api/tasks", echo_only, {{"service", "sleep"}, {"payload", 1}}).status,
            403);
  EXPECT_EQ(Call("POST", "/api/tasks", echo_only, {{"service", "echo"}, {"payload", 1}}).status,
            202);

  // Revoked: every request with it fails within 5 s.
  const std::string prefix = bob.substr(4, 8);
  HttpResponse r = Call("DELETE", "/api/admin/keys/" + prefix, admin_);
  ASSERT_EQ(r.status, 200) << r.body;
  const auto revoked_at = Steady::now();
  ASSERT_TRUE(WaitUntil([&] { return Call("GET", "/api/tasks", bob).status == 403; }, 5s));
  EXPECT_LT(Steady::now() - revoked_at, 5s);
  // An admin sees bob's account (its revoked key included); bob does not see the admin view.
  json bobs = Call("GET", "/api/admin/accounts/bob", admin_).Json();
  ASSERT_TRUE(bobs["keys"].is_array()) << bobs.dump();
  ASSERT_EQ(bobs["keys"].size(), 1u);
  EXPECT_EQ(bobs["keys"][0].value("revoked", false), true);
  EXPECT_EQ(Call("GET", "/api/admin/accounts/alice", alice).status, 403);
  EXPECT_EQ(Call("GET", "/api/admin/accounts/nobody", admin_).status, 404);
  json accounts = Call("GET", "/api/admin/accounts", admin_).Json();
  ASSERT_TRUE(accounts["accounts"].is_array()) << accounts.dump();
  for (const json& a : accounts["accounts"]) {
    if (a["name"] == "bob") {
      EXPECT_EQ(a.value("keys", -1), 0);
    }
  }
}

// The demo pool (README): a database, a gateway without keys on loopback, no account made. It stays
// open — the database alone does not close it — until the first account exists; from then on every
// gateway asks for keys, and revoking every key never opens it again.
TEST(AccountsOpenPool, ADatabaseWithoutAccountsKeepsALoopbackGatewayOpenUntilTheFirstAccount) {
  RMA_REQUIRE_PG();
  FreshDatabase db;
  ClusterOptions o;
  o.broker_args = {"--db", db.url()};
  Cluster cluster(o);
  cluster.StartWorker("w1", {"--service", "echo=builtin:echo"});
  ASSERT_TRUE(WaitForService(cluster, "echo")) << cluster.Logs();
  auto submit = [&](const std::vector<std::string>& headers) {
    std::vector<std::string> h = headers;
    h.push_back("Content-Type: application/json");
    return HttpCall("POST", cluster.Url("/api/tasks"), R"({"service":"echo","payload":1})", h)
        .status;
  };
  // The gateway has the broker's answer (it logs each new key-set version), and stays open.
  ASSERT_TRUE(WaitUntil(
      [&] { return cluster.gateway().Log().find("broker keys: version") != std::string::npos; },
      10s))
      << cluster.Logs();
  EXPECT_THAT(cluster.gateway().Log(), HasSubstr("0 account(s)"));
  EXPECT_EQ(submit({}), 202) << "a database without accounts leaves the demo pool open";

  // The first account (made through the open gateway): keys are needed within a poll or two.
  HttpResponse a = HttpPostJson(cluster.Url("/api/admin/accounts"), {{"name", "alice"}});
  ASSERT_EQ(a.status, 201) << a.body;
  ASSERT_TRUE(WaitUntil([&] { return submit({}) == 401; }, 5s)) << "still open with an account";
}

}  // namespace
}  // namespace rma::testing
