// Attack 4 of issue 12: HTTP framing and paths. Where the gateway and whatever stands in front of
// it (a proxy) or behind it (a backend) read the same bytes differently, an attacker hides one
// request inside another (smuggling), scrambles answers, or reaches paths a backend never meant to
// serve. Each test here sends the bytes an attacker would, over a raw socket.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "tests/security/gateway_attack.h"
#include "tests/support/test_backend.h"

namespace rma::testing {
namespace {

using namespace attack;

std::string Head(const std::string& request_line, const std::string& headers) {
  return request_line + "\r\nHost: 127.0.0.1\r\n" + headers + "\r\n";
}

// Sends `bytes` and expects one 400 with Connection: close, then the end of the stream — nothing
// smuggled in after the first request may be answered.
void ExpectRefusedAndClosed(const Cluster& c, const std::string& bytes) {
  RawConnection conn(c.http_port());
  ASSERT_TRUE(conn.Send(bytes));
  auto r = conn.Read(10s);
  ASSERT_TRUE(r) << "no answer to: " << bytes.substr(0, 200);
  EXPECT_EQ(r->status, 400) << bytes.substr(0, 200) << "\n" << r->body;
  EXPECT_EQ(r->Header("connection"), "close") << bytes.substr(0, 200);
  EXPECT_TRUE(conn.ClosedByServer(10s)) << "still open after: " << bytes.substr(0, 200);
  EXPECT_EQ(conn.buffered().find("HTTP/1.1"), std::string::npos)
      << "a smuggled request was answered: " << conn.buffered();
}

TEST(HttpFramingTest, TwoDifferentContentLengthsAre400) {
  Cluster cluster;
  const std::string smuggled = "GET /api/admin/workers HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  // A proxy that reads the first length forwards all of it; one that reads the second sees a
  // second request in the "body".
  ExpectRefusedAndClosed(cluster,
                         Head("POST /api/service/echo HTTP/1.1",
                              "Content-Type: text/plain\r\nContent-Length: " +
                                  std::to_string(smuggled.size()) + "\r\nContent-Length: 0\r\n") +
                             smuggled);
  ExpectRefusedAndClosed(cluster,
                         Head("POST /api/service/echo HTTP/1.1",
                              "Content-Type: text/plain\r\nContent-Length: 0\r\nContent-Length: " +
                                  std::to_string(smuggled.size()) + "\r\n") +
                             smuggled);
}

TEST(HttpFramingTest, MalformedContentLengthsAre400) {
  Cluster cluster;
  for (const char* length : {"5, 5", "+5", "0x5", "5 5", "-5", "5.0", "99999999999999999999999"}) {
    ExpectRefusedAndClosed(cluster, Head("POST /api/service/echo HTTP/1.1",
                                         std::string("Content-Length: ") + length + "\r\n") +
                                        "hello");
  }
}

TEST(HttpFramingTest, TransferEncodingBesideContentLengthIs400) {
  Cluster cluster;
  const std::string smuggled = "GET /api/admin/workers HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  ExpectRefusedAndClosed(cluster, Head("POST /api/service/echo HTTP/1.1",
                                       "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n") +
                                      "0\r\n\r\n" + smuggled);
}

TEST(HttpFramingTest, PipelinedRequestsInOneReadAreAnsweredInOrderOrTheConnectionCloses) {
  Cluster cluster;
  RawConnection conn(cluster.http_port());
  ASSERT_TRUE(conn.Send(Head("GET /health HTTP/1.1", "") + Head("GET /api/tasks HTTP/1.1", "")));
  auto first = conn.Read(10s);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  EXPECT_TRUE(nlohmann::json::parse(first->body).contains("gateway")) << "not /health's answer";
  auto second = conn.Read(3s);
  if (second) {
    EXPECT_TRUE(nlohmann::json::parse(second->body).contains("tasks")) << "out of order";
  } else {
    // The rule this gateway chose: answer the first with Connection: close, then close.
    EXPECT_EQ(first->Header("connection"), "close")
        << "the second request was silently dropped on an open connection";
    EXPECT_TRUE(conn.ClosedByServer(10s));
  }
}

TEST(HttpFramingTest, ARequestSentBehindAWaitingOneNeverOvertakesItsAnswer) {
  Cluster cluster;
  cluster.StartWorker("w", {"--service", "sleep=builtin:sleep"});
  ASSERT_TRUE(WaitForService(cluster, "sleep")) << cluster.Logs();
  RawConnection conn(cluster.http_port());
  // A call that waits ~1 s for its worker, then /health on the same connection before its answer.
  ASSERT_TRUE(conn.Send(Head("POST /api/service/sleep HTTP/1.1",
                             "Content-Type: text/plain\r\nContent-Length: 4\r\n") +
                        "1000"));
  ASSERT_TRUE(WaitUntil(
      [&] { return HttpGet(cluster.Url("/health")).Json().value("pending_requests", 0) == 1; },
      10s));
  ASSERT_TRUE(conn.Send(Head("GET /health HTTP/1.1", "")));
  auto first = conn.Read(20s);
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->Header("x-rma-task-id").empty())
      << "the second request's answer came first: " << first->body;
  auto second = conn.Read(3s);
  if (second) {
    EXPECT_TRUE(nlohmann::json::parse(second->body).contains("gateway"));
  } else {
    EXPECT_TRUE(conn.ClosedByServer(10s)) << "the second request was dropped on an open connection";
  }
}

