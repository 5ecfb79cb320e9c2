// Crash tests of durable acceptance (label "pg"): a real rma-broker on PostgreSQL under continuous
// load from a ZeroMQ client, while
//   - the broker is killed with SIGKILL at random moments and restarted, several times;
//   - workers (real rma-worker processes) are killed with SIGKILL and replaced, several times;
//   - PostgreSQL itself is stopped and started again, several times.
// Each proves that every acknowledged task completes, and accounts for every task that ran more
// than once. The moments are random (the seed is printed) but chosen by progress (after N more
// acknowledgements), never by sleeping. Kept to tens of seconds each; bench/store_crash.sh runs
// longer variants.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <thread>

#include "broker/pg_values.h"
#include "tests/store/pg_env.h"
#include "tests/support/cluster.h"
#include "tests/support/zmq_peers.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using proto::Command;
using Steady = std::chrono::steady_clock;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v == nullptr ? fallback : std::atoi(v);
}

// Submits tasks continuously from its own thread (batches of SUBMIT over ZeroMQ, paced, with a
// bounded number of unanswered ones) and remembers every task the broker acknowledged.
class Submitter {
 public:
  Submitter(std::string endpoint, std::string service, int rate_per_s, std::string owner = "")
      : endpoint_(std::move(endpoint)),
        service_(std::move(service)),
        rate_(rate_per_s),
        owner_(std::move(owner)) {}
  ~Submitter() { Stop(); }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  size_t acked_count() const { return acked_count_; }
  size_t refused_count() const { return refused_count_; }
  std::set<uint64_t> acked() const {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_;
  }
  std::map<std::string, int> refusals() const {
    std::lock_guard<std::mutex> lock(mu_);
    return refusals_;
  }

 private:
  void Run() {
    ZmqClient client(endpoint_);
    proto::Decoder decoder;
    std::map<uint64_t, Steady::time_point> outstanding;  // ref -> sent
    uint64_t next_ref = 1;
    const int batch = 10;
    const auto start = Steady::now();
    int64_t sent = 0;
    while (!stop_) {
      // Pace to `rate_`, keep at most 200 unanswered; a broker that died never answers: give up
      // on those (they were never acknowledged).
      auto now = Steady::now();
      for (auto it = outstanding.begin(); it != outstanding.end();) {
        it = now - it->second > 3s ? outstanding.erase(it) : std::next(it);
      }
      double due = std::chrono::duration<double>(now - start).count() * rate_;
      if (outstanding.size() < 200 && static_cast<double>(sent) < due) {
        std::vector<proto::Submit> subs;
        for (int i = 0; i < batch; ++i) {
          proto::Submit s;
          s.ref = next_ref++;
          s.service = service_;
          s.payload = "task-" + std::to_string(s.ref);
          s.content_type = "text/plain";
          s.owner = owner_;
          subs.push_back(std::move(s));
          outstanding[subs.back().ref] = now;
        }
        client.Submit(subs);
        sent += batch;
      }
      ClientMessage m;
      if (!client.Receive(2ms, &m)) continue;
      for (const std::string& body : m.bodies) {
        if (m.command == Command::kAccepted) {
          proto::Accepted a;
          if (!decoder.Decode(body, &a).ok()) continue;
          outstanding.erase(a.ref);
          std::lock_guard<std::mutex> lock(mu_);
          if (acked_.insert(a.task_id.value()).second) ++acked_count_;
        } else if (m.command == Command::kError) {
          proto::Error e;
          if (!decoder.Decode(body, &e).ok()) continue;
          outstanding.erase(e.ref);
          ++refused_count_;
          std::lock_guard<std::mutex> lock(mu_);
          ++refusals_[e.code];
        }
      }
    }
  }

  std::string endpoint_;
  std::string service_;
  int rate_;
  std::string owner_;  // the account the tasks are submitted for ("": anonymous)
  std::atomic<bool> stop_{false};
  std::atomic<size_t> acked_count_{0};
  std::atomic<size_t> refused_count_{0};
  mutable std::mutex mu_;
  std::set<uint64_t> acked_;
  std::map<std::string, int> refusals_;
  std::thread thread_;
};

