// End-to-end test of deploy/nginx/rma-gateway.conf, the TLS reverse proxy in front of rma-gateway.
// Each test renders that very file twice — once in front of a real pool (broker, gateway, worker
// from tests/support's Cluster), once in front of a TestBackend that streams — changing only the
// listen addresses, the certificate (self-signed, made with openssl) and the upstream, and runs
// Debian's nginx as root in the foreground with a scratch prefix. Then, through HTTPS with libcurl
// trusting that certificate: tasks are submitted and long-polled to completion, a long-poll that
// holds its answer for seconds is not cut, a chunked text/event-stream answer arrives piece by
// piece, the forwarded headers reach the upstream, bodies up to the gateway's limit pass and larger
// ones are refused, and plain HTTP redirects to HTTPS. Runs on the test's main thread.
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "tests/support/cluster.h"
#include "tests/support/test_backend.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// ---- HTTPS client
// --------------------------------------------------------------------------------

struct Piece {
  double at_s;  // since the request started
  std::string data;
};

struct TlsResponse {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  std::vector<Piece> pieces;                   // the body as it arrived
  double seconds = 0;
  std::string error;
  json Json() const { return json::parse(body, nullptr, false); }
};

struct Transfer {
  TlsResponse* response;
  Clock::time_point start;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string piece(data, size * n);
  t->response->body += piece;
  t->response->pieces.push_back(
      {std::chrono::duration<double>(Clock::now() - t->start).count(), std::move(piece)});
  return size * n;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<TlsResponse*>(user);
  std::string line(data, size * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    value.erase(value.find_last_not_of(" \t\r\n") + 1);
    r->headers[name] = value;
  }
  return size * n;
}