// A service backed by a real HTTP backend, to see what reaches it.
class BackendCluster {
 public:
  BackendCluster() {
    cluster_.StartWorker("w", {"--service", "files=" + backend_.Url() + "/v1"});
    ready_ = WaitForService(cluster_, "files");
  }
  Cluster& cluster() { return cluster_; }
  TestBackend& backend() { return backend_; }
  bool ready() const { return ready_; }

 private:
  TestBackend backend_;
  Cluster cluster_;
  bool ready_ = false;
};

TEST(HttpFramingTest, EncodedSlashesAndDotSegmentsNeverReachABackend) {
  BackendCluster pool;
  ASSERT_TRUE(pool.ready()) << pool.cluster().Logs();
  Cluster& cluster = pool.cluster();
  // A control request: the backend sees it, so the ones below could have reached it.
  HttpResponse ok = HttpGet(cluster.Url("/api/service/files/echo/public/a.txt"));
  ASSERT_EQ(ok.status, 200) << ok.body;
  const size_t before = pool.backend().Requests().size();
  for (const char* path :
       {"/echo/..%2F..%2Fadmin", "/echo/..%2fsecret", "/echo/a%2Fb", "/echo/a%5C..%5Cb",
        "/echo/a%00.txt", "/echo/%2e%2e/x", "/echo/.%2E/x", "/echo/%2e", "/echo/..\\secret"}) {
    RawConnection conn(cluster.http_port());
    ASSERT_TRUE(conn.Send(Head(std::string("GET /api/service/files") + path + " HTTP/1.1", "")));
    auto r = conn.Read(10s);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 400) << path << " -> " << r->body;
  }
  for (const TestBackend::Request& r : pool.backend().Requests()) {
    EXPECT_EQ(r.path.find("%2F"), std::string::npos) << "reached the backend: " << r.path;
    EXPECT_EQ(r.path.find("%2f"), std::string::npos) << "reached the backend: " << r.path;
    EXPECT_EQ(r.path.find("%5C"), std::string::npos) << "reached the backend: " << r.path;
    EXPECT_EQ(r.path.find("%00"), std::string::npos) << "reached the backend: " << r.path;
  }
  EXPECT_EQ(pool.backend().Requests().size(), before);
}

TEST(HttpFramingTest, ABareCarriageReturnInAHeaderNeverReachesABackend) {
  BackendCluster pool;
  ASSERT_TRUE(pool.ready()) << pool.cluster().Logs();
  const size_t before = pool.backend().Requests().size();
  RawConnection conn(pool.cluster().http_port());
  ASSERT_TRUE(conn.Send(
      Head("GET /api/service/files/echo/x HTTP/1.1", "X-Note: hello\rX-Injected: yes\r\n")));
  auto r = conn.Read(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  for (const TestBackend::Request& seen : pool.backend().Requests()) {
    for (const auto& [name, value] : seen.headers) {
      EXPECT_EQ(value.find('\r'), std::string::npos) << name << " carried a CR to the backend";
    }
  }
  EXPECT_EQ(pool.backend().Requests().size(), before);
}

TEST(HttpFramingTest, ConnectionsFromOneAddressAreCapped) {
  Cluster cluster;  // the default cap: 256 per address
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 300; ++i) {
    held.push_back(std::make_unique<RawConnection>(cluster.http_port()));
    ASSERT_GE(held.back()->fd(), 0);
  }
  size_t served = 0;
  size_t refused = 0;
  for (auto& c : held) {
    if (!c->Send(Head("GET /health HTTP/1.1", ""))) {
      ++refused;
      continue;
    }
    auto r = c->Read(5s);
    if (r && r->status == 200) {
      ++served;
    } else {
      ++refused;
      if (r) {
        EXPECT_EQ(r->status, 503) << r->body;
      }
    }
  }
  EXPECT_LE(served, 256u) << "one address held " << served << " connections";
  EXPECT_GE(refused, 44u);
  // The places come back when connections close.
  held.clear();
  EXPECT_TRUE(WaitUntil([&] { return HttpGet(cluster.Url("/health"), 2000).status == 200; }, 10s));
}

TEST(HttpFramingTest, PeerStringsCannotForgeLogLines) {
  ClusterOptions o;
  o.log_level = "debug";
  Cluster cluster(o);
  // Control characters in the target of a request the gateway refuses (and logs).
  RawConnection conn(cluster.http_port());
  ASSERT_TRUE(
      conn.Send("POST /x\r2026-01-01T00:00:00[error]FORGED\x1b[2J HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\nContent-Length: 1, 2\r\n\r\n"));
  auto r = conn.Read(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  RawConnection origin(cluster.http_port());
  ASSERT_TRUE(origin.Send(
      Head("POST /api/tasks HTTP/1.1", "Origin: http://e\x1b[1Avil\r\nContent-Length: 0\r\n")));
  ASSERT_TRUE(origin.Read(10s));
  ASSERT_TRUE(WaitUntil([&] { return HttpGet(cluster.Url("/health")).status == 200; }, 10s));
  const std::string log = cluster.gateway().Log();
  // The refusal was logged (debug), escaped.
  EXPECT_NE(log.find("FORGED"), std::string::npos) << log;
  EXPECT_EQ(log.find('\x1b'), std::string::npos) << "a raw escape sequence reached the log";
  EXPECT_EQ(log.find('\r'), std::string::npos) << "a raw CR reached the log";
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_NE(line.rfind("2026-01-01T00:00:00[error]FORGED", 0), 0u) << "forged line: " << line;
  }
}

}  // namespace
}  // namespace rma::testing
