// Credits end to end (issue 16; docs/accounts.md, "Credits"), with real processes: rma-broker
// with --credits on a fresh PostgreSQL database, rma-gateway --broker-accounts, and rma-worker
// processes enrolled to a volunteer's account.
//
// - track: a volunteer's worker earns for every accepted result and the submitter pays the same
//   (plus the fee); GET /api/account shows it; every task has exactly one earned and one spent row;
//   the sum of each account's rows is its balance (SQL).
// - enforce: an account below a service's minimum gets 402 {"error", "balance", "needed"}; an
//   admin account is exempt; a grant lets the account submit again; new accounts start with
//   --initial-credits.
// - the leaderboard ranks the accounts whose workers earned, with their workers beneath, and is
//   public unless the gateway says --private-leaderboard.
// - donor priority on a saturated pool (one worker, one slot): a donor's task overtakes a free
//   user's queued ones, and a free user's task behind a donor's backlog still starts within
//   --aging-s.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>

#include "tests/support/account_pool.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

double Number(const std::string& text) { return text.empty() ? -1e300 : std::stod(text); }

// Unix ms of the API's times ("2026-12-07T07:00:00.123Z"); -1 for anything else (null).
int64_t UnixMs(const json& time) {
  if (!time.is_string()) return -1;
  std::tm t{};
  int ms = 0;
  if (std::sscanf(time.get<std::string>().c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &t.tm_year, &t.tm_mon,
                  &t.tm_mday, &t.tm_hour, &t.tm_min, &t.tm_sec, &ms) != 7) {
    return -1;
  }
  t.tm_year -= 1900;
  t.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&t)) * 1000 + ms;
}

class Credits : public AccountPool {
 protected:
  // A volunteer (alice, whose worker w1 runs echo and sleep) and a client (bob).
  void StartVolunteer() {
    alice_ = AccountWithKey("alice", {"client", "contributor"});
    bob_ = AccountWithKey("bob", {"client"});
    StartWorker("w1", {"--enrol", EnrolToken("alice", alice_), "--slots", "4"});
    ASSERT_TRUE(WaitUntil([&] { return Live("w1"); }, 30s)) << cluster_->Logs();
    ASSERT_TRUE(WaitForService(*cluster_, "sleep", {"X-API-Key: " + admin_}));
  }
  // The ledger is written in the broker's group commit, right after the task's completion.
  std::string Sql(const std::string& query) { return QueryValue(db_->url(), query); }

  std::string alice_;
  std::string bob_;
};

class CreditsTracked : public Credits {
 protected:
  CreditsTracked() { extra_broker_args_ = {"--credits", "track", "--credit-fee", "0.25"}; }
};

TEST_F(CreditsTracked, EachAcceptedResultEarnsTheWorkersAccountAndCostsTheSubmitterOnce) {
  StartVolunteer();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Submit(bob_, "sleep", 200));
  for (const std::string& id : ids) {
    ASSERT_EQ(WaitTask(bob_, id).value("status", ""), "completed");
  }
  // Recorded with the completions: wait for the commit, not for a guess of its time. These are
  // the pool's only tasks.
  ASSERT_TRUE(WaitUntil(
      [&] { return Sql("SELECT count(*) FROM credit_ledger WHERE task_id IS NOT NULL") == "10"; },
      10s))
      << Sql("SELECT count(*) FROM credit_ledger");
  // Exactly one earned row (alice, worker w1) and one spent row (bob) per task.
  EXPECT_EQ(Sql("SELECT count(DISTINCT task_id) FROM credit_ledger WHERE kind = 'earned' AND "
                "account = 'alice' AND worker_id = 'w1'"),
            "5");
  EXPECT_EQ(Sql("SELECT count(DISTINCT task_id) FROM credit_ledger WHERE kind = 'spent' AND "
                "account = 'bob'"),
            "5");
  // Each task ran ~200 ms: it earned about 0.2 x the worker's tier weight (>= 1).
  const double earned = Number(Sql("SELECT sum(amount) FROM credit_ledger WHERE kind = 'earned'"));
  EXPECT_GE(earned, 5 * 0.2);
  EXPECT_LT(earned, 5 * 3.0 * 3);  // sleep 200 ms on a slow machine, at most GPU weight
  const double spent = Number(Sql("SELECT -sum(amount) FROM credit_ledger WHERE kind = 'spent'"));
  EXPECT_NEAR(spent, earned + 5 * 0.25, 1e-6) << "the submitter pays the price plus the fee";
  // The balances are the sums of the rows (the invariant of docs/accounts.md).
  EXPECT_EQ(Sql("SELECT count(*) FROM accounts a WHERE a.credits <> (SELECT coalesce(sum(amount), "
                "0) FROM credit_ledger l WHERE l.account = a.name)"),
            "0");

  // What each of them sees.
  json a = Call("GET", "/api/account", alice_).Json();
  EXPECT_NEAR(a.value("balance", -1.0), earned, 1e-6) << a.dump();
  EXPECT_NEAR(a["earned"].value("today", -1.0), earned, 1e-6) << a.dump();
  EXPECT_NEAR(a["earned"].value("all", -1.0), earned, 1e-6);
  EXPECT_EQ(a.value("credits_mode", ""), "track");
  ASSERT_TRUE(a["ledger"].is_array());
  ASSERT_EQ(a["ledger"].size(), 5u) << a.dump();
  EXPECT_EQ(a["ledger"][0].value("kind", ""), "earned");
  EXPECT_EQ(a["ledger"][0].value("worker_id", ""), "w1");
  EXPECT_THAT(ids, ::testing::Contains(a["ledger"][0].value("task_id", "")));
  json b = Call("GET", "/api/account", bob_).Json();
  EXPECT_NEAR(b.value("balance", 1.0), -spent, 1e-6) << b.dump();
  EXPECT_NEAR(b["spent"].value("week", -1.0), spent, 1e-6);

  // The leaderboard, public: alice first, her worker beneath; bob earned nothing.
  HttpResponse board = Call("GET", "/api/leaderboard?period=day&by=tasks", "");
  ASSERT_EQ(board.status, 200) << board.body;
  json top = board.Json();
  ASSERT_EQ(top["accounts"].size(), 1u) << board.body;
  EXPECT_EQ(top["accounts"][0].value("account", ""), "alice");
  EXPECT_EQ(top["accounts"][0].value("tasks", 0), 5);
  EXPECT_EQ(top["accounts"][0]["workers"][0].value("worker_id", ""), "w1");
  EXPECT_EQ(Call("GET", "/api/leaderboard?period=year", "").status, 400);
}

