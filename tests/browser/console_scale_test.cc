// The operator console on a large pool (issue 19; ctest label console_scale, not part of the normal
// run): a broker on PostgreSQL with 1,000 workers (a WorkerSwarm: one thread of this process
// speaking the worker protocol on 1,000 sockets) and 100,000 tasks plus a week of per-minute
// statistics in its history, written with generate_series straight into the schema's tables.
// tests/browser/console_scale.test.mjs then times every console page in Chromium from navigation to
// data shown, prints the figures (for docs/benchmarks.md) and fails when a page takes a second or
// more.
#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <thread>

#include "tests/store/pg_env.h"
#include "tests/support/cluster.h"
#include "tests/support/zmq_peers.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kWorkers = 1000;
constexpr int kTasks = 100000;
constexpr int kServices = 20;

using Steady = std::chrono::steady_clock;

// Many idle workers in one thread (a FakeWorker each would be a thread and a ZeroMQ context each:
// a thousand of them keep two cores busy and spoil the page timings). Every worker is a DEALER
// socket that sends READY, READY again when a DISCONNECT asks for it, and a HEARTBEAT every
// `heartbeat`; nothing is queued for their services, so no TASK comes. Ten workers share each
// loopback source address: the broker admits 20 READYs at once from one address, then 2/s.
class WorkerSwarm {
 public:
  WorkerSwarm(std::string endpoint, std::vector<std::pair<std::string, std::string>> workers,
              std::chrono::milliseconds heartbeat)
      : endpoint_(std::move(endpoint)), workers_(std::move(workers)), heartbeat_(heartbeat) {
    thread_ = std::thread([this] { Run(); });
  }
  ~WorkerSwarm() {
    stop_ = true;
    thread_.join();
  }

 private:
  void Run() {
    zmq::context_t context(1);
    std::vector<zmq::socket_t> sockets;
    const std::string target = endpoint_.substr(std::string("tcp://").size());
    for (size_t i = 0; i < workers_.size(); ++i) {
      sockets.emplace_back(context, zmq::socket_type::dealer);
      proto::ConfigureSocket(sockets.back(), proto::Limits{}, /*is_router=*/false);
      sockets.back().connect("tcp://127.0.1." + std::to_string(1 + i / 10) + ":0;" + target);
      SendReady(sockets.back(), workers_[i]);
    }
    std::vector<zmq::pollitem_t> items;
    for (zmq::socket_t& s : sockets) items.push_back({s.handle(), 0, ZMQ_POLLIN, 0});
    proto::Decoder decoder;
    proto::InMessage msg;
    Steady::time_point next_beat = Steady::now() + heartbeat_;
    while (!stop_) {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100));
      for (size_t i = 0; i < items.size(); ++i) {
        if ((items[i].revents & ZMQ_POLLIN) == 0) continue;
        for (;;) {
          auto got =
              proto::ReceiveMessage(sockets[i], /*has_identity=*/false, proto::Limits{}, &msg);
          if (!got.ok()) continue;
          if (!*got) break;
          proto::Disconnect d;
          if (msg.command() == proto::Command::kDisconnect && msg.body_count() > 0 &&
              decoder.Decode(msg.body(0), &d).ok() && d.reconnect) {
            SendReady(sockets[i], workers_[i]);
          }
        }
      }
      if (Steady::now() >= next_beat) {
        for (zmq::socket_t& s : sockets) {
          (void)proto::SendOne(s, {}, proto::Command::kHeartbeat, proto::Heartbeat{});
        }
        next_beat += heartbeat_;
      }
    }
    for (zmq::socket_t& s : sockets) s.set(zmq::sockopt::linger, 0);
  }

  static void SendReady(zmq::socket_t& socket, const std::pair<std::string, std::string>& w) {
    proto::Ready ready;
    ready.worker_id = w.first;
    ready.name = w.first;
    ready.agent_version = "swarm";
    ready.slots = 4;
    ready.capabilities.cpu_cores = 4;
    ready.capabilities.ram_gb = 8;
    ready.services.push_back({w.second, "builtin"});
    (void)proto::SendOne(socket, {}, proto::Command::kReady, ready);
  }

  std::string endpoint_;
  std::vector<std::pair<std::string, std::string>> workers_;  // id, service
  std::chrono::milliseconds heartbeat_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string Chromium() {
  const char* env = std::getenv("RMA_CHROMIUM");
  return env != nullptr && *env != '\0' ? env : "/usr/bin/chromium";
}

// The history's rows, in the schema of schemas/sql/ (columns added later keep their defaults).
constexpr const char* kTasksSql = R"sql(
INSERT INTO tasks (task_id, service, status, payload, content_type, max_attempts, timeout_ms, attempts,
                   worker_id, result, result_content_type, error, error_code, created_at, run_at,
                   started_at, completed_at, owner)
