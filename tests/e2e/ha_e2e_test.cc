// Broker high availability end to end (issue 18; docs/operations.md "High availability"), with real
// processes: three rma-broker --ha on one fresh PostgreSQL database, one rma-gateway and two
// rma-worker processes given all three endpoints (--broker A,B,C), and clients submitting durable
// tasks through the gateway without pause. Then, chosen by progress (after N more acknowledged
// tasks, never by sleeping):
//   - the leader is killed with SIGKILL, RMA_HA_KILLS times (default 5) in a row: each time a
//     standby takes over (the epoch grows), the pool serves again within the lease plus a few
//     seconds, and the killed broker comes back as a standby;
//   - the leader is stopped with SIGSTOP for RMA_HA_STOP_S seconds (default 30) and continued: a
//     standby takes over meanwhile, and the old leader steps down without taking the lease back;
//     tasks run again only as many as were in flight, not because of the returning leader.
// Afterwards, checked with SQL on the database: every task the gateway acknowledged (202)
// completed.
#include <gtest/gtest.h>

#include <csignal>
#include <set>

#include "tests/store/pg_env.h"
#include "tests/support/cluster.h"
#include "tests/support/http_load.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v == nullptr ? fallback : std::atoi(v);
}

constexpr int kBrokers = 3;
constexpr int kLeaseS = 3;
constexpr int kWorkerSlots = 8;
constexpr int kWorkers = 2;

class HaPool : public ::testing::Test {
 protected:
  void SetUp() override {
    RMA_REQUIRE_PG();
    db_ = std::make_unique<FreshDatabase>();
    dir_ = TempDir("rma-ha-e2e");
    for (int i = 0; i < kBrokers; ++i) StartBroker(i);
    ASSERT_TRUE(WaitUntil([&] { return Leader() >= 0; }, 30s)) << Logs();
  }

  void TearDown() override {
    for (Process& p : brokers_) p.Signal(SIGCONT);  // a stopped process cannot be killed cleanly
  }

  // Broker `i`, on the endpoints it had (or new ones the first time).
  void StartBroker(int i) {
    const std::string file = dir_ + "/broker" + std::to_string(i) + ".endpoints";
    std::remove(file.c_str());
    const bool again = !workers_[i].empty();
    std::vector<std::string> args = {"--db",
                                     db_->url(),
                                     "--ha",
                                     "--ha-lease-s",
                                     std::to_string(kLeaseS),
                                     "--workers",
                                     again ? workers_[i] : "tcp://127.0.0.1:*",
                                     "--clients",
                                     again ? clients_[i] : "tcp://127.0.0.1:*",
                                     "--endpoints-file",
                                     file,
                                     "--heartbeat-ms",
                                     "500",
                                     "--liveness",
                                     "3"};
    brokers_[i] = Process::Start(
        "rma-broker", args,
        dir_ + "/broker" + std::to_string(i) + "." + std::to_string(starts_[i]++) + ".log");
    const std::string endpoints = WaitForFile(file, 20s);
    ASSERT_FALSE(endpoints.empty()) << brokers_[i].Log();
    workers_[i] = endpoints.substr(0, endpoints.find('\n'));
    clients_[i] = endpoints.substr(endpoints.find('\n') + 1);
    while (!clients_[i].empty() && clients_[i].back() == '\n') clients_[i].pop_back();
  }

  std::string Sql(const std::string& query) { return QueryValue(db_->url(), query); }
  int64_t Epoch() { return std::stoll(Sql("SELECT epoch FROM broker_lease")); }

  // The broker holding a live lease (its pid is in the holder's name), or -1 (also before the
  // brokers made the schema).
  int Leader() {
    std::string holder;
    try {
      holder = Sql("SELECT holder FROM broker_lease WHERE expires_at > clock_timestamp()");
    } catch (const std::exception&) {
      return -1;
    }
    for (int i = 0; i < kBrokers; ++i) {
      if (holder.find(":" + std::to_string(brokers_[i].pid()) + ":") != std::string::npos) {
        return i;
      }
    }
    return -1;
  }

  std::string List(const std::string (&endpoints)[kBrokers]) {
    std::string out;
    for (const std::string& e : endpoints) out += (out.empty() ? "" : ",") + e;
    return out;
  }

  void StartPool() {
    for (int w = 0; w < kWorkers; ++w) {
      const std::string name = "w" + std::to_string(w);
      workers_p_[w] =
          Process::Start("rma-worker",
                         {"--broker", List(workers_), "--worker-id", name, "--name", name,
                          "--data-dir", dir_ + "/" + name, "--service", "echo=builtin:echo",
                          "--slots", std::to_string(kWorkerSlots), "--heartbeat-ms", "500"},
                         dir_ + "/worker-" + name + ".log");
    }
    gateway_ = Process::Start("rma-gateway",
                              {"--broker", List(clients_), "--listen", "127.0.0.1:0", "--port-file",
                               dir_ + "/gateway.port"},
                              dir_ + "/gateway.log");
    const std::string port = WaitForFile(dir_ + "/gateway.port", 20s);
    ASSERT_FALSE(port.empty()) << gateway_.Log();
    base_ = "http://127.0.0.1:" + std::to_string(std::stoi(port));
    ASSERT_TRUE(WaitUntil(
        [&] {
          HttpResponse r = HttpGet(base_ + "/api/admin/services", 2000);
          return r.status == 200 && r.body.find("\"echo\"") != std::string::npos;
        },
        30s))
        << Logs();
  }

