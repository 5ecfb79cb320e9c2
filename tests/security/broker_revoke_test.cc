// Revoking a worker's key (issue 13): a real rma-broker with CURVE and --worker-keys-file, two real
// rma-workers with their own keys. Removing one key from the list and sending the broker SIGHUP
// disconnects that worker within a second (it exits: the broker told it not to come back), its task
// runs on the other worker, and the revoked worker cannot register again. Without the rule (a
// broker that only checks keys at the handshake) the revoked worker keeps its connection, its
// lease and its place in the pool.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>

#include "tests/security/broker_attack.h"

namespace rma::testing::broker_attack {
namespace {

// `rma-broker keygen DIR --name NAME`; the public key.
std::string Keygen(const std::string& dir, const std::string& name) {
  Process p =
      Process::Start("rma-broker", {"keygen", dir, "--name", name}, dir + "-" + name + ".log");
  EXPECT_EQ(p.Wait(10s), 0) << p.Log();
  std::string key = ReadFile(dir + "/" + name + ".pub");
  while (!key.empty() && (key.back() == '\n' || key.back() == ' ')) key.pop_back();
  return key;
}

// A worker whose key was made beforehand (rma-worker keeps the worker.key of its data directory).
Process StartWorker(const std::string& base, const std::string& name, const std::string& endpoint,
                    const std::string& broker_pub) {
  return Process::Start("rma-worker",
                        {"--broker", endpoint, "--broker-key", broker_pub, "--data-dir",
                         base + "/" + name, "--worker-id", name, "--name", name, "--service",
                         "slow=builtin:sleep", "--heartbeat-ms", "200"},
                        base + "/" + name + ".log");
}

bool Listed(Client& client, const std::string& worker_id) {
  json doc = client.Admin("workers");
  if (!doc.is_object()) return false;
  for (const json& w : doc["workers"]) {
    if (w.value("worker_id", "") == worker_id && w.value("status", "") != "offline") return true;
  }
  return false;
}

TEST(BrokerRevokeAttack, ARevokedWorkerKeyIsDisconnectedWithinASecondAndCannotComeBack) {
  const std::string base = TempDir("rma-revoke");
  const std::string broker_pub = Keygen(base + "/broker", "broker");
  const std::string key_a = Keygen(base + "/a", "worker");
  const std::string key_b = Keygen(base + "/b", "worker");
  ASSERT_FALSE(broker_pub.empty() || key_a.empty() || key_b.empty());
  const std::string list = base + "/workers.keys";
  std::ofstream(list) << "# the pool's volunteers\n" << key_a << " a\n" << key_b << " b\n";

  BrokerFlags flags;
  flags.extra = {"--curve-secret-file", base + "/broker/broker.key", "--worker-keys-file", list};
  START_BROKER_OR_FAIL(broker, flags);
  Client client(broker.clients_endpoint());
  Process a = StartWorker(base, "a", broker.workers_endpoint(), base + "/broker/broker.pub");
  ASSERT_TRUE(WaitUntil([&] { return Listed(client, "a"); }, 20s)) << a.Log();
  // A long task on a, then b joins.
  auto id = client.Submit("slow", "60000");
  ASSERT_TRUE(id);
  ASSERT_TRUE(client.WaitForStatus(*id, proto::TaskStatus::kRunning, 10s));
  Process b = StartWorker(base, "b", broker.workers_endpoint(), base + "/broker/broker.pub");
  ASSERT_TRUE(WaitUntil([&] { return Listed(client, "b"); }, 20s)) << b.Log();

  // Revoke a: its line goes, the broker reads the list again.
  std::ofstream(list, std::ios::trunc) << key_b << " b\n";
  const auto revoked_at = Steady::now();
  broker.process().Signal(SIGHUP);
  ASSERT_TRUE(WaitUntil([&] { return !Listed(client, "a"); }, 5s))
      << "the revoked worker is still registered\n"
      << broker.Log();
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - revoked_at);
  std::printf("revoked worker gone from the pool after %lld ms\n",
              static_cast<long long>(took.count()));
  EXPECT_LT(took.count(), 1000) << "revocation must take effect within 1 s";
  // The worker was told not to come back: it exits on its own with the refusal code.
  auto code = a.Wait(10s);
  EXPECT_EQ(code, 3) << a.Log();
  EXPECT_NE(a.Log().find("no longer admitted"), std::string::npos) << a.Log();
  // Its task runs on b.
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto v = client.Get(*id);
        return v && v->status == proto::TaskStatus::kRunning && v->worker_id == "b";
      },
      10s));
  // And it cannot come back: a new process with the same key is refused at the handshake.
  Process again = StartWorker(base, "a", broker.workers_endpoint(), base + "/broker/broker.pub");
  EXPECT_EQ(again.Wait(20s), 3) << again.Log();
  EXPECT_NE(again.Log().find("refused this worker's key"), std::string::npos) << again.Log();
  EXPECT_FALSE(Listed(client, "a"));
  b.Kill();
  b.Wait(10s);
}

}  // namespace
}  // namespace rma::testing::broker_attack