SELECT 1000000000000 + g, 'svc-' || lpad((g % {services})::text, 2, '0'),
       CASE WHEN g % 50 = 0 THEN 'dead' ELSE 'completed' END,
       convert_to('{"n":' || g || '}', 'UTF8'), 'application/json', 3, 60000,
       CASE WHEN g % 50 = 0 THEN 3 ELSE 1 END, 'fw-' || lpad((g % {workers})::text, 4, '0'),
       CASE WHEN g % 50 = 0 THEN NULL ELSE convert_to('{"ok":true}', 'UTF8') END, 'application/json',
       CASE WHEN g % 50 = 0 THEN 'handler failed' END, CASE WHEN g % 50 = 0 THEN 'handler_error' END,
       now() - g * interval '6 seconds', now() - g * interval '6 seconds',
       now() - g * interval '6 seconds' + interval '10 ms',
       now() - g * interval '6 seconds' + interval '50 ms', ''
FROM generate_series(1, {tasks}) g
)sql";

constexpr const char* kStatsSql = R"sql(
INSERT INTO service_stats_minute (minute, service, submitted, completed, failed, dead,
                                  queue_wait_samples, queue_wait_p50_ms, queue_wait_p99_ms,
                                  run_time_samples, run_time_p50_ms, run_time_p99_ms)
SELECT date_trunc('minute', now()) - m * interval '1 minute', 'svc-' || lpad(s::text, 2, '0'),
       10, 9, 1, 0, 9, 5, 20, 9, 40, 90
FROM generate_series(1, 7 * 1440) m, generate_series(0, {services} - 1) s
ON CONFLICT DO NOTHING
)sql";

std::string Fill(std::string sql) {
  for (const auto& [name, value] : {std::pair<std::string, int>{"{services}", kServices},
                                    {"{workers}", kWorkers},
                                    {"{tasks}", kTasks}}) {
    for (size_t at = sql.find(name); at != std::string::npos; at = sql.find(name, at)) {
      sql.replace(at, name.size(), std::to_string(value));
    }
  }
  return sql;
}

std::string ServiceName(int i) {
  std::string n = std::to_string(i % kServices);
  return "svc-" + std::string(2 - n.size(), '0') + n;
}

std::string WorkerId(int i) {
  std::string n = std::to_string(i);
  return "fw-" + std::string(4 - n.size(), '0') + n;
}

TEST(ConsoleScaleTest, EveryPageLoadsInUnderASecondWithAThousandWorkersAndAHundredThousandTasks) {
  RMA_REQUIRE_PG();
  FreshDatabase db;
  ClusterOptions options;
  options.heartbeat_ms = 2000;
  options.broker_args = {"--db", db.url()};
  Cluster cluster(options);

  // History first (the broker has made the schema): 100,000 tasks over the last week, one in fifty
  // dead, spread over the services and workers; and every service's per-minute statistics.
  QueryValue(db.url(), Fill(kTasksSql));
  QueryValue(db.url(), Fill(kStatsSql));
  QueryValue(db.url(), "ANALYZE");
  ASSERT_EQ(QueryValue(db.url(), "SELECT count(*) FROM tasks"), std::to_string(kTasks));

  std::vector<std::pair<std::string, std::string>> ids;
  for (int i = 0; i < kWorkers; ++i) ids.emplace_back(WorkerId(i), ServiceName(i));
  WorkerSwarm swarm(cluster.workers_endpoint(), ids, 2000ms);
  ASSERT_TRUE(WaitUntil(
      [&] {
        json stats = HttpGet(cluster.Url("/api/admin/stats"), 5000).Json();
        return stats.is_object() && stats["workers"].value("live", 0) == kWorkers;
      },
      120s))
      << HttpGet(cluster.Url("/api/admin/stats")).body;

  json config = {{"url", cluster.Url("")},
                 {"chromium", Chromium()},
                 {"artifacts", std::string(RMA_BROWSER_ARTIFACTS_DIR) + "/console-scale"},
                 {"workers", kWorkers},
                 {"tasks", kTasks},
                 {"task_id", std::to_string(1000000000000LL + 4242)},
                 {"worker_id", WorkerId(500)},
                 {"service", "svc-07"},
                 {"limit_ms", 1000}};
  Process node = Process::Start(RMA_NODE_EXECUTABLE, {RMA_CONSOLE_SCALE_TEST_SCRIPT, config.dump()},
                                cluster.dir() + "/console-scale-test.log");
  std::optional<int> exit_code = node.Wait(300s);
  if (!exit_code) node.Kill();
  std::string output = node.Log();
  std::cout << output << std::endl;
  EXPECT_EQ(exit_code, std::optional<int>(0)) << output;
}

}  // namespace
}  // namespace rma::testing