struct TaskRow {
  std::string status;
  int attempts = 0;
  int requeues = 0;
  int failures = 0;
  bool result_is_payload = false;
};

std::map<uint64_t, TaskRow> TaskRows(const std::string& url) {
  std::map<uint64_t, TaskRow> rows;
  pqxx::connection conn(url);
  pqxx::nontransaction tx(conn);
  for (const pqxx::row& r : tx.exec("SELECT task_id, status, attempts, requeues, failures, "
                                    "coalesce(result = payload, false) FROM tasks")) {
    TaskRow row;
    row.status = r[1].c_str();
    row.attempts = r[2].as<int>();
    row.requeues = r[3].as<int>();
    row.failures = r[4].as<int>();
    row.result_is_payload = r[5].as<bool>();
    rows[static_cast<uint64_t>(r[0].as<int64_t>())] = row;  // random ids fill all 64 bits
  }
  return rows;
}

std::set<uint64_t> CompletedIds(const std::string& url) {
  std::set<uint64_t> ids;
  pqxx::connection conn(url);
  pqxx::nontransaction tx(conn);
  for (const pqxx::row& r : tx.exec("SELECT task_id FROM tasks WHERE status = 'completed'")) {
    ids.insert(static_cast<uint64_t>(r[0].as<int64_t>()));
  }
  return ids;
}

// Waits until every acknowledged task is completed on record.
::testing::AssertionResult AllCompleted(const std::string& url, const std::set<uint64_t>& acked,
                                        std::chrono::milliseconds timeout) {
  std::vector<uint64_t> ids(acked.begin(), acked.end());
  std::string literal = broker::IdArrayLiteral(ids);
  int64_t done = 0;
  bool ok = WaitUntil(
      [&] {
        try {
          pqxx::connection conn(url);
          pqxx::nontransaction tx(conn);
          done = tx.exec_params(
                       "SELECT count(*) FROM tasks WHERE status = 'completed' AND "
                       "task_id = ANY($1::bigint[])",
                       literal)[0][0]
                     .as<int64_t>();
        } catch (const std::exception&) {
          return false;
        }
        return done == static_cast<int64_t>(ids.size());
      },
      timeout);
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << done << " of " << ids.size() << " acknowledged tasks completed";
}

std::function<std::chrono::microseconds()> RandomRunTime(uint32_t seed) {
  auto rng = std::make_shared<std::mt19937>(seed);
  return [rng] { return std::chrono::microseconds((*rng)() % 5000); };
}

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RMA_REQUIRE_PG();
    seed_ =
        static_cast<uint32_t>(EnvInt("RMA_CRASH_SEED", static_cast<int>(std::random_device{}())));
    rng_.seed(seed_);
    std::printf("seed %u (RMA_CRASH_SEED=%u to replay)\n", seed_, seed_);
  }
  // A broker on `db_url` without a gateway; slow heartbeats and generous liveness, so the fake
  // workers are never declared dead for being busy.
  static ClusterOptions BrokerOnly(const std::string& db_url) {
    ClusterOptions options;
    options.gateway = false;
    options.heartbeat_ms = 250;
    options.liveness = 8;
    options.broker_args = {"--db", db_url};
    return options;
  }
  // Two fake workers (16 slots, random run times) that record every task they receive in `log`.
  std::vector<std::unique_ptr<FakeWorker>> StartFakeWorkers(Cluster& cluster, ExecutionLog* log) {
    std::vector<std::unique_ptr<FakeWorker>> workers;
    for (int i = 1; i <= 2; ++i) {
      FakeWorkerOptions w;
      w.endpoint = cluster.workers_endpoint();
      w.worker_id = "fake-" + std::to_string(i);
      w.slots = 16;
      w.run_time = RandomRunTime(seed_ + static_cast<uint32_t>(i));
      workers.push_back(std::make_unique<FakeWorker>(w, log));
      workers.back()->Start();
    }
    return workers;
  }
  // Waits for `more` further acknowledgements: load is flowing and this is a random moment.
  void AfterMoreAcks(const Submitter& s, size_t more, Cluster& cluster) {
    size_t target = s.acked_count() + more;
    ASSERT_TRUE(WaitUntil([&] { return s.acked_count() >= target; }, 60s))
        << "stuck at " << s.acked_count() << " acknowledgements\n"
        << cluster.Logs();
  }
  size_t RandomAcks() { return std::uniform_int_distribution<size_t>(200, 1200)(rng_); }

  uint32_t seed_ = 0;
  std::mt19937 rng_;
};