class CreditsEnforced : public Credits {
 protected:
  CreditsEnforced() {
    extra_broker_args_ = {"--credits", "enforce", "--min-credits", "1", "--initial-credits", "0.5"};
    extra_gateway_args_ = {"--private-leaderboard"};
  }
};

TEST_F(CreditsEnforced, AnAccountThatCannotPayGets402UntilItIsGrantedCredits) {
  StartVolunteer();
  // New accounts start with --initial-credits, a grant row of their ledger.
  json b = Call("GET", "/api/account", bob_).Json();
  EXPECT_DOUBLE_EQ(b.value("balance", -1.0), 0.5) << b.dump();
  EXPECT_EQ(Sql("SELECT count(*) FROM credit_ledger WHERE account = 'bob' AND kind = 'grant'"),
            "1");

  HttpResponse refused = Call("POST", "/api/tasks", bob_, {{"service", "echo"}, {"payload", "x"}});
  ASSERT_EQ(refused.status, 402) << refused.body;
  json why = refused.Json();
  EXPECT_EQ(why.value("code", ""), "payment_required");
  EXPECT_DOUBLE_EQ(why.value("balance", -1.0), 0.5);
  EXPECT_DOUBLE_EQ(why.value("needed", -1.0), 1.0);
  EXPECT_FALSE(why.value("error", "").empty());
  // Synchronous calls too.
  EXPECT_EQ(Call("POST", "/api/service/echo/x", bob_, {{"a", 1}}).status, 402);
  // An admin account is exempt whatever its balance.
  EXPECT_EQ(Call("POST", "/api/tasks", admin_, {{"service", "echo"}, {"payload", "x"}}).status,
            202);

  // A grant (admin only) moves the balance the broker checks.
  EXPECT_EQ(Call("POST", "/api/admin/accounts/bob/credits", bob_, {{"amount", 10}}).status, 403);
  EXPECT_EQ(Call("POST", "/api/admin/accounts/bob/credits", admin_, {{"amount", "ten"}}).status,
            400);
  EXPECT_EQ(Call("POST", "/api/admin/accounts/nobody/credits", admin_, {{"amount", 10}}).status,
            404);
  HttpResponse grant = Call("POST", "/api/admin/accounts/bob/credits", admin_,
                            {{"amount", 10}, {"note", "welcome"}});
  ASSERT_EQ(grant.status, 200) << grant.body;
  EXPECT_DOUBLE_EQ(grant.Json().value("balance", -1.0), 10.5);
  const std::string id = Submit(bob_, "echo", "paid");
  EXPECT_EQ(WaitTask(bob_, id).value("status", ""), "completed");

  // --private-leaderboard: a key is needed, any key.
  EXPECT_EQ(Call("GET", "/api/leaderboard", "").status, 401);
  EXPECT_EQ(Call("GET", "/api/leaderboard", bob_).status, 200);
}

