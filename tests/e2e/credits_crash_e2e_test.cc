// The ledger across crashes of any process (issue 16, "Ledger invariants under load with crashes";
// docs/accounts.md, "The ledger"), with real processes: rma-broker --credits track on a fresh
// PostgreSQL database, rma-gateway --broker-accounts, and two rma-worker processes enrolled to a
// volunteer's account (alice). Clients of another account (bob) submit durable tasks through the
// gateway without pause while, at random moments chosen by progress (after N more acknowledged
// tasks, never by sleeping), the broker or one of the workers is killed with SIGKILL and started
// again. The seed is printed (RMA_CRASH_SEED replays it).
//
// Afterwards, checked with SQL on the database itself:
//   - every task the gateway acknowledged (202) completed;
//   - every completed task has exactly one `spent` row (bob) and exactly one `earned` row (alice,
//     one of her workers), however often it ran: the attempts cut short by a killed worker or a
//     killed broker earned nothing;
//   - no row names a task that did not complete;
//   - every balance is the sum of its account's rows.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "tests/support/account_pool.h"
#include "tests/support/http_load.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v == nullptr ? fallback : std::atoi(v);
}

class CreditsUnderCrashes : public AccountPool {
 protected:
  CreditsUnderCrashes() { extra_broker_args_ = {"--credits", "track"}; }

  std::string Sql(const std::string& query) { return QueryValue(db_->url(), query); }
};

TEST_F(CreditsUnderCrashes, EveryAcknowledgedTaskIsCreditedExactlyOnceAfterKillsOfAnyProcess) {
  const auto seed =
      static_cast<uint32_t>(EnvInt("RMA_CRASH_SEED", static_cast<int>(std::random_device{}())));
  std::printf("seed %u (RMA_CRASH_SEED=%u to replay)\n", seed, seed);
  std::mt19937 rng(seed);

  const std::string alice = AccountWithKey("alice", {"client", "contributor"});
  const std::string bob = AccountWithKey("bob", {"client"});
  const std::vector<std::string> workers = {"w1", "w2"};
  for (const std::string& w : workers) {
    StartWorker(w, {"--enrol", EnrolToken("alice", alice), "--slots", "8"});
  }
  for (const std::string& w : workers) {
    ASSERT_TRUE(WaitUntil([&] { return Live(w); }, 30s)) << cluster_->Logs();
  }
  ASSERT_TRUE(WaitForService(*cluster_, "echo", {"X-API-Key: " + admin_}));

  HttpLoad load(cluster_->Url("/api/tasks"), bob, 4);
  auto after_more_acks = [&](size_t more) { return load.AfterMoreAcks(more, 60s); };
  const int kills = EnvInt("RMA_CRASH_KILLS", 6);
  int broker_kills = 0;
  int worker_kills = 0;
  for (int k = 0; k < kills; ++k) {
    ASSERT_TRUE(after_more_acks(std::uniform_int_distribution<size_t>(100, 600)(rng)))
        << "stuck at " << load.acked_count() << " acknowledged tasks\n"
        << cluster_->Logs();
    // Alternate broker and worker kills, so both happen whatever the seed; the worker is random.
    if (k % 2 == 0) {
      cluster_->broker().Kill();
      ASSERT_TRUE(cluster_->broker().Wait(10s).has_value());
      cluster_->RestartBroker(/*kill=*/true);
      ++broker_kills;
    } else {
      const std::string& victim = workers[rng() % workers.size()];
      cluster_->worker(victim).Kill();
      ASSERT_TRUE(cluster_->worker(victim).Wait(10s).has_value());
      // Back under its own key, enrolled already: no token this time.
      StartWorker(victim, {"--slots", "8"});
      ++worker_kills;
    }
  }
  ASSERT_TRUE(after_more_acks(200)) << cluster_->Logs();
  load.Stop();
  const std::set<std::string> acked = load.acked();
  ASSERT_GT(acked.size(), 500u);

  // Every acknowledged task completes (the ledger rows are in the same commits).
  std::string progress;
  EXPECT_TRUE(WaitAllCompleted(db_->url(), acked, 90s, &progress)) << progress << "\n"
                                                                   << cluster_->Logs();

  EXPECT_EQ(Sql("SELECT count(*) FROM tasks t WHERE t.status = 'completed' AND (SELECT count(*) "
                "FROM credit_ledger l WHERE l.task_id = t.task_id AND l.kind = 'spent' AND "
                "l.account = 'bob') <> 1"),
            "0")
      << "completed tasks without exactly one spent row";
  EXPECT_EQ(Sql("SELECT count(*) FROM tasks t WHERE t.status = 'completed' AND (SELECT count(*) "
                "FROM credit_ledger l WHERE l.task_id = t.task_id AND l.kind = 'earned' AND "
                "l.account = 'alice' AND l.worker_id IN ('w1', 'w2')) <> 1"),
            "0")
      << "completed tasks without exactly one earned row";
  EXPECT_EQ(Sql("SELECT count(*) FROM credit_ledger l WHERE l.task_id IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM tasks t WHERE t.task_id = l.task_id AND t.status = 'completed')"),
            "0")
      << "rows for tasks that did not complete";
  EXPECT_EQ(Sql("SELECT count(*) FROM accounts a WHERE a.credits <> (SELECT coalesce(sum(amount), "
                "0) FROM credit_ledger l WHERE l.account = a.name)"),
            "0")
      << "a balance that is not the sum of its rows";
  // Kills cut attempts short: some tasks ran more than once, and still earned once.
  const std::string rerun = Sql("SELECT count(*) FROM tasks WHERE attempts > 1");
  std::printf(
      "%d broker kills, %d worker kills: %zu acknowledged tasks completed (%zu refusals while "
      "the broker was down); %s ran more than once; each earned and was charged exactly once\n",
      broker_kills, worker_kills, acked.size(), load.refused_count(), rerun.c_str());
}

}  // namespace
}  // namespace rma::testing
