// End to end through real rma-broker, rma-worker and rma-gateway processes: a synchronous call to
// a backend that streams server-sent events is answered by the gateway as the events come
// (chunked, `text/event-stream` byte for byte), an error after the first byte ends the stream in
// the event format, and a client that goes away mid-stream cancels the call (docs/http-api.md,
// "Streamed answers"). The HTTP client is libcurl, watching the body as it arrives.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>

#include "tests/security/gateway_attack.h"
#include "tests/support/cluster.h"
#include "tests/support/process.h"
#include "tests/support/test_backend.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class GatewayStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = std::make_unique<Cluster>();
    cluster_->StartWorker("llm-box", {"--service", "llm=" + backend_.Url(), "--slots", "4"});
    ASSERT_TRUE(WaitForService(*cluster_, "llm")) << cluster_->Logs();
  }
  Cluster& c() { return *cluster_; }

  TestBackend backend_;
  std::unique_ptr<Cluster> cluster_;
};

TEST_F(GatewayStreamTest, EventsReachTheHttpClientWhileTheBackendStillProducesThem) {
  std::vector<Clock::time_point> arrivals;
  const auto sent = Clock::now();
  // Five events, 150 ms apart.
  HttpResponse r =
      HttpWatch("GET", c().Url("/api/service/llm/stream/5/150"), "", {}, [&](std::string_view) {
        arrivals.push_back(Clock::now());
        return true;
      });
  const auto end = Clock::now();
  ASSERT_EQ(r.status, 200) << r.error << r.body << c().Logs();
  EXPECT_EQ(r.body, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n");
  EXPECT_EQ(r.Header("content-type").rfind("text/event-stream", 0), 0u) << r.Header("content-type");
  EXPECT_EQ(r.Header("transfer-encoding"), "chunked");
  EXPECT_EQ(r.Header("content-length"), "");
  EXPECT_FALSE(r.Header("x-rma-task-id").empty());
  ASSERT_GE(arrivals.size(), 2u) << "the answer came in one piece: it was not streamed";
  // The first event reached the client while the backend was still producing the other four.
  EXPECT_GE(end - arrivals.front(), 400ms)
      << "first piece after "
      << std::chrono::duration_cast<std::chrono::milliseconds>(arrivals.front() - sent).count()
      << " ms of " << std::chrono::duration_cast<std::chrono::milliseconds>(end - sent).count()
      << " ms";
  // The connection is kept alive and answers the next request as usual.
  HttpResponse health = HttpGet(c().Url("/health"));
  EXPECT_EQ(health.status, 200);
}

TEST_F(GatewayStreamTest, AnErrorAfterTheFirstByteEndsTheEventStreamWithAnErrorEvent) {
  // Ten events 300 ms apart do not fit in the call's 1 s: the broker ends the call mid-stream.
  HttpResponse r =
      HttpCall("GET", c().Url("/api/service/llm/stream/10/300"), "", {"X-RMA-Timeout: 1"}, 20000);
  ASSERT_EQ(r.status, 200) << r.error << c().Logs();
  EXPECT_TRUE(r.error.empty()) << "an event stream ends cleanly, with the error as an event: "
                               << r.error;
  EXPECT_EQ(r.body.rfind("data: 0\n\n", 0), 0u) << r.body;
  const size_t at = r.body.find("data: {\"error\":");
  ASSERT_NE(at, std::string::npos) << r.body;
  nlohmann::json error = nlohmann::json::parse(r.body.substr(at + 6), nullptr, false);
  ASSERT_TRUE(error.is_object()) << r.body.substr(at);
  // The broker's deadline and the worker's own (the attempt's timeout bounds its backend request)
  // fall together: either may end the call.
  const std::string code = error["error"].value("code", "");
  EXPECT_TRUE(code == "timeout" || code == "handler_error") << error.dump();
  EXPECT_TRUE(error["error"]["message"].is_string());
  EXPECT_EQ(error["error"]["type"], "server_error");
}

TEST_F(GatewayStreamTest, AClientThatGoesAwayMidStreamCancelsTheCall) {
  // Fifty events, 100 ms apart: five seconds of generation, abandoned after the first piece.
  std::string task_id;
  const auto sent = Clock::now();
  HttpResponse r = HttpWatch("GET", c().Url("/api/service/llm/stream/50/100"), "", {},
                             [&](std::string_view) { return false; });
  const auto gone = Clock::now();
  ASSERT_EQ(r.status, 200) << r.error << c().Logs();
  ASSERT_FALSE(r.error.empty()) << "the client stopped reading";
  task_id = r.Header("x-rma-task-id");
  ASSERT_FALSE(task_id.empty());
  // The task is cancelled and its attempt ends long before the backend would have finished.
  nlohmann::json task;
  ASSERT_TRUE(WaitUntil(
      [&] {
        task = HttpGet(c().Url("/api/tasks/" + task_id)).Json();
        return task.is_object() && task.value("status", "") == "cancelled";
      },
      3s))
      << task.dump() << c().Logs();
  EXPECT_LT(Clock::now() - sent, 4s) << "cancelled only when the stream would have ended anyway";
  (void)gone;
}

TEST_F(GatewayStreamTest, AClientThatGoesAwayBeforeAnyAnswerCancelsTheCall) {
  // A backend that answers only after 5 s, and a client that gives up after 300 ms: nothing was
  // written to the client, so only the reported disconnection can tell the gateway.
  const auto sent = Clock::now();
  HttpResponse r = HttpCall("GET", c().Url("/api/service/llm/slow/5000"), "", {}, 300);
  ASSERT_EQ(r.status, 0) << "the client gave up before any answer";
  nlohmann::json tasks;
  ASSERT_TRUE(WaitUntil(
      [&] {
        tasks = HttpGet(c().Url("/api/tasks?service=llm&status=cancelled")).Json();
        return tasks.is_object() && tasks.contains("tasks") && tasks["tasks"].size() == 1;
      },
      3s))
      << tasks.dump() << c().Logs();
  EXPECT_LT(Clock::now() - sent, 4s) << "cancelled only when the call would have ended anyway";
}

TEST(GatewaySlowReaderTest, AClientThatStopsReadingIsCutOffAndCostsTheGatewayNoMemory) {
  TestBackend::Options o;
  o.token_delay_ms = 0;  // tokens as fast as the backend can write them
  TestBackend backend(o);
  Cluster c;
  c.StartWorker("llm-box", {"--service", "llm=" + backend.Url(), "--slots", "2"});
  ASSERT_TRUE(WaitForService(c, "llm")) << c.Logs();
  const size_t before = attack::PeakRssBytes(c.gateway().pid());
  // A client with a tiny receive buffer that asks for ~50 MB of tokens and never reads them.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(c.http_port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string body =
      R"({"model":"test-model","stream":true,"max_tokens":300000,"messages":[]})";
  const std::string request =
      "POST /api/service/llm/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  // The call ends (the gateway cut the stream past its bound and cancelled it, or the backend
  // finished first); either way the gateway held at most its bound for this client.
  nlohmann::json tasks;
  ASSERT_TRUE(WaitUntil(
      [&] {
        tasks = HttpGet(c.Url("/api/tasks?service=llm")).Json();
        return tasks.is_object() && tasks["tasks"].size() == 1 &&
               tasks["tasks"][0].value("status", "") != "running";
      },
      60s))
      << tasks.dump() << c.Logs();
  const size_t after = attack::PeakRssBytes(c.gateway().pid());
  std::printf("gateway VmHWM %.1f MiB before, %.1f MiB after the unread stream; task %s\n",
              static_cast<double>(before) / (1 << 20), static_cast<double>(after) / (1 << 20),
              tasks["tasks"][0].value("status", "").c_str());
  EXPECT_LT(after, before + (8u << 20)) << "the gateway buffered the unread stream";
  // What the client can still read is what the kernel held, then the connection's end: the
  // stream was cut, not finished (about 17 MB of tokens were produced).
  std::string got;
  char buf[65536];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  EXPECT_LT(got.size(), 12u << 20)
      << "the whole stream was delivered to a reader that did not read";
  EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_FALSE(got.size() >= 5 && got.compare(got.size() - 5, 5, "0\r\n\r\n") == 0)
      << "the stream ended normally";
  // The gateway still serves.
  EXPECT_EQ(HttpGet(c.Url("/health")).status, 200);
}

// Splits an event stream into its events: {"id", "event", "data"} each.
std::vector<std::map<std::string, std::string>> ParseEvents(const std::string& text) {
  std::vector<std::map<std::string, std::string>> events;
  std::map<std::string, std::string> current;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) break;
    std::string line = text.substr(at, end - at);
    at = end + 1;
    if (line.empty()) {
      if (!current.empty()) events.push_back(std::move(current));
      current.clear();
      continue;
    }
    const size_t colon = line.find(": ");
    if (colon != std::string::npos) current[line.substr(0, colon)] = line.substr(colon + 2);
  }
  return events;
}

