// Attack 1 of issue 12: a gateway without API keys is an open pool. Started on a public address it
// let anyone on the network submit tasks, call services and drain workers; on loopback a web page
// could still reach it by DNS rebinding (a name of the attacker's that resolves to 127.0.0.1, so
// the browser deems the gateway same-origin and lets the page read its answers). Now: no keys,
// loopback only — a non-loopback --listen is refused at start unless --allow-anonymous, and an
// open loopback gateway answers only requests whose Host is a loopback name.
#include <gtest/gtest.h>

#include "tests/security/gateway_attack.h"

namespace rma::testing {
namespace {

using namespace attack;

TEST(GatewayExposureTest, WithoutKeysAPublicAddressIsRefusedAtStart) {
  ClusterOptions o;
  o.gateway = false;
  Cluster cluster(o);
  const std::string port_file = cluster.dir() + "/public.port";
  Process gw = Process::Start(
      "rma-gateway",
      {"--broker", cluster.clients_endpoint(), "--listen", "0.0.0.0:0", "--port-file", port_file},
      cluster.dir() + "/public.log");
  // It must exit, with an error that says what to do, and never serve.
  std::optional<int> code = gw.Wait(20s);
  ASSERT_TRUE(code) << "the gateway serves an open API on 0.0.0.0:\n" << gw.Log();
  EXPECT_NE(*code, 0);
  EXPECT_EQ(ReadFile(port_file), "");
  const std::string log = gw.Log();
  for (const char* named : {"--admin-key", "--client-key", "--allow-anonymous"}) {
    EXPECT_NE(log.find(named), std::string::npos) << named << " not named in:\n" << log;
  }
}

TEST(GatewayExposureTest, AllowAnonymousServesAnOpenPoolOnPurpose) {
  ClusterOptions o;
  o.gateway = false;
  Cluster cluster(o);
  const std::string port_file = cluster.dir() + "/open.port";
  Process gw = Process::Start("rma-gateway",
                              {"--broker", cluster.clients_endpoint(), "--listen", "0.0.0.0:0",
                               "--port-file", port_file, "--allow-anonymous"},
                              cluster.dir() + "/open.log");
  const std::string port = WaitForFile(port_file, 20s);
  ASSERT_FALSE(port.empty()) << gw.Log();
  const std::string url = "http://127.0.0.1:" + port.substr(0, port.find('\n'));
  EXPECT_TRUE(WaitUntil([&] { return HttpGet(url + "/health", 2000).status == 200; }, 20s));
  EXPECT_NE(gw.Log().find("OPEN"), std::string::npos) << "no warning:\n" << gw.Log();
  // An open pool on purpose takes any Host.
  EXPECT_EQ(HttpCall("GET", url + "/health", "", {"Host: pool.example.org"}).status, 200);
  gw.Kill();
}

TEST(GatewayExposureTest, AnOpenLoopbackGatewayIsNotReachableByDnsRebinding) {
  Cluster cluster;  // no keys, 127.0.0.1
  const std::string host = "rebind.evil.example:" + std::to_string(cluster.http_port());
  // The page's requests carry its own name as Host, and its own origin — same-origin to the
  // browser, so the page could read the answers and send JSON without a preflight.
  HttpResponse submit =
      HttpCall("POST", cluster.Url("/api/tasks"), R"({"service": "echo", "payload": "rebound"})",
               {kJson, "Host: " + host, "Origin: http://" + host});
  EXPECT_EQ(submit.status, 403) << submit.body;
  EXPECT_EQ(CodeOf(submit), "host_refused") << submit.body;
  HttpResponse read = HttpCall("GET", cluster.Url("/api/admin/workers"), "", {"Host: " + host});
  EXPECT_EQ(read.status, 403) << read.body;
  EXPECT_TRUE(ListTasks(cluster).empty()) << "a task was created through a rebound name";
  // Loopback names still work.
  EXPECT_EQ(HttpCall("GET", cluster.Url("/api/admin/workers"), "",
                     {"Host: localhost:" + std::to_string(cluster.http_port())})
                .status,
            200);
}

}  // namespace
}  // namespace rma::testing
