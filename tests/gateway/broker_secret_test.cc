// A broker whose client endpoint requires a secret (--client-secret-file) or a listed CURVE key
// (--client-keys-file): a gateway with the secret (--broker-secret-file) or a listed key
// (--broker-key, --curve-secret-file) serves; one with a wrong secret, none, or an unlisted key is
// refused at the handshake, says why in its log once, and answers /health 503 instead of
// pretending. Real rma-broker and rma-gateway processes.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <csignal>
#include <fstream>
#include <string>

#include "tests/support/cluster.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;

std::string SecretFile(const std::string& dir, const std::string& name, const std::string& secret) {
  const std::string path = dir + "/" + name;
  std::ofstream(path) << secret << "\n";
  chmod(path.c_str(), 0600);
  return path;
}

// Starts another gateway on `cluster`'s broker with `args`; returns it once its port is known.
Process StartGateway(Cluster& cluster, const std::string& name, std::vector<std::string> args,
                     int* port) {
  const std::string port_file = cluster.dir() + "/" + name + ".port";
  std::vector<std::string> all = {
      "--broker", cluster.clients_endpoint(), "--listen", "127.0.0.1:0", "--port-file", port_file};
  all.insert(all.end(), args.begin(), args.end());
  Process p = Process::Start("rma-gateway", all, cluster.dir() + "/" + name + ".log");
  const std::string text = WaitForFile(port_file, 20s);
  *port = text.empty() ? 0 : std::stoi(text);
  return p;
}

TEST(BrokerSecretTest, OnlyAGatewayWithTheSecretIsServed) {
  const std::string dir = TempDir("rma-secret");
  const std::string right = SecretFile(dir, "right", "the-client-secret-0123456789");
  const std::string wrong = SecretFile(dir, "wrong", "not-the-secret");
  ClusterOptions options;
  options.broker_args = {"--client-secret-file", right};
  options.gateway_args = {"--broker-secret-file", right};
  Cluster cluster(options);  // waits for the gateway's /health to be 200

  HttpResponse submitted =
      HttpCall("POST", cluster.Url("/api/tasks"), R"({"service":"echo","payload":1})",
               {"Content-Type: application/json"});
  EXPECT_EQ(submitted.status, 202) << submitted.body << cluster.Logs();

  int wrong_port = 0;
  Process with_wrong =
      StartGateway(cluster, "wrong-gw", {"--broker-secret-file", wrong}, &wrong_port);
  ASSERT_NE(wrong_port, 0) << with_wrong.Log();
  EXPECT_TRUE(WaitUntil(
      [&] {
        return with_wrong.Log().find("refused this gateway's client secret") != std::string::npos;
      },
      20s))
      << with_wrong.Log();
  const std::string url = "http://127.0.0.1:" + std::to_string(wrong_port);
  EXPECT_EQ(HttpGet(url + "/health", 5000).status, 503);
  HttpResponse refused = HttpCall("POST", url + "/api/tasks", R"({"service":"echo","payload":2})",
                                  {"Content-Type: application/json"});
  EXPECT_EQ(refused.status, 503) << refused.body;

  int none_port = 0;
  Process without = StartGateway(cluster, "no-secret-gw", {}, &none_port);
  ASSERT_NE(none_port, 0) << without.Log();
  EXPECT_TRUE(WaitUntil(
      [&] { return without.Log().find("it wants a client secret") != std::string::npos; }, 20s))
      << without.Log();
  EXPECT_EQ(HttpGet("http://127.0.0.1:" + std::to_string(none_port) + "/health", 5000).status, 503);
  with_wrong.Kill();
  without.Kill();
}

std::string ReadKey(const std::string& path) {
  std::string key = ReadFile(path);
  while (!key.empty() && (key.back() == '\n' || key.back() == ' ')) key.pop_back();
  return key;
}

// The same over CurveZMQ: the broker admits the gateway keys of --client-keys-file. A gateway with
// a listed key serves; one with another key is refused at the handshake, says so once (naming its
// key and the list), answers /health 503, and is served once its key is listed and the broker has
// read the list again (SIGHUP), without a restart.
TEST(BrokerSecretTest, OnlyAGatewayWhoseKeyIsListedIsServedOverCurve) {
  const std::string dir = TempDir("rma-curve-gw");
  for (const char* name : {"broker", "gw"}) {
    Process keygen = Process::Start("rma-broker", {"keygen", dir, "--name", name},
                                    dir + "/keygen-" + name + ".log");
    ASSERT_EQ(keygen.Wait(10s), 0) << keygen.Log();
  }
  const std::string list = dir + "/clients.keys";
  std::ofstream(list) << "# gateways\n" << ReadKey(dir + "/gw.pub") << " gw\n";
  ClusterOptions options;
  options.broker_args = {"--curve-secret-file", dir + "/broker.key", "--client-keys-file", list};
  options.gateway_args = {"--broker-key", dir + "/broker.pub", "--curve-secret-file",
                          dir + "/gw.key"};
  Cluster cluster(options);  // waits for the gateway's /health to be 200
  HttpResponse submitted =
      HttpCall("POST", cluster.Url("/api/tasks"), R"({"service":"echo","payload":1})",
               {"Content-Type: application/json"});
  EXPECT_EQ(submitted.status, 202) << submitted.body << cluster.Logs();

  // A gateway whose key (made on its first start) is not listed.
  int port = 0;
  Process other = StartGateway(
      cluster, "other-gw",
      {"--broker-key", dir + "/broker.pub", "--curve-secret-file", dir + "/other/gw.key"}, &port);
  ASSERT_NE(port, 0) << other.Log();
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  EXPECT_TRUE(WaitUntil(
      [&] { return other.Log().find("refused this gateway's key") != std::string::npos; }, 20s))
      << other.Log();
  EXPECT_NE(other.Log().find("--client-keys-file"), std::string::npos) << other.Log();
  EXPECT_EQ(HttpGet(url + "/health", 5000).status, 503);

  // Listed, and the broker told to read the list again: the gateway tries a new connection a few
  // seconds after a refusal (ZeroMQ would not), and gets in.
  std::ofstream(list, std::ios::app) << ReadKey(dir + "/other/gw.key.pub") << " other\n";
  cluster.broker().Signal(SIGHUP);
  EXPECT_TRUE(WaitUntil([&] { return HttpGet(url + "/health", 2000).status == 200; }, 30s))
      << other.Log();
  other.Kill();
  other.Kill();
}

TEST(BrokerSecretTest, ASecretFileOthersCanReadIsRefused) {
  const std::string dir = TempDir("rma-secret");
  const std::string path = dir + "/loose";
  std::ofstream(path) << "secret\n";
  chmod(path.c_str(), 0644);
  Process gw = Process::Start(
      "rma-gateway",
      {"--broker", "tcp://127.0.0.1:1", "--listen", "127.0.0.1:0", "--broker-secret-file", path},
      dir + "/gw.log");
  std::optional<int> code = gw.Wait(20s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_NE(gw.Log().find("chmod 600"), std::string::npos) << gw.Log();
}

}  // namespace
}  // namespace rma::testing