TEST(GatewayTaskEventsTest, AnAsynchronousTasksStatusAndOutputArriveAsEventsAndResume) {
  TestBackend backend;
  Cluster c;
  // The service's backend streams four events 150 ms apart for every task it gets, once the
  // test has seen the watch's first event (the broker keeps no partial output, so a chunk sent
  // before the watch is attached would never reach it).
  backend.HoldStreams(true);
  c.StartWorker("w", {"--service", "ev=" + backend.Url() + "/stream/4/150", "--slots", "2"});
  ASSERT_TRUE(WaitForService(c, "ev")) << c.Logs();
  HttpResponse submitted = HttpPostJson(c.Url("/api/tasks"), {{"service", "ev"}, {"payload", "x"}});
  ASSERT_EQ(submitted.status, 202) << submitted.body;
  const std::string id = submitted.Json()["task_id"];
  std::vector<Clock::time_point> arrivals;
  HttpResponse r =
      HttpWatch("GET", c.Url("/api/tasks/" + id + "/events"), "", {}, [&](std::string_view) {
        arrivals.push_back(Clock::now());
        backend.HoldStreams(false);
        return true;
      });
  backend.HoldStreams(false);
  ASSERT_EQ(r.status, 200) << r.error << r.body << c.Logs();
  EXPECT_EQ(r.Header("content-type"), "text/event-stream");
  auto events = ParseEvents(r.body);
  ASSERT_GE(events.size(), 2u) << r.body;
  std::vector<std::string> outputs;
  std::vector<std::string> statuses;
  for (auto& e : events) {
    if (e["event"] == "output") outputs.push_back(nlohmann::json::parse(e["data"])["data"]);
    if (e["event"] == "status") statuses.push_back(nlohmann::json::parse(e["data"])["status"]);
  }
  ASSERT_FALSE(statuses.empty());
  EXPECT_EQ(statuses.back(), "completed") << r.body;
  // The output came as the backend produced it, each chunk its own event, before the end.
  std::string joined;
  for (const std::string& o : outputs) joined += o;
  EXPECT_EQ(joined, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\n") << r.body;
  EXPECT_GE(outputs.size(), 2u) << r.body;
  ASSERT_GE(arrivals.size(), 2u);
  EXPECT_GE(arrivals.back() - arrivals.front(), 300ms) << "the events came in one piece";
  // The final status event carries the result.
  nlohmann::json last = nlohmann::json::parse(events.back()["data"]);
  EXPECT_EQ(last["status"], "completed");
  // Resuming after the last event: 204, nothing more (EventSource stops).
  HttpResponse again = HttpCall("GET", c.Url("/api/tasks/" + id + "/events"), "",
                                {"Last-Event-ID: " + events.back()["id"]});
  EXPECT_EQ(again.status, 204) << again.body;
  // Resuming from an earlier event: only what came after it.
  HttpResponse resumed = HttpCall("GET", c.Url("/api/tasks/" + id + "/events"), "",
                                  {"Last-Event-ID: " + events.front()["id"]});
  EXPECT_EQ(resumed.status, 200);
  auto later = ParseEvents(resumed.body);
  ASSERT_EQ(later.size(), 1u) << resumed.body;
  EXPECT_EQ(later[0]["id"], events.back()["id"]);
  // Someone else's or an unknown task: 404, as GET.
  EXPECT_EQ(HttpGet(c.Url("/api/tasks/12345/events")).status, 404);
}

// An exec service whose content type is text/event-stream streams its command's stdout: the first
// event reaches the HTTP client while the command still runs (it writes the second one only once
// the test has seen the first), byte for byte, chunked.
TEST(GatewayExecStreamTest, AStreamingCommandsStdoutReachesTheClientAsItIsWritten) {
  Cluster c;
  const std::string flag = c.dir() + "/first-event-seen";
  const std::string config = c.dir() + "/exec-worker.json";
  {
    nlohmann::json services = {{"sse",
                                {{"handler", "exec:printf 'data: 1\\n\\n'; while [ ! -e " + flag +
                                                 " ]; do sleep 0.01; done; printf 'data: 2\\n\\n'"},
                                 {"content_type", "text/event-stream"},
                                 {"timeout_ms", 20000}}}};
    std::ofstream(config) << nlohmann::json{{"services", services}}.dump();
  }
  c.StartWorker("exec-box", {"--config", config});
  ASSERT_TRUE(WaitForService(c, "sse")) << c.Logs();
  std::vector<std::string> pieces;
  HttpResponse r =
      HttpWatch("POST", c.Url("/api/service/sse/run"), "go", {}, [&](std::string_view d) {
        if (pieces.empty()) std::ofstream(flag).put('x');  // the command may go on
        pieces.emplace_back(d);
        return true;
      });
  ASSERT_EQ(r.status, 200) << r.error << r.body << c.Logs();
  EXPECT_EQ(r.body, "data: 1\n\ndata: 2\n\n");
  EXPECT_EQ(r.Header("content-type").rfind("text/event-stream", 0), 0u) << r.Header("content-type");
  EXPECT_EQ(r.Header("transfer-encoding"), "chunked");
  ASSERT_GE(pieces.size(), 2u);
  EXPECT_EQ(pieces[0], "data: 1\n\n") << "the first event came with the second: not streamed";
}

}  // namespace
}  // namespace rma::testing
