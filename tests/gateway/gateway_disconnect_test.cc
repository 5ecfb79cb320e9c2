// Clients that vanish while their call waits. A thousand clients send synchronous calls and
// long-polls and reset or close their connection at random moments around the time the answer
// comes (some with answers too large for the socket buffer, so they are finished by the writer
// thread); meanwhile other clients keep opening fresh connections — taking the descriptor numbers
// the vanished ones free — and check that every answer they get carries their own unique token.
// The gateway must stay up, answer everyone who stayed, never hand one client's answer to another,
// and (under ASan, scripts/test.sh with RMA_SANITIZE=asan) exit cleanly.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "tests/gateway/raw_http.h"
#include "tests/support/cluster.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kVanishing = 1000;
constexpr int kVanishThreads = 8;
constexpr int kVerifyThreads = 4;

TEST(GatewayDisconnectTest, VanishingClientsNeverCrashTheGatewayOrReceiveOthersAnswers) {
  ClusterOptions options;
  options.log_level = "warn";
  options.gateway_args = {"--threads", "2"};
  Cluster cluster(options);
  cluster.StartWorker(
      "w", {"--service", "echo=builtin:echo", "--service", "sleep=builtin:sleep", "--slots", "64"});
  ASSERT_TRUE(cluster.WaitForLiveWorkers(1, 20s, "sleep")) << cluster.Logs();
  const int port = cluster.http_port();

  std::atomic<bool> done{false};
  std::atomic<int> vanished{0};
  std::atomic<int> vanished_answered{0};
  std::atomic<int> verified{0};
  std::atomic<int> crossed{0};
  std::atomic<int> unanswered{0};
  std::mutex failures_mu;
  std::vector<std::string> failures;
  auto fail = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(failures_mu);
    if (failures.size() < 20) failures.push_back(what);
  };

  // Clients that stay: fresh connections, two calls each (a synchronous echo and a long-poll of
  // their own task), every answer checked against the token it must carry.
  auto verifier = [&](int index) {
    int n = 0;
    while (!done.load()) {
      RawConnection c(port);
      if (c.fd() < 0) continue;
      const std::string token = "token-" + std::to_string(index) + "-" + std::to_string(n++);
      c.Send(RawRequest("POST", "/api/service/echo", "Content-Type: text/plain\r\n", token));
      auto echo = c.Read(30s);
      if (!echo) {
        ++unanswered;
        fail("no answer for " + token);
        continue;
      }
      if (echo->status != 200 || echo->body != token) {
        ++crossed;
        fail("sent " + token + ", got " + std::to_string(echo->status) + " " + echo->body);
        continue;
      }
      const std::string task_body = json{{"service", "sleep"}, {"payload", n % 5}}.dump();
      c.Send(RawRequest("POST", "/api/tasks", "Content-Type: application/json\r\n", task_body));
      auto accepted = c.Read(30s);
      if (!accepted || accepted->status != 202) {
        ++crossed;
        fail("submit of " + token + " answered " + (accepted ? accepted->body : "nothing"));
        continue;
      }
      const std::string id = json::parse(accepted->body)["task_id"];
      c.Send(RawRequest("GET", "/api/tasks/" + id + "?wait=10"));
      auto task = c.Read(30s);
      json t = task ? json::parse(task->body, nullptr, false) : json();
      if (!task || task->status != 200 || !t.is_object() || t.value("task_id", "") != id) {
        ++crossed;
        fail("long-poll of " + id + " answered " + (task ? task->body : "nothing"));
        continue;
      }
      if (!c.buffered().empty()) {
        ++crossed;
        fail("unexpected bytes after the answers of " + token + ": " + c.buffered());
        continue;
      }
      ++verified;
    }
  };

  // Clients that vanish: a call whose answer comes within a few milliseconds, then a reset (or a
  // plain close) after a random wait for it.
  auto vanisher = [&](int index) {
    std::mt19937 rng(static_cast<unsigned>(index * 7919));
    for (int i = 0; i < kVanishing / kVanishThreads; ++i) {
      RawConnection c(port);
      if (c.fd() < 0) {
        fail("cannot connect");
        continue;
      }
      const int kind = static_cast<int>(rng() % 10);
      const int answer_ms = static_cast<int>(rng() % 15);
      if (kind == 0) {
        // An answer too large for the socket buffers: finished by the writer thread, or dropped.
        c.Send(RawRequest("POST", "/api/service/echo", "Content-Type: text/plain\r\n",
                          std::string(512 << 10, 'v')));
      } else if (kind <= 3) {
        json body = {{"service", "sleep"}, {"payload", answer_ms}};
        c.Send(RawRequest("POST", "/api/tasks", "Content-Type: application/json\r\n", body.dump()));
        auto accepted = c.Read(30s);
        if (!accepted || accepted->status != 202) {
          fail("vanisher submit failed");
          continue;
        }
        c.Send(RawRequest(
            "GET",
            "/api/tasks/" + json::parse(accepted->body)["task_id"].get<std::string>() + "?wait=5"));
      } else {
        c.Send(RawRequest("POST", "/api/service/sleep", "", std::to_string(answer_ms)));
      }
      // Wait a random time for the answer (a client with a short timeout), then vanish.
      if (c.Read(std::chrono::milliseconds(rng() % 20))) ++vanished_answered;
      if (rng() % 4 == 0) {
        c.Close();
      } else {
        c.Abort();
      }
      ++vanished;
    }
  };

  std::vector<std::thread> threads;
  threads.reserve(kVerifyThreads);
  for (int i = 0; i < kVerifyThreads; ++i) threads.emplace_back(verifier, i);
  std::vector<std::thread> vanishers;
  vanishers.reserve(kVanishThreads);
  for (int i = 0; i < kVanishThreads; ++i) vanishers.emplace_back(vanisher, i);
  for (auto& t : vanishers) t.join();
  done.store(true);
  for (auto& t : threads) t.join();

  {
    std::lock_guard<std::mutex> lock(failures_mu);
    for (const std::string& f : failures) ADD_FAILURE() << f;
  }
  EXPECT_EQ(vanished.load(), kVanishing);
  EXPECT_EQ(crossed.load(), 0) << "a client received an answer that was not its own";
  EXPECT_EQ(unanswered.load(), 0);
  EXPECT_GT(verified.load(), 20);
  std::printf("vanished %d (%d had their answer first), verified %d\n", vanished.load(),
              vanished_answered.load(), verified.load());

  // Still up and answering, with nothing left waiting once the vanished calls have ended.
  ASSERT_TRUE(cluster.gateway().running()) << cluster.gateway().Log();
  HttpResponse health = HttpGet(cluster.Url("/health"));
  EXPECT_EQ(health.status, 200);
  EXPECT_TRUE(WaitUntil(
      [&] {
        json h = HttpGet(cluster.Url("/health")).Json();
        return h.value("pending_requests", -1) == 0 && h.value("pending_writes", -1) == 0;
      },
      30s))
      << HttpGet(cluster.Url("/health")).body;

  // A clean exit: under ASan any error or leak makes the exit code non-zero.
  cluster.gateway().Signal(SIGTERM);
  EXPECT_EQ(cluster.gateway().Wait(60s), 0) << cluster.gateway().Log();
  const std::string log = cluster.gateway().Log();
  EXPECT_EQ(log.find("AddressSanitizer"), std::string::npos) << log;
  EXPECT_EQ(log.find("runtime error"), std::string::npos) << log;
}

}  // namespace
}  // namespace rma::testing
