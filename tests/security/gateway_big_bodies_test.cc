// Attack 6 of issue 12: big bodies. Eight concurrent 13 MiB submissions pushed the gateway to
// 701 MiB and held /health for 9–11 s: each body was copied several times inside Pistache's parser
// and then parsed into a JSON document (ten times its size) on a reactor thread, stalling every
// connection that thread served. Now the gateway frames bodies itself (one copy, its own size),
// parses large submissions without a document on a small pool off the reactor threads, and holds
// at most --large-body-budget-bytes of large bodies at once (more get 503 busy + Retry-After before
// their bodies are read).
//
// Measured here while the bodies travel: every /health answer, polled on fresh connections, and the
// gateway's peak resident memory (VmHWM). The bounds and why:
// - /health p99 under 100 ms: it is answered on a reactor thread, which now only copies bytes.
// - VmHWM under 300 MiB: the default budget (128 MiB) holds the bodies being received, parsed and
//   sent; on top of it, an encoded copy per thread that encodes (two pool threads, two reactors:
//   4 x 13 MiB), the answers of service calls (up to 8 x 13 MiB being written back), and the
//   process's own ~20 MiB.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "tests/security/gateway_attack.h"

namespace rma::testing {
namespace {

using namespace attack;

constexpr size_t kBodyBytes = 13u << 20;
constexpr int kClients = 8;
constexpr double kHealthP99Ms = 100;
constexpr size_t kMaxPeakRss = 300u << 20;

struct HealthProbe {
  std::atomic<bool> stop{false};
  std::vector<double> latencies_ms;
  size_t failures = 0;
  std::thread thread;

  void Start(const std::string& url) {
    thread = std::thread([this, url] {
      while (!stop.load()) {
        const auto start = std::chrono::steady_clock::now();
        HttpResponse r = HttpGet(url, 15000);
        const std::chrono::duration<double, std::milli> took =
            std::chrono::steady_clock::now() - start;
        latencies_ms.push_back(took.count());
        if (r.status != 200) ++failures;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a poller's pace, not a sync
      }
    });
  }
  void Stop() {
    stop.store(true);
    if (thread.joinable()) thread.join();
  }
};

// Sends `make(i)` from kClients threads at once; a 503 busy is retried as its Retry-After says.
std::vector<long> SendConcurrently(const std::function<HttpResponse(int)>& send) {
  std::vector<long> statuses(kClients, 0);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      for (int attempt = 0; attempt < 60; ++attempt) {
        HttpResponse r = send(i);
        statuses[i] = r.status;
        if (r.status != 503 || CodeOf(r) != "busy") break;
        std::this_thread::sleep_for(std::chrono::seconds(1));  // Retry-After: 1
      }
    });
  }
  for (std::thread& t : clients) t.join();
  return statuses;
}

void Report(const std::string& what, const HealthProbe& probe, size_t peak) {
  std::printf("%s: /health n=%zu p50=%.1f ms p99=%.1f ms max=%.1f ms; gateway VmHWM %.1f MiB\n",
              what.c_str(), probe.latencies_ms.size(), Percentile(probe.latencies_ms, 50),
              Percentile(probe.latencies_ms, 99), Percentile(probe.latencies_ms, 100),
              static_cast<double>(peak) / (1 << 20));
  ::testing::Test::RecordProperty(what + "_health_p99_ms",
                                  std::to_string(Percentile(probe.latencies_ms, 99)));
  ::testing::Test::RecordProperty(what + "_vmhwm_mib", std::to_string(peak >> 20));
}

TEST(GatewayBigBodiesTest, EightConcurrent13MiBSubmissionsNeitherStallNorBloatTheGateway) {
  Cluster cluster;  // nobody provides "bulk": the tasks are accepted and wait
  // A 13 MiB JSON payload of many small values, the shape that made documents expensive.
  std::string payload = "[";
  while (payload.size() < kBodyBytes - 64) payload += "{\"k\":12345,\"v\":\"abcdefgh\"},";
  payload.back() = ']';
  const std::string body = R"({"service": "bulk", "payload": )" + payload + "}";
  HealthProbe probe;
  probe.Start(cluster.Url("/health"));
  std::vector<long> statuses = SendConcurrently(
      [&](int) { return HttpCall("POST", cluster.Url("/api/tasks"), body, {kJson}, 120000); });
  probe.Stop();
  const size_t peak = PeakRssBytes(cluster.gateway().pid());
  Report("submit", probe, peak);
  for (long s : statuses) EXPECT_EQ(s, 202);
  EXPECT_EQ(probe.failures, 0u);
  ASSERT_FALSE(probe.latencies_ms.empty());
  EXPECT_FIGURE_LT(Percentile(probe.latencies_ms, 99), kHealthP99Ms);
  EXPECT_FIGURE_LT(peak, kMaxPeakRss);
  EXPECT_GT(probe.latencies_ms.size(), 10u) << "few /health answers: it stalled";
  // The payload a worker would get is the client's JSON value.
  json tasks = ListTasks(cluster);
  EXPECT_EQ(tasks.size(), static_cast<size_t>(kClients));
}

TEST(GatewayBigBodiesTest, EightConcurrent13MiBServiceCallsNeitherStallNorBloatTheGateway) {
  // Liveness counts whole messages, and 8 x 13 MiB each way share the broker-worker link: on a
  // loaded 2-core machine a heartbeat queued behind them arrived later than the test cluster's
  // 600 ms deadline and the worker reconnected (docs/operations.md). This test is about the
  // gateway, so its deadline is 3 s.
  ClusterOptions options;
  options.liveness = 15;
  Cluster cluster(options);
  cluster.StartWorker("w", {"--service", "echo=builtin:echo", "--slots", "8"});
  ASSERT_TRUE(WaitForService(cluster, "echo")) << cluster.Logs();
  const std::string body(kBodyBytes, 'b');
  HealthProbe probe;
  probe.Start(cluster.Url("/health"));
  std::vector<size_t> answered(kClients, 0);
  std::vector<std::string> refusals(kClients);
  std::vector<long> statuses = SendConcurrently([&](int i) {
    HttpResponse r =
        HttpCall("POST", cluster.Url("/api/service/echo"), body,
                 {"Content-Type: application/octet-stream", "X-RMA-Timeout: 120"}, 180000);
    answered[i] = r.body.size();
    if (r.status != 200) refusals[i] = r.body.substr(0, 500);
    return r;
  });
  probe.Stop();
  const size_t peak = PeakRssBytes(cluster.gateway().pid());
  Report("call", probe, peak);
  bool all_answered = true;
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(statuses[i], 200) << refusals[i];
    EXPECT_EQ(answered[i], kBodyBytes);
    all_answered = all_answered && statuses[i] == 200;
  }
  if (!all_answered) ADD_FAILURE() << cluster.Logs();
  EXPECT_EQ(probe.failures, 0u);
  ASSERT_FALSE(probe.latencies_ms.empty());
  EXPECT_FIGURE_LT(Percentile(probe.latencies_ms, 99), kHealthP99Ms);
  EXPECT_FIGURE_LT(peak, kMaxPeakRss);
  EXPECT_GT(probe.latencies_ms.size(), 10u) << "few /health answers: it stalled";
}

}  // namespace
}  // namespace rma::testing