TEST_F(CrashTest, BrokerKilledAtRandomMomentsLosesNoAcknowledgedTask) {
  FreshDatabase db;
  Cluster cluster(BrokerOnly(db.url()));
  ExecutionLog log;
  std::vector<std::unique_ptr<FakeWorker>> workers = StartFakeWorkers(cluster, &log);
  Submitter load(cluster.clients_endpoint(), "echo", EnvInt("RMA_CRASH_RATE", 1500));
  load.Start();

  // Tasks a worker had received and whose completion was not on record when the broker died:
  // the only ones allowed to run more than once.
  std::set<uint64_t> running_at_a_crash;
  const int kills = EnvInt("RMA_CRASH_KILLS", 5);
  for (int k = 0; k < kills; ++k) {
    AfterMoreAcks(load, RandomAcks(), cluster);
    cluster.broker().Kill();
    ASSERT_TRUE(cluster.broker().Wait(10s).has_value());
    std::set<uint64_t> completed = CompletedIds(db.url());
    for (const auto& [id, n] : log.Counts()) {
      if (completed.count(id) == 0) running_at_a_crash.insert(id);
    }
    cluster.RestartBroker(/*kill=*/true);
  }
  AfterMoreAcks(load, 200, cluster);
  load.Stop();
  std::set<uint64_t> acked = load.acked();
  ASSERT_TRUE(AllCompleted(db.url(), acked, 60s)) << cluster.Logs();

  std::map<uint64_t, TaskRow> rows = TaskRows(db.url());
  size_t duplicates = 0;
  size_t duplicated_tasks = 0;
  const std::map<uint64_t, std::vector<uint32_t>> attempts = log.Attempts();
  for (const auto& [id, n] : log.Counts()) {
    if (n < 2) continue;
    ++duplicated_tasks;
    duplicates += static_cast<size_t>(n - 1);
    // A task may run again only because of a crash: it was running when the check after a kill
    // looked, or it was handed out twice under the same attempt number — a live broker never does
    // that, so the first hand-out was by a broker that died before recording it (the worker may
    // read such a TASK from its socket after the check; its result is refused by the restarted
    // broker, which has no record of that lease).
    const std::vector<uint32_t>& a = attempts.at(id);
    const bool attempt_reissued = std::set<uint32_t>(a.begin(), a.end()).size() < a.size();
    EXPECT_TRUE(running_at_a_crash.count(id) == 1 || attempt_reissued)
        << "task " << id << " ran " << n << " times (attempts " << ::testing::PrintToString(a)
        << ") but was not running at any crash";
  }
  for (uint64_t id : acked) {
    ASSERT_EQ(rows.count(id), 1u) << id;
    EXPECT_TRUE(rows[id].result_is_payload) << "task " << id << " has the wrong result";
  }
  std::printf(
      "%d broker kills: %zu acknowledged tasks all completed; %zu executions; %zu tasks "
      "ran more than once (%zu extra runs), all of them among the %zu in flight at a "
      "crash\n",
      kills, acked.size(), log.size(), duplicated_tasks, duplicates, running_at_a_crash.size());
  EXPECT_GT(acked.size(), 1000u);
}

