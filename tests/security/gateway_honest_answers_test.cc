// Attack 5 of issue 12 (a fault more than an attack, with the same cost): dishonest 503s. A client
// that is told 503 (Service Unavailable) retries, and is right to: 503 says nothing was done. But
// the gateway said 503 for submissions it had already handed to a broker that then stopped
// answering, and for submissions its socket had queued for a broker that was not there (delivered
// once the broker came back) — so the retry created a second task. Now a request that provably
// never left the gateway gets 503; one that did and got no answer gets 504 with
// "outcome_unknown": true. The checks here use idempotency keys: after the broker is back, the same
// key submitted again must not find a task for any submission that was answered 503.
#include <gtest/gtest.h>
#include <signal.h>

#include "tests/security/gateway_attack.h"

namespace rma::testing {
namespace {

using namespace attack;

struct Attempt {
  std::string key;
  long status = 0;
  std::string body;
};

Attempt SubmitWithKey(const Cluster& c, const std::string& key) {
  const json body = {{"service", "echo"}, {"payload", key}, {"idempotency_key", key}};
  HttpResponse r = HttpCall("POST", c.Url("/api/tasks"), body.dump(), {kJson}, 60000);
  return Attempt{key, r.status, r.body};
}

// After the broker is back: every submission answered 503 must have left no task behind.
void ExpectNo503LeftATask(const Cluster& c, const std::vector<Attempt>& attempts) {
  size_t checked = 0;
  for (const Attempt& a : attempts) {
    ASSERT_TRUE(a.status == 503 || a.status == 504 || a.status == 202)
        << a.key << ": " << a.status << " " << a.body;
    if (a.status == 504) {
      EXPECT_TRUE(json::parse(a.body).value("outcome_unknown", false)) << a.body;
    }
    if (a.status != 503) continue;
    ++checked;
    const json body = {{"service", "echo"}, {"payload", a.key}, {"idempotency_key", a.key}};
    // What a client does with a 503: retry (until the gateway is connected again).
    HttpResponse again;
    ASSERT_TRUE(WaitUntil(
        [&] {
          again = HttpCall("POST", c.Url("/api/tasks"), body.dump(), {kJson}, 30000);
          return again.status != 503;
        },
        30s));
    ASSERT_EQ(again.status, 202) << again.body;
    EXPECT_FALSE(again.Json().value("duplicate", false))
        << a.key << " was answered 503, yet the broker had accepted it: a retry found that task\n"
        << a.body;
  }
  EXPECT_GT(checked, 0u) << "no submission was answered 503: nothing was checked";
}

bool BrokerReachable(const Cluster& c) {
  return HttpGet(c.Url("/health"), 2000).Json().value("broker", "") == "reachable";
}

TEST(GatewayHonestAnswersTest, ABrokerThatStopsAnsweringGets504NotA503ThatInvitesDuplicates) {
  Cluster cluster;
  cluster.StartWorker("w", {"--service", "echo=builtin:echo"});
  ASSERT_TRUE(WaitForService(cluster, "echo")) << cluster.Logs();
  // The broker hangs (SIGSTOP): its socket still takes bytes, it answers nothing.
  cluster.broker().Signal(SIGSTOP);
  std::vector<Attempt> attempts;
  attempts.push_back(SubmitWithKey(cluster, "while-hung-1"));  // sent, then the broker is lost
  ASSERT_TRUE(WaitUntil([&] { return !BrokerReachable(cluster); }, 30s));
  attempts.push_back(SubmitWithKey(cluster, "after-lost-1"));  // never sent
  attempts.push_back(SubmitWithKey(cluster, "after-lost-2"));
  EXPECT_NE(attempts[0].status, 503) << "sent to the broker, then told 503: " << attempts[0].body;
  cluster.broker().Signal(SIGCONT);
  ASSERT_TRUE(WaitUntil([&] { return BrokerReachable(cluster); }, 30s)) << cluster.Logs();
  ExpectNo503LeftATask(cluster, attempts);
}

TEST(GatewayHonestAnswersTest, ASubmissionToAKilledBrokerAnswered503NeverRunsLater) {
  Cluster cluster;
  cluster.StartWorker("w", {"--service", "echo=builtin:echo"});
  ASSERT_TRUE(WaitForService(cluster, "echo")) << cluster.Logs();
  cluster.broker().Kill();
  ASSERT_TRUE(cluster.broker().Wait(20s));
  std::vector<Attempt> attempts;
  for (int i = 0; i < 3; ++i)
    attempts.push_back(SubmitWithKey(cluster, "killed-" + std::to_string(i)));
  // The broker comes back on the same endpoints: whatever the gateway's socket kept for it would be
  // delivered now.
  cluster.RestartBroker(/*kill=*/true);
  ASSERT_TRUE(WaitUntil([&] { return BrokerReachable(cluster); }, 30s)) << cluster.Logs();
  ExpectNo503LeftATask(cluster, attempts);
}

}  // namespace
}  // namespace rma::testing