  std::string Logs() {
    std::string out;
    for (int i = 0; i < kBrokers; ++i) {
      out += "---- broker " + std::to_string(i) + " (" + brokers_[i].log_path() + ")\n" +
             Tail(brokers_[i].Log());
    }
    for (Process& w : workers_p_) out += "---- " + w.log_path() + "\n" + Tail(w.Log());
    out += "---- gateway\n" + Tail(gateway_.Log());
    return out;
  }
  static std::string Tail(const std::string& log) {
    return log.size() > 4000 ? log.substr(log.size() - 4000) : log;
  }

  std::unique_ptr<FreshDatabase> db_;
  std::string dir_;
  Process brokers_[kBrokers];
  int starts_[kBrokers] = {};
  std::string workers_[kBrokers];
  std::string clients_[kBrokers];
  Process workers_p_[kWorkers];
  Process gateway_;
  std::string base_;
};

TEST_F(HaPool, KilledAndPausedLeadersAreReplacedWithoutLosingAnAcknowledgedTask) {
  StartPool();
  HttpLoad load(base_ + "/api/tasks", "", 4);
  ASSERT_TRUE(load.AfterMoreAcks(200, 60s)) << Logs();

  // kill -9 of the leader, again and again.
  const int kills = EnvInt("RMA_HA_KILLS", 5);
  std::vector<double> takeover_s;
  for (int k = 0; k < kills; ++k) {
    ASSERT_TRUE(load.AfterMoreAcks(150, 60s)) << Logs();
    const int leader = Leader();
    ASSERT_GE(leader, 0) << Logs();
    const int64_t epoch = Epoch();
    const size_t acked_at_kill = load.acked_count();
    const auto killed_at = SteadyClock::now();
    brokers_[leader].Kill();
    ASSERT_TRUE(brokers_[leader].Wait(10s).has_value());
    ASSERT_TRUE(WaitUntil([&] { return Epoch() > epoch; }, 30s)) << Logs();
    // Served again: tasks acknowledged after the kill (the ones in flight at the kill aside).
    ASSERT_TRUE(WaitUntil([&] { return load.acked_count() > acked_at_kill + 20; }, 30s)) << Logs();
    const double s = std::chrono::duration<double>(SteadyClock::now() - killed_at).count();
    takeover_s.push_back(s);
    EXPECT_LT(s, kLeaseS + 8) << "takeover " << k << " took " << s << " s";
    EXPECT_NE(Leader(), leader);
    StartBroker(leader);  // back, as a standby
  }

  // SIGSTOP of the leader: a standby takes over; the old leader, continued, steps down.
  ASSERT_TRUE(load.AfterMoreAcks(150, 60s)) << Logs();
  const int paused = Leader();
  ASSERT_GE(paused, 0);
  const int64_t paused_epoch = Epoch();
  const int64_t reruns_before = std::stoll(Sql("SELECT count(*) FROM tasks WHERE attempts > 1"));
  const auto stop_for = std::chrono::seconds(EnvInt("RMA_HA_STOP_S", 30));
  const auto stopped_at = SteadyClock::now();
  brokers_[paused].Signal(SIGSTOP);
  ASSERT_TRUE(WaitUntil([&] { return Epoch() > paused_epoch; }, 30s)) << Logs();
  const int64_t new_epoch = Epoch();
  const int new_leader = Leader();
  EXPECT_NE(new_leader, paused);
  ASSERT_TRUE(load.AfterMoreAcks(100, 30s)) << Logs();
  // The pause lasts its full length while the pool keeps serving (a duration of the scenario, not
  // a wait for something to happen).
  WaitUntil([&] { return SteadyClock::now() >= stopped_at + stop_for; }, stop_for + 1s);
  brokers_[paused].Signal(SIGCONT);
  const auto continued_at = SteadyClock::now();
  EXPECT_TRUE(WaitUntil(
      [&] {
        const std::string log = brokers_[paused].Log();
        return log.find("is over") != std::string::npos ||
               log.find("stepping down") != std::string::npos;
      },
      15s))
      << Logs();
  ASSERT_TRUE(load.AfterMoreAcks(100, 30s)) << Logs();
  // The old leader did not take the lease back, and the new one still leads.
  EXPECT_EQ(Epoch(), new_epoch);
  EXPECT_EQ(Leader(), new_leader);
  EXPECT_TRUE(brokers_[paused].running());
  std::printf("paused leader stepped down; %.1f s after SIGCONT the pool had served 100 more\n",
              std::chrono::duration<double>(SteadyClock::now() - continued_at).count());

  load.Stop();
  const std::set<std::string> acked = load.acked();
  // Tasks that ran again since the pause: at most those in flight on the workers when the leader
  // stopped; the returning leader dispatched nothing.
  const int64_t reruns_after = std::stoll(Sql("SELECT count(*) FROM tasks WHERE attempts > 1"));
  EXPECT_LE(reruns_after - reruns_before, kWorkers * kWorkerSlots);

  std::string progress;
  EXPECT_TRUE(WaitAllCompleted(db_->url(), acked, 90s, &progress)) << progress << "\n" << Logs();

  std::sort(takeover_s.begin(), takeover_s.end());
  std::string times;
  for (double s : takeover_s) times += (times.empty() ? "" : " ") + std::to_string(s).substr(0, 4);
  std::printf(
      "%d leader kills (takeover to serving again, s: %s), one %lld s pause: %zu acknowledged "
      "tasks all completed; %zu answered 503 and %zu with an unknown outcome while leaders "
      "changed; %lld ran more than once\n",
      kills, times.c_str(), static_cast<long long>(stop_for.count()), acked.size(),
      load.unavailable_count(), load.unknown_count(), static_cast<long long>(reruns_after));
}

}  // namespace
}  // namespace rma::testing