// Credits across crashes (issue 16; docs/accounts.md, "The ledger"): tasks submitted for an account
// under --credits track while the broker is killed at random moments. Afterwards every completed
// task has exactly one `spent` row (the completion and its row are one commit), and every balance
// is the sum of its rows.
TEST_F(CrashTest, BrokerKilledAtRandomMomentsChargesEachCompletedTaskExactlyOnce) {
  FreshDatabase db;
  {
    // The schema is the broker's: let it create it, then add the account it will read at start.
    Cluster first(BrokerOnly(db.url()));
  }
  ASSERT_EQ(QueryValue(db.url(),
                       "INSERT INTO accounts (name, role) VALUES ('alice', 'member') "
                       "RETURNING name"),
            "alice");
  ClusterOptions options = BrokerOnly(db.url());
  options.broker_args.insert(options.broker_args.end(), {"--credits", "track"});
  Cluster cluster(options);
  ExecutionLog log;
  std::vector<std::unique_ptr<FakeWorker>> workers = StartFakeWorkers(cluster, &log);
  Submitter load(cluster.clients_endpoint(), "echo", EnvInt("RMA_CRASH_RATE", 1500), "alice");
  load.Start();
  const int kills = EnvInt("RMA_CRASH_KILLS", 5);
  for (int k = 0; k < kills; ++k) {
    AfterMoreAcks(load, RandomAcks(), cluster);
    cluster.broker().Kill();
    ASSERT_TRUE(cluster.broker().Wait(10s).has_value());
    cluster.RestartBroker(/*kill=*/true);
  }
  AfterMoreAcks(load, 200, cluster);
  load.Stop();
  std::set<uint64_t> acked = load.acked();
  ASSERT_TRUE(AllCompleted(db.url(), acked, 60s)) << cluster.Logs();
  // The last completions' rows are in the same commits as the completions themselves.
  EXPECT_EQ(QueryValue(db.url(),
                       "SELECT count(*) FROM tasks t WHERE t.status = 'completed' AND t.owner = "
                       "'alice' AND (SELECT count(*) FROM credit_ledger l WHERE l.task_id = "
                       "t.task_id AND l.kind = 'spent') <> 1"),
            "0")
      << "completed tasks without exactly one spent row";
  EXPECT_EQ(QueryValue(db.url(),
                       "SELECT count(*) FROM credit_ledger l WHERE l.task_id IS NOT NULL AND NOT "
                       "EXISTS (SELECT 1 FROM tasks t WHERE t.task_id = l.task_id AND t.status = "
                       "'completed')"),
            "0")
      << "rows for tasks that did not complete";
  EXPECT_EQ(QueryValue(db.url(),
                       "SELECT count(*) FROM accounts a WHERE a.credits <> (SELECT "
                       "coalesce(sum(amount), 0) FROM credit_ledger l WHERE l.account "
                       "= a.name)"),
            "0")
      << "a balance that is not the sum of its rows";
  const std::string charged = QueryValue(
      db.url(), "SELECT count(*) FROM credit_ledger WHERE account = 'alice' AND kind = 'spent'");
  std::printf("%d broker kills: %zu acknowledged tasks completed, %s charged once each\n", kills,
              acked.size(), charged.c_str());
  EXPECT_GE(std::stoul(charged), acked.size());
}