// The pool's only worker is alice's, with one slot: every task waits for it. The tier weights are
// raised so that one short task makes alice a donor (class 1 needs 60 weighted compute-seconds).
class DonorPriority : public Credits {
 protected:
  DonorPriority() {
    const std::string dir = TempDir("rma-donor");
    config_ = dir + "/broker.json";
    std::ofstream(config_) << R"({"tier_weights": [1000, 1000, 1000]})";
    extra_broker_args_ = {"--config", config_, "--aging-s", "2"};
  }
  // Task ids of `n` sleeps of `ms` submitted by `key`.
  std::vector<std::string> Sleeps(const std::string& key, int n, int ms) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) ids.push_back(Submit(key, "sleep", ms));
    return ids;
  }
  int64_t StartedMs(const std::string& key, const std::string& id) {
    return UnixMs(WaitTask(key, id)["started_at"]);
  }
  std::string config_;
};

TEST_F(DonorPriority, ADonorsTaskGoesFirstAndAFreeUsersTaskStillStartsWithinTheAgingBound) {
  alice_ = AccountWithKey("alice", {"client", "contributor"});
  bob_ = AccountWithKey("bob", {"client"});
  StartWorker("w1", {"--enrol", EnrolToken("alice", alice_), "--slots", "1"});
  ASSERT_TRUE(WaitUntil([&] { return Live("w1"); }, 30s)) << cluster_->Logs();
  ASSERT_TRUE(WaitForService(*cluster_, "sleep", {"X-API-Key: " + admin_}));
  // Alice's worker does 0.2 s of work: 200 weighted seconds, donor class 1.
  ASSERT_EQ(WaitTask(admin_, Submit(admin_, "sleep", 200)).value("status", ""), "completed");

  // Saturated: bob's five tasks queue behind the first one running, then alice's five arrive.
  // Round-robin alone would alternate them; donor priority starts all of alice's first (they are
  // short: 0.5 s in all, well within --aging-s).
  std::vector<std::string> bobs = Sleeps(bob_, 5, 100);
  std::vector<std::string> alices = Sleeps(alice_, 5, 100);
  int64_t alice_last = 0;
  for (const std::string& id : alices) alice_last = std::max(alice_last, StartedMs(alice_, id));
  ASSERT_GT(alice_last, 0);
  int overtaken = 0;
  std::string starts = "alice's last " + std::to_string(alice_last) + "; bob's";
  for (const std::string& id : bobs) {
    const int64_t started = StartedMs(bob_, id);
    overtaken += started > alice_last ? 1 : 0;
    starts += " " + std::to_string(started);
  }
  EXPECT_GE(overtaken, 3) << "alice's tasks should all start before bob's queued ones: " << starts;

  // A backlog of the donor's (about 6 s of work) does not starve bob: his task, submitted after
  // it, starts within --aging-s (2 s) plus the task running when it aged (at most 0.3 s), with
  // slack for a loaded machine — long before the backlog is done.
  std::vector<std::string> backlog = Sleeps(alice_, 20, 300);
  const std::string bobs_late = Submit(bob_, "sleep", 100);
  json late = WaitTask(bob_, bobs_late);
  ASSERT_EQ(late.value("status", ""), "completed") << late.dump();
  const int64_t late_started = UnixMs(late["started_at"]);
  ASSERT_GT(late_started, 0) << late.dump();
  const int64_t waited = late_started - UnixMs(late["created_at"]);
  EXPECT_LT(waited, 4000) << "bob's task waited " << waited << " ms behind the donor's backlog";
  int after = 0;
  for (const std::string& id : backlog) after += StartedMs(alice_, id) > late_started ? 1 : 0;
  EXPECT_GE(after, 5) << "bob's task should start long before the donor's backlog is done";
}

// Uptime credit: an enrolled worker online and healthy earns its account --uptime-credit per hour,
// paid every --uptime-period-s (here 1 s, so 3600 credits an hour is 1 credit a row). The rows are
// `uptime` rows of the worker, counted in GET /api/account's earned, and move the balance.
class CreditsUptime : public Credits {
 protected:
  CreditsUptime() {
    extra_broker_args_ = {"--credits",         "track", "--uptime-credit", "3600",
                          "--uptime-period-s", "1"};
  }
};

TEST_F(CreditsUptime, AnEnrolledWorkerOnlineEarnsUptimeRows) {
  StartVolunteer();
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Number(Sql("SELECT count(*) FROM credit_ledger WHERE kind = 'uptime' AND "
                          "account = 'alice' AND worker_id = 'w1'")) >= 3;
      },
      20s))
      << Sql("SELECT count(*) FROM credit_ledger") << cluster_->Logs();
  EXPECT_EQ(Sql("SELECT count(*) FROM credit_ledger WHERE kind = 'uptime' AND (amount <> 1 OR "
                "task_id IS NOT NULL OR account <> 'alice')"),
            "0");
  json a = Call("GET", "/api/account", alice_).Json();
  EXPECT_GE(a["earned"].value("today", 0.0), 3.0) << a.dump();
  EXPECT_EQ(Sql("SELECT count(*) FROM accounts a WHERE a.credits <> (SELECT coalesce(sum(amount), "
                "0) FROM credit_ledger l WHERE l.account = a.name)"),
            "0");
}

}  // namespace
}  // namespace rma::testing