// One request; `ca` is the certificate to trust (the proxy's own, self-signed).
TlsResponse Fetch(const std::string& method, const std::string& url, const std::string& ca,
                  const std::string& body = "", long timeout_ms = 30000) {
  TlsResponse r;
  Transfer transfer{&r, Clock::now()};
  CURL* curl = curl_easy_init();
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (!body.empty()) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  // Accept-Encoding like a browser or an SDK: a proxy that compresses a stream holds it back.
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(curl, CURLOPT_CAINFO, ca.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(curl);
  r.seconds = std::chrono::duration<double>(Clock::now() - transfer.start).count();
  if (rc == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
  } else {
    r.error = curl_easy_strerror(rc);
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return r;
}

// ---- nginx
// -----------------------------------------------------------------------------------------

// A port that was free a moment ago (nginx binds it; a lost race is retried by the caller).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("cannot find a free port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// Replaces `from` (which must occur exactly once, so an edit of the template cannot silently make
// this test check something else) with `to`.
void ReplaceOnce(std::string* text, const std::string& from, const std::string& to) {
  size_t at = text->find(from);
  if (at == std::string::npos || text->find(from, at + 1) != std::string::npos) {
    throw std::runtime_error("deploy/nginx/rma-gateway.conf: expected exactly one '" + from + "'");
  }
  text->replace(at, from.size(), to);
}

struct Ports {
  int https = 0;
  int http = 0;
};

// The deploy template with this test's ports, certificate and upstream; everything else as shipped.
std::string Render(const std::string& upstream_name, int upstream_port, const Ports& ports,
                   const std::string& dir) {
  std::string conf = ReadFile(RMA_NGINX_TEMPLATE);
  ReplaceOnce(&conf, "upstream rma_gateway {", "upstream " + upstream_name + " {");
  ReplaceOnce(&conf, "proxy_pass http://rma_gateway;", "proxy_pass http://" + upstream_name + ";");
  // Two renders share one nginx: each needs its own connection-limit zone.
  ReplaceOnce(&conf, "zone=rma_per_ip:10m", "zone=" + upstream_name + "_per_ip:10m");
  ReplaceOnce(&conf, "limit_conn rma_per_ip 256;", "limit_conn " + upstream_name + "_per_ip 256;");
  ReplaceOnce(&conf, "    server 127.0.0.1:8080;",
              "    server 127.0.0.1:" + std::to_string(upstream_port) + ";");
  ReplaceOnce(&conf, "    listen 80;", "    listen 127.0.0.1:" + std::to_string(ports.http) + ";");
  ReplaceOnce(&conf, "    listen [::]:80;\n", "");
  ReplaceOnce(&conf, "    listen 443 ssl http2;",
              "    listen 127.0.0.1:" + std::to_string(ports.https) + " ssl http2;");
  ReplaceOnce(&conf, "    listen [::]:443 ssl http2;\n", "");
  ReplaceOnce(&conf, "/etc/letsencrypt/live/pool.example.org/fullchain.pem", dir + "/cert.pem");
  ReplaceOnce(&conf, "/etc/letsencrypt/live/pool.example.org/privkey.pem", dir + "/key.pem");
  return conf;
}

class NginxProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = std::make_unique<Cluster>();
    cluster_->StartWorker("w", {"--service", "echo=builtin:echo", "--service",
                                "sleep=builtin:sleep", "--slots", "4"});
    ASSERT_TRUE(cluster_->WaitForLiveWorkers(1, 20s, "sleep")) << cluster_->Logs();
    dir_ = TempDir("rma-nginx-test");

    Process openssl = Process::Start(
        RMA_OPENSSL,
        {"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", dir_ + "/key.pem", "-out", dir_ + "/cert.pem", "-days", "2", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"},
        dir_ + "/openssl.log");
    ASSERT_EQ(openssl.Wait(30s), 0) << openssl.Log();
    ca_ = dir_ + "/cert.pem";

    // Another process may take a port between FreePort() and nginx's bind: then start again.
    for (int attempt = 0; attempt < 5 && !started_; ++attempt) StartNginx();
    ASSERT_TRUE(started_) << ReadFile(dir_ + "/error.log");
  }

  void TearDown() override {
    // SIGTERM: nginx's master stops its workers before it exits (a SIGKILL would orphan them).
    if (nginx_.pid() > 0 && nginx_.running()) {
      nginx_.Signal(SIGTERM);
      EXPECT_TRUE(nginx_.Wait(10s).has_value());
    }
  }

  void StartNginx() {
    gateway_ports_ = {FreePort(), FreePort()};
    stream_ports_ = {FreePort(), FreePort()};
    std::ofstream(dir_ + "/gateway.conf")
        << Render("rma_gateway", cluster_->http_port(), gateway_ports_, dir_);
    std::ofstream(dir_ + "/stream.conf")
        << Render("rma_stream_backend", backend_.port(), stream_ports_, dir_);
    // A minimal main configuration around the two renderings; scratch paths for everything nginx
    // would otherwise write under /var. Workers run as root: they only touch this test's files.
    std::ofstream(dir_ + "/nginx.conf")
        << "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root root;\n"
        << "pid " << dir_ << "/nginx.pid;\nerror_log " << dir_ << "/error.log info;\n"
        << "events { worker_connections 256; }\nhttp {\n"
        << "  access_log " << dir_ << "/access.log;\n"
        << "  client_body_temp_path " << dir_ << "/body;\n  proxy_temp_path " << dir_ << "/proxy;\n"
        << "  fastcgi_temp_path " << dir_ << "/fastcgi;\n  uwsgi_temp_path " << dir_ << "/uwsgi;\n"
        << "  scgi_temp_path " << dir_ << "/scgi;\n"
        << "  include " << dir_ << "/gateway.conf;\n  include " << dir_ << "/stream.conf;\n}\n";
    nginx_ = Process::Start(RMA_NGINX,
                            {"-p", dir_, "-c", dir_ + "/nginx.conf", "-e", dir_ + "/error.log"},
                            dir_ + "/nginx.out");
    started_ = WaitUntil(
        [&] {
          if (!nginx_.running()) return true;
          return Fetch("GET", GatewayUrl("/health"), ca_, "", 2000).status == 200;
        },
        20s);
    started_ = started_ && nginx_.running();
    if (!started_) {
      nginx_.Signal(SIGTERM);
      nginx_.Wait(10s);
    }
  }

  std::string GatewayUrl(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(gateway_ports_.https) + path;
  }
  std::string StreamUrl(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(stream_ports_.https) + path;
  }
  std::string Submit(const json& body) {
    TlsResponse r = Fetch("POST", GatewayUrl("/api/tasks"), ca_, body.dump());
    EXPECT_EQ(r.status, 202) << r.body << r.error;
    return r.Json().value("task_id", "");
  }

  std::unique_ptr<Cluster> cluster_;
  TestBackend backend_;
  std::string dir_;
  std::string ca_;
  Process nginx_;
  bool started_ = false;
  Ports gateway_ports_;
  Ports stream_ports_;
};

TEST_F(NginxProxyTest, TasksAndLongPollsPassThroughTls) {
  // A task and its long-poll to completion.
  const std::string id = Submit({{"service", "echo"}, {"payload", {{"over", "tls"}}}});
  TlsResponse done = Fetch("GET", GatewayUrl("/api/tasks/" + id + "?wait=20"), ca_);
  ASSERT_EQ(done.status, 200) << done.body << done.error;
  EXPECT_EQ(done.Json()["status"], "completed") << done.body;
  EXPECT_EQ(done.Json()["result"], json({{"over", "tls"}}));

  // A long-poll answered when the task ends, seconds later.
  const std::string slow = Submit({{"service", "sleep"}, {"payload", 3000}});
  TlsResponse finished = Fetch("GET", GatewayUrl("/api/tasks/" + slow + "?wait=30"), ca_);
  ASSERT_EQ(finished.status, 200) << finished.body << finished.error;
  EXPECT_EQ(finished.Json()["status"], "completed") << finished.body;
  EXPECT_GE(finished.seconds, 2.5);

  // A long-poll that holds its answer for its whole wait (nobody provides the service): nginx
  // passes the silence on instead of cutting it (504) or answering early.
  const std::string waiting = Submit({{"service", "nobody-runs-this"}, {"payload", 1}});
  TlsResponse held = Fetch("GET", GatewayUrl("/api/tasks/" + waiting + "?wait=6"), ca_);
  ASSERT_EQ(held.status, 200) << held.body << held.error;
  EXPECT_EQ(held.Json()["status"], "queued") << held.body;
  EXPECT_GE(held.seconds, 5.5);

  // The longest waits the gateway allows by default (--max-wait-ms, --max-call-timeout-ms: 300 s)
  // are far too long for a test; the template must outlast them.
  std::smatch m;
  const std::string conf = ReadFile(RMA_NGINX_TEMPLATE);
  ASSERT_TRUE(std::regex_search(conf, m, std::regex(R"(\n\s*proxy_read_timeout (\d+)s;)")));
  EXPECT_GT(std::stoi(m[1]), 300);

  // The admin API and /health answer through the proxy too.
  TlsResponse workers = Fetch("GET", GatewayUrl("/api/admin/workers"), ca_);
  EXPECT_EQ(workers.status, 200);
  EXPECT_EQ(workers.Json()["total"], 1) << workers.body;
  EXPECT_EQ(Fetch("GET", GatewayUrl("/health"), ca_).Json()["broker"], "reachable");
}

TEST_F(NginxProxyTest, StreamedAnswerArrivesPieceByPiece) {
  // Six events 400 ms apart: the first must reach the client long before the last is sent.
  TlsResponse r = Fetch("GET", StreamUrl("/stream/6/400"), ca_);
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  EXPECT_EQ(r.headers["content-type"], "text/event-stream");
  EXPECT_EQ(r.body, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\ndata: 5\n\n");
  ASSERT_GE(r.pieces.size(), 3u) << "the answer arrived in " << r.pieces.size() << " piece(s)";
  EXPECT_EQ(r.pieces.front().data.rfind("data: 0", 0), 0u);
  EXPECT_LT(r.pieces.front().at_s, r.seconds - 1.5)
      << "first piece at " << r.pieces.front().at_s << " s of " << r.seconds << " s: buffered";
  EXPECT_GE(r.seconds, 1.8);
}

TEST_F(NginxProxyTest, ForwardedHeadersReachTheUpstream) {
  TlsResponse r = Fetch("GET", StreamUrl("/echo/headers"), ca_);
  ASSERT_EQ(r.status, 200) << r.body << r.error;
  json headers = r.Json()["headers"];
  EXPECT_EQ(headers["x-forwarded-proto"], "https") << headers;
  EXPECT_EQ(headers["x-forwarded-for"], "127.0.0.1") << headers;
  EXPECT_EQ(headers["x-real-ip"], "127.0.0.1") << headers;
  EXPECT_EQ(headers["host"], "127.0.0.1") << headers;
  // HTTP/1.1 without "Connection: close" upstream: nginx may keep the connection for the next
  // request.
  EXPECT_FALSE(headers.contains("connection")) << headers;

  // Plain HTTP only redirects to HTTPS.
  TlsResponse plain =
      Fetch("GET", "http://127.0.0.1:" + std::to_string(gateway_ports_.http) + "/api/tasks", ca_);
  EXPECT_EQ(plain.status, 301);
  EXPECT_EQ(plain.headers["location"], "https://127.0.0.1/api/tasks");
}

TEST_F(NginxProxyTest, BodiesUpToTheGatewayLimitPassAndLargerAreRefused) {
  // The gateway takes bodies of up to 16 MiB by default; so does the proxy.
  const std::string big_text(16 * 1024 * 1024 - 4096, 'x');
  TlsResponse big =
      Fetch("POST", GatewayUrl("/api/tasks"), ca_,
            json({{"service", "nobody-runs-this"}, {"payload", big_text}}).dump(), 60000);
  EXPECT_EQ(big.status, 202) << big.body.substr(0, 300) << big.error;
  TlsResponse too_big =
      Fetch("POST", GatewayUrl("/api/tasks"), ca_, std::string(16 * 1024 * 1024 + 1, 'x'), 60000);
  EXPECT_EQ(too_big.status, 413) << too_big.body.substr(0, 300) << too_big.error;
}

}  // namespace
}  // namespace rma::testing