TEST_F(CrashTest, WorkersKilledAtRandomMomentsLoseNoAcknowledgedTask) {
  FreshDatabase db;
  ClusterOptions options;
  options.gateway = false;
  options.heartbeat_ms = 200;
  options.liveness = 3;
  options.broker_args = {"--db", db.url()};
  Cluster cluster(options);
  std::vector<std::string> live = {"w1", "w2", "w3"};
  for (const std::string& n : live) {
    cluster.StartWorker(n, {"--service", "echo=builtin:echo", "--slots", "4"});
  }
  Submitter load(cluster.clients_endpoint(), "echo", EnvInt("RMA_CRASH_RATE", 800));
  load.Start();
  const int kills = EnvInt("RMA_CRASH_KILLS", 5);
  int replacements = 0;
  for (int k = 0; k < kills; ++k) {
    AfterMoreAcks(load, RandomAcks(), cluster);
    size_t pick = rng_() % live.size();
    const std::string victim = live[pick];
    cluster.worker(victim).Kill();
    ASSERT_TRUE(cluster.worker(victim).Wait(10s).has_value());
    // Half the time it comes back under the same identity at once (its leases are settled when
    // it registers), otherwise a new worker takes its place and the broker notices the loss by
    // the missed heartbeats.
    if (rng_() % 2 == 0) {
      cluster.StartWorker(victim, {"--service", "echo=builtin:echo", "--slots", "4"});
    } else {
      live[pick] = "r" + std::to_string(++replacements);
      cluster.StartWorker(live[pick], {"--service", "echo=builtin:echo", "--slots", "4"});
    }
  }
  AfterMoreAcks(load, 200, cluster);
  load.Stop();
  std::set<uint64_t> acked = load.acked();
  ASSERT_TRUE(AllCompleted(db.url(), acked, 60s)) << cluster.Logs();

  // Real workers log nothing per task we can count on, so the record says how often each task
  // was started (attempts) and how often its worker was lost while running it (requeues).
  std::map<uint64_t, TaskRow> rows = TaskRows(db.url());
  size_t restarted = 0;
  size_t extra_runs = 0;
  for (const auto& [id, row] : rows) {
    EXPECT_EQ(row.failures, 0) << id;
    if (row.attempts <= 1) continue;
    ++restarted;
    extra_runs += static_cast<size_t>(row.attempts - 1);
    EXPECT_GE(row.requeues, 1) << "task " << id << " started " << row.attempts
                               << " times without its worker being lost";
  }
  for (uint64_t id : acked) EXPECT_TRUE(rows[id].result_is_payload) << id;
  std::printf(
      "%d worker kills: %zu acknowledged tasks all completed; %zu tasks started more than "
      "once (%zu extra starts), each after its worker was lost while running it\n",
      kills, acked.size(), restarted, extra_runs);
  EXPECT_GT(acked.size(), 1000u);
}

TEST_F(CrashTest, DatabaseRestartedUnderLoadLosesNothingAndRunsNothingTwice) {
  PrivatePg pg;
  Cluster cluster(BrokerOnly(pg.url()));
  ExecutionLog log;
  std::vector<std::unique_ptr<FakeWorker>> workers = StartFakeWorkers(cluster, &log);
  Submitter load(cluster.clients_endpoint(), "echo", EnvInt("RMA_CRASH_RATE", 1500));
  load.Start();
  const int restarts = EnvInt("RMA_CRASH_KILLS", 3);
  for (int k = 0; k < restarts; ++k) {
    AfterMoreAcks(load, RandomAcks(), cluster);
    size_t refused = load.refused_count();
    pg.Stop();
    // New tasks are refused while the record is gone...
    ASSERT_TRUE(WaitUntil([&] { return load.refused_count() > refused + 50; }, 30s))
        << cluster.Logs();
    ASSERT_TRUE(pg.Start());
    // ...and accepted again once it is back.
    AfterMoreAcks(load, 100, cluster);
  }
  AfterMoreAcks(load, 200, cluster);
  load.Stop();
  std::set<uint64_t> acked = load.acked();
  ASSERT_TRUE(AllCompleted(pg.url(), acked, 60s)) << cluster.Logs();
  std::map<std::string, int> refusals = load.refusals();
  EXPECT_GT(refusals["unavailable"], 0);
  EXPECT_EQ(refusals.size(), 1u) << "only 'unavailable' refusals expected";
  // The broker never died and no worker was lost: nothing ran twice, nothing was lost in between.
  size_t executions = 0;
  for (const auto& [id, n] : log.Counts()) {
    EXPECT_EQ(n, 1) << "task " << id << " ran " << n << " times";
    executions += static_cast<size_t>(n);
  }
  std::map<uint64_t, TaskRow> rows = TaskRows(pg.url());
  for (uint64_t id : acked) EXPECT_TRUE(rows[id].result_is_payload) << id;
  std::printf(
      "%d database restarts: %zu acknowledged tasks all completed, %zu refused with "
      "'unavailable' meanwhile, %zu executions, none twice\n",
      restarts, acked.size(), static_cast<size_t>(refusals["unavailable"]), executions);
  EXPECT_GT(acked.size(), 500u);
}

}  // namespace
}  // namespace rma::testing
