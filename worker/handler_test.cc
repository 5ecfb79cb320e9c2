// Handlers: the builtins, CancelToken, the executor, the http handler against a real HTTP server
// started by the test (TestBackend on 127.0.0.1, port chosen by the kernel) and the exec handler
// with real commands. Cancellation and timeouts are checked by outcome, never by how long they
// took.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/support/test_backend.h"
#include "worker/executor.h"
#include "worker/handler.h"
#include "worker/http_handler.h"

namespace rma::worker {
namespace {

using nlohmann::json;
using rma::testing::TestBackend;
using ::testing::HasSubstr;

proto::TaskAssignment Task(std::string payload, std::string content_type = "") {
  proto::TaskAssignment t;
  t.task_id = TaskId(42);
  t.attempt = 2;
  t.service = "svc";
  t.payload = std::move(payload);
  t.content_type = std::move(content_type);
  t.timeout_ms = 60000;
  return t;
}

proto::TaskAssignment Call(std::string method, std::string path, std::string query = "",
                           std::string body = "", std::map<std::string, std::string> headers = {}) {
  proto::TaskAssignment t = Task(std::move(body));
  t.request =
      proto::HttpRequest{std::move(method), std::move(path), std::move(query), std::move(headers)};
  return t;
}

std::shared_ptr<Handler> Make(const std::string& spec, const HandlerOptions& options = {}) {
  auto h = MakeHandler(spec, options);
  EXPECT_TRUE(h.ok()) << h.status().ToString();
  return h.ok() ? *h : nullptr;
}

bool Eventually(const std::function<bool()>& condition) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// ---- Builtins, CancelToken, factory -------------------------------------------------------------

TEST(BuiltinTest, EchoReturnsThePayloadWithItsContentType) {
  CancelToken cancel;
  auto out = Make("builtin:echo")->Run(Task("{\"a\":1}", "application/json"), cancel);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->body, "{\"a\":1}");
  EXPECT_EQ(out->content_type, "application/json");
}

TEST(BuiltinTest, SleepHonoursCancellationAndRejectsBadDurations) {
  CancelToken cancel;
  cancel.Cancel("stop");
  auto handler = Make("builtin:sleep");
  EXPECT_EQ(handler->Run(Task("3600000"), cancel).status().code(), StatusCode::kCancelled);
  CancelToken fresh;
  auto out = handler->Run(Task("{\"ms\": 1}"), fresh);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->body, "{\"slept_ms\":1}");
  EXPECT_EQ(handler->Run(Task("soon"), fresh).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(handler->Run(Task("999999999999"), fresh).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(BuiltinTest, FailFailsRetryably) {
  CancelToken cancel;
  auto out = Make("builtin:fail")->Run(Task("why"), cancel);
  EXPECT_EQ(out.status().code(), StatusCode::kInternal);
  EXPECT_TRUE(IsRetryable(out.status().code()));
  EXPECT_FALSE(IsRetryable(StatusCode::kInvalidArgument));
  EXPECT_FALSE(IsRetryable(StatusCode::kResourceExhausted));
}

// Only handlers that cannot block run on the control thread (the session's heartbeats must never
// wait for a task).
TEST(BuiltinTest, OnlyNonBlockingBuiltinsRunInline) {
  EXPECT_TRUE(Make("builtin:echo")->runs_inline());
  EXPECT_TRUE(Make("builtin:fail")->runs_inline());
  EXPECT_FALSE(Make("builtin:sleep")->runs_inline());
  EXPECT_FALSE(Make("exec:cat")->runs_inline());
  EXPECT_FALSE(Make("http://127.0.0.1:1")->runs_inline());
}

TEST(MakeHandlerTest, RefusesUnknownAndMalformedSpecs) {
  for (const char* spec :
       {"builtin:nope", "ftp://x", "", "exec:", "exec:   ", "http://", "http://host:0",
        "http://host:99999", "http://host:port", "http://user@host:1", "http://host:1/a?b",
        "http://host:1#health", "http://host:1/../x", "http://ho st:1"}) {
    auto h = MakeHandler(spec);
    EXPECT_EQ(h.status().code(), StatusCode::kInvalidArgument) << spec;
  }
  EXPECT_EQ(Make("builtin:echo")->kind(), "builtin");
  EXPECT_EQ(Make("exec:cat")->kind(), "exec");
  EXPECT_EQ(Make("http://127.0.0.1:1")->kind(), "http");
  EXPECT_TRUE(Make("http://127.0.0.1:1")->probed());
  EXPECT_FALSE(Make("exec:cat")->probed());
}

TEST(CancelTokenTest, WakesSubscribersOnceAndNeverAfterTheyLeft) {
  CancelToken cancel;
  int woken = 0;
  {
    auto sub = cancel.OnCancel([&] { ++woken; });
    cancel.Cancel("first");
    cancel.Cancel("second");  // ignored: already cancelled
  }
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(cancel.reason(), "first");
  // Subscribing to a cancelled token wakes at once.
  auto late = cancel.OnCancel([&] { ++woken; });
  EXPECT_EQ(woken, 2);
  CancelToken other;
  {
    auto gone = other.OnCancel([&] { ++woken; });
  }
  other.Cancel("nobody listens");
  EXPECT_EQ(woken, 2);
}

TEST(ExecutorTest, RunsJobsAndReportsATaskCancelledBeforeItStarted) {
  Executor executor(1);
  auto cancelled = std::make_shared<CancelToken>();
  cancelled->Cancel("drain grace period over");
  executor.Submit({Task("never"), Make("builtin:fail"), cancelled});
  executor.Submit({Task("hi"), Make("builtin:echo"), std::make_shared<CancelToken>()});
  std::vector<proto::TaskResult> results;
  ASSERT_TRUE(Eventually([&] {
    pollfd p{executor.wake_fd(), POLLIN, 0};
    if (poll(&p, 1, 0) == 1) {
      for (auto& r : executor.TakeFinished()) results.push_back(std::move(r));
    }
    return results.size() == 2;
  }));
  EXPECT_EQ(results[0].outcome, proto::Outcome::kCancelled);
  EXPECT_THAT(results[0].error, HasSubstr("drain grace period over"));
  EXPECT_EQ(results[1].outcome, proto::Outcome::kOk);
  EXPECT_EQ(results[1].result, "hi");
  EXPECT_EQ(results[1].attempt, 2u);
}

// ---- http: spec and request building (pure) -----------------------------------------------------

TEST(ParseHttpSpecTest, SplitsOriginBasePathAndHealthPath) {
  auto t = ParseHttpSpec("http://127.0.0.1:8102");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->BaseUrl(), "http://127.0.0.1:8102");
  EXPECT_EQ(t->health_path, "");
  t = ParseHttpSpec("https://[::1]:8443/v1/#/healthz");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->Origin(), "https://[::1]:8443");
  EXPECT_EQ(t->base_path, "/v1");
  EXPECT_EQ(t->health_path, "/healthz");
  t = ParseHttpSpec("http://localhost");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->authority, "localhost");
}

TEST(BuildRequestTest, ReplaysMethodPathQueryAndSafeHeaders) {
  HttpTarget target = *ParseHttpSpec("http://127.0.0.1:9/v1");
  auto req = BuildRequest(target, Call("PUT", "/items/7", "a=1&b=%20x", "{}",
                                       {{"content-type", "application/json"},
                                        {"accept", "text/plain"},
                                        {"connection", "upgrade"},
                                        {"x-rma-secret", "no"},
                                        {"X-Trace", "abc"}}));
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  EXPECT_EQ(req->method, "PUT");
  EXPECT_EQ(req->url, "http://127.0.0.1:9/v1/items/7?a=1&b=%20x");
  EXPECT_TRUE(req->relay_status);
  EXPECT_THAT(req->headers, ::testing::Contains("Content-Type: application/json"));
  EXPECT_THAT(req->headers, ::testing::Contains("accept: text/plain"));
  EXPECT_THAT(req->headers, ::testing::Contains("X-Trace: abc"));
  EXPECT_THAT(req->headers, ::testing::Contains("X-RMA-Task-Id: 42"));
  EXPECT_THAT(req->headers, ::testing::Contains("X-RMA-Attempt: 2"));
  for (const std::string& h : req->headers) {
    EXPECT_THAT(h, ::testing::Not(HasSubstr("upgrade")));
    EXPECT_THAT(h, ::testing::Not(HasSubstr("secret")));
  }
}

TEST(BuildRequestTest, AnAsynchronousTaskPostsItsPayloadToTheBasePath) {
  auto req = BuildRequest(*ParseHttpSpec("http://127.0.0.1:9"), Task("x", "text/csv"));
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(req->method, "POST");
  EXPECT_EQ(req->url, "http://127.0.0.1:9/");
  EXPECT_FALSE(req->relay_status);
  EXPECT_THAT(req->headers, ::testing::Contains("Content-Type: text/csv"));
  req = BuildRequest(*ParseHttpSpec("http://127.0.0.1:9/api/run/"), Task("x"));
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(req->url, "http://127.0.0.1:9/api/run");
  // No content type: an empty header keeps libcurl from inventing a form type.
  EXPECT_THAT(req->headers, ::testing::Contains("Content-Type:"));
}

TEST(BuildRequestTest, RefusesWhatCannotBeSentSafely) {
  HttpTarget target = *ParseHttpSpec("http://127.0.0.1:9/v1");
  EXPECT_FALSE(BuildRequest(target, Call("get", "/x")).ok());
  EXPECT_FALSE(BuildRequest(target, Call("G ET", "/x")).ok());
  EXPECT_FALSE(BuildRequest(target, Call("GET", "x")).ok());
  EXPECT_FALSE(BuildRequest(target, Call("GET", "/../admin")).ok());
  EXPECT_FALSE(BuildRequest(target, Call("GET", "/a/%2e%2E/admin")).ok());
  EXPECT_FALSE(BuildRequest(target, Call("GET", "/a b")).ok());
  EXPECT_FALSE(BuildRequest(target, Call("GET", "/a%zz")).ok());
  EXPECT_FALSE(BuildRequest(target, Call("GET", "/a\r\nHost: evil")).ok());
  EXPECT_FALSE(BuildRequest(target, Call("GET", "/a", "q=1#frag")).ok());
  EXPECT_FALSE(
      BuildRequest(target, Call("GET", "/a", "", "", {{"x-a", "1\r\nX-Injected: 1"}})).ok());
  EXPECT_FALSE(BuildRequest(target, Call("GET", "/a", "", "", {{"bad name", "1"}})).ok());
  std::map<std::string, std::string> many;
  for (int i = 0; i < 100; ++i) many["x-h" + std::to_string(i)] = "v";
  EXPECT_FALSE(BuildRequest(target, Call("GET", "/a", "", "", many)).ok());
  EXPECT_TRUE(BuildRequest(target, Call("GET", "/a/.well-known/x")).ok());
}

// ---- http: against a real server ----------------------------------------------------------------

class HttpHandlerTest : public ::testing::Test {
 protected:
  TestBackend backend_;
  CancelToken cancel_;
};

TEST_F(HttpHandlerTest, ReplaysTheCallersRequestAndReturnsTheBackendsAnswer) {
  auto handler = Make(backend_.Url());
  auto out = handler->Run(Call("POST", "/echo/deep/path", "x=1&y=two", "the body",
                               {{"content-type", "text/plain"}, {"x-caller", "c1"}}),
                          cancel_);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->http_status, 200u);
  EXPECT_EQ(out->content_type, "application/json");
  json seen = json::parse(out->body.view());
  EXPECT_EQ(seen["method"], "POST");
  EXPECT_EQ(seen["path"], "/echo/deep/path");
  EXPECT_EQ(seen["query"], "x=1&y=two");
  EXPECT_EQ(seen["body"], "the body");
  EXPECT_EQ(seen["headers"]["content-type"], "text/plain");
  EXPECT_EQ(seen["headers"]["x-caller"], "c1");
  EXPECT_EQ(seen["headers"]["x-rma-task-id"], "42");
  EXPECT_EQ(seen["headers"].count("expect"), 0u);
}

TEST_F(HttpHandlerTest, EveryMethodArrivesAsSent) {
  auto handler = Make(backend_.Url());
  for (const char* method : {"GET", "DELETE", "PATCH", "PUT", "OPTIONS"}) {
    auto out = handler->Run(Call(method, "/echo"), cancel_);
    ASSERT_TRUE(out.ok()) << method << ": " << out.status().ToString();
    EXPECT_EQ(json::parse(out->body.view())["method"], method);
  }
  auto head = handler->Run(Call("HEAD", "/echo"), cancel_);
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->http_status, 200u);
  EXPECT_EQ(head->body, "");
}

TEST_F(HttpHandlerTest, ABackendErrorStatusIsACompletedCallCarryingIt) {
  auto handler = Make(backend_.Url());
  auto missing = handler->Run(Call("GET", "/status/404"), cancel_);
  ASSERT_TRUE(missing.ok()) << missing.status().ToString();
  EXPECT_EQ(missing->http_status, 404u);
  EXPECT_EQ(missing->body, "status 404");
  EXPECT_EQ(missing->content_type, "text/plain");
  auto broken = handler->Run(Call("GET", "/status/500"), cancel_);
  ASSERT_TRUE(broken.ok());
  EXPECT_EQ(broken->http_status, 500u);
}

// Records every chunk with the time it came.
class RecordingStream final : public OutputStream {
 public:
  struct Got {
    std::string data;
    uint32_t status;
    std::string content_type;
    std::chrono::steady_clock::time_point at;
  };
  void Chunk(std::string_view data, uint32_t status, std::string_view type) override {
    got.push_back({std::string(data), status, std::string(type), std::chrono::steady_clock::now()});
  }
  std::vector<Got> got;
};

TEST_F(HttpHandlerTest, AStreamingAnswerIsForwardedAsItComes) {
  auto handler = Make(backend_.Url());
  RecordingStream stream;
  // 5 events 100 ms apart.
  auto out = handler->RunStreaming(Call("GET", "/stream/5/100"), cancel_, stream);
  const auto ended = std::chrono::steady_clock::now();
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_GE(stream.got.size(), 2u);
  std::string joined;
  for (const auto& g : stream.got) joined += g.data;
  EXPECT_EQ(joined, out->body.str()) << "the chunks are the whole answer, in order";
  EXPECT_NE(joined.find("data: 4"), std::string::npos);
  EXPECT_EQ(stream.got[0].status, 200u);
  EXPECT_EQ(stream.got[0].content_type.rfind("text/event-stream", 0), 0u);
  // The first event was forwarded while the backend was still producing the others.
  EXPECT_GE(ended - stream.got[0].at, std::chrono::milliseconds(250));
}

TEST_F(HttpHandlerTest, AnAnswerWithALengthIsNotStreamed) {
  auto handler = Make(backend_.Url());
  RecordingStream stream;
  auto out = handler->RunStreaming(Call("GET", "/big/1000"), cancel_, stream);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->body.size(), 1000u);
  EXPECT_TRUE(stream.got.empty());
  auto missing = handler->RunStreaming(Call("GET", "/status/404"), cancel_, stream);
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(stream.got.empty()) << "only a successful answer streams";
}

TEST_F(HttpHandlerTest, RequestsGoBelowTheBasePath) {
  auto handler = Make(backend_.Url() + "/v1");
  auto out = handler->Run(Call("GET", "/echo/x"), cancel_);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(json::parse(out->body.view())["path"], "/v1/echo/x");
}

TEST_F(HttpHandlerTest, AnAsynchronousTaskIsPostedToTheBackend) {
  auto handler = Make(backend_.Url());
  auto out = handler->Run(Task("{\"q\":\"hi\"}", "application/json"), cancel_);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->body, "{\"q\":\"hi\"}");
  EXPECT_EQ(out->content_type, "application/json");
  ASSERT_EQ(backend_.Count("/"), 1u);
  EXPECT_EQ(backend_.Requests()[0].method, "POST");
}

TEST_F(HttpHandlerTest, AnAsynchronousTaskFailsOnANon2xxAnswer) {
  auto server_error = Make(backend_.Url() + "/status/503")->Run(Task("x"), cancel_);
  EXPECT_EQ(server_error.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(server_error.status().message(), HasSubstr("HTTP 503"));
  EXPECT_THAT(server_error.status().message(), HasSubstr("status 503"));
  auto refused = Make(backend_.Url() + "/status/422")->Run(Task("x"), cancel_);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);  // not retryable
}

TEST_F(HttpHandlerTest, ABackendThatIsDownIsARetryableErrorNotAHang) {
  std::string url = backend_.Url();
  backend_.Stop();
  auto out = Make(url)->Run(Call("GET", "/echo"), cancel_);
  EXPECT_EQ(out.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(out.status().message(), HasSubstr("not reachable"));
  EXPECT_TRUE(IsRetryable(out.status().code()));
}

TEST_F(HttpHandlerTest, ASlowBackendRunsIntoTheTaskTimeout) {
  proto::TaskAssignment call = Call("GET", "/slow/60000");
  call.timeout_ms = 200;
  auto out = Make(backend_.Url())->Run(call, cancel_);
  EXPECT_EQ(out.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_THAT(out.status().message(), HasSubstr("200 ms"));
}

TEST_F(HttpHandlerTest, ACancelAbortsARequestInFlight) {
  auto handler = Make(backend_.Url());
  Result<HandlerOutput> out = Status::Internal("not run");
  std::thread runner([&] { out = handler->Run(Call("GET", "/slow/60000"), cancel_); });
  ASSERT_TRUE(Eventually([&] { return backend_.Count("/slow") == 1; }));
  cancel_.Cancel("client went away");
  runner.join();
  EXPECT_EQ(out.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(out.status().message(), "client went away");
}

TEST_F(HttpHandlerTest, AnAnswerOverTheLimitIsRefused) {
  HandlerOptions options;
  options.max_output_bytes = 1000;
  auto handler = Make(backend_.Url(), options);
  EXPECT_TRUE(handler->Run(Call("GET", "/big/1000"), cancel_).ok());
  auto out = handler->Run(Call("GET", "/big/1001"), cancel_);
  EXPECT_EQ(out.status().code(), StatusCode::kResourceExhausted);
}

TEST_F(HttpHandlerTest, HealthFollowsTheBackend) {
  auto handler = Make(backend_.Url());
  EXPECT_TRUE(handler->CheckHealth().ok());
  backend_.SetHealthy(false);
  Status down = handler->CheckHealth();
  EXPECT_EQ(down.code(), StatusCode::kUnavailable);
  EXPECT_THAT(down.message(), HasSubstr("503"));
  backend_.SetHealthy(true);
  EXPECT_TRUE(handler->CheckHealth().ok());
  // A health path that does not exist is not healthy.
  EXPECT_FALSE(Make(backend_.Url() + "#/nothing-here")->CheckHealth().ok());
  // The probe path comes from the root, whatever the base path.
  EXPECT_TRUE(Make(backend_.Url() + "/v1#/echo")->CheckHealth().ok());
  HandlerOptions options;
  options.health_path = "/echo";
  EXPECT_TRUE(Make(backend_.Url() + "#/nothing-here", options)->CheckHealth().ok());
  std::string url = backend_.Url();
  backend_.Stop();
  EXPECT_EQ(Make(url)->CheckHealth().code(), StatusCode::kUnavailable);
}

// ---- exec ---------------------------------------------------------------------------------------

TEST(ExecHandlerTest, PayloadOnStdinStdoutAsResult) {
  CancelToken cancel;
  HandlerOptions options;
  options.content_type = "text/plain";
  auto out = Make("exec:rev", options)->Run(Task("abc\n"), cancel);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->body, "cba\n");
  EXPECT_EQ(out->content_type, "text/plain");
}

// exec with streaming (a text/event-stream content type, or "stream": true): stdout reaches the
// caller as the command writes it; without it, only the result carries it.
TEST(ExecHandlerTest, StdoutStreamsAsWrittenWhenTheServiceStreams) {
  CancelToken cancel;
  HandlerOptions options;
  options.content_type = "text/event-stream";
  // The second event waits until the test has seen the first one: proof it streamed (no sleeps).
  const std::string dir = ::testing::TempDir();
  const std::string flag = dir + "/rma-exec-stream-" + std::to_string(getpid());
  std::remove(flag.c_str());
  const std::string command = "exec:printf 'data: 1\n\n'; while [ ! -e " + flag +
                              " ]; do sleep 0.01; done; printf 'data: 2\n\n'";
  struct Stream final : OutputStream {
    std::string flag;
    std::vector<std::string> chunks;
    uint32_t status = 0;
    std::string type;
    void Chunk(std::string_view data, uint32_t s, std::string_view t) override {
      if (chunks.empty()) {
        status = s;
        type = std::string(t);
        std::ofstream(flag).put('x');  // let the command go on
      }
      chunks.emplace_back(data);
    }
  } stream;
  stream.flag = flag;
  auto out = Make(command, options)->RunStreaming(Task(""), cancel, stream);
  std::remove(flag.c_str());
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->body, "data: 1\n\ndata: 2\n\n");
  ASSERT_GE(stream.chunks.size(), 2u);
  EXPECT_EQ(stream.chunks[0], "data: 1\n\n");
  EXPECT_EQ(stream.status, 200u);
  EXPECT_EQ(stream.type, "text/event-stream");
  std::string joined;
  for (const std::string& c : stream.chunks) joined += c;
  EXPECT_EQ(joined, out->body.str());

  // Not a streaming service: the same call sends no chunk.
  HandlerOptions plain;
  Stream quiet;
  auto whole = Make("exec:printf abc", plain)->RunStreaming(Task(""), cancel, quiet);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->body, "abc");
  EXPECT_TRUE(quiet.chunks.empty());
  // Switched on explicitly for another content type.
  plain.stream_output = true;
  auto on = Make("exec:printf abc", plain)->RunStreaming(Task(""), cancel, quiet);
  ASSERT_TRUE(on.ok());
  EXPECT_EQ(quiet.chunks, std::vector<std::string>{"abc"});
}

TEST(ExecHandlerTest, SeesTheTaskInItsEnvironment) {
  CancelToken cancel;
  proto::TaskAssignment t = Task("", "text/csv");
  t.service = "envsvc";
  auto out =
      Make("exec:echo $RMA_TASK_ID $RMA_ATTEMPT $RMA_SERVICE $RMA_CONTENT_TYPE")->Run(t, cancel);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->body, "42 2 envsvc text/csv\n");
}

TEST(ExecHandlerTest, ANonZeroExitIsAnErrorWithTheStderrTail) {
  CancelToken cancel;
  auto out = Make("exec:echo 'cannot parse input' >&2; exit 4")->Run(Task("x"), cancel);
  EXPECT_EQ(out.status().code(), StatusCode::kInternal);
  EXPECT_THAT(out.status().message(), HasSubstr("status 4"));
  EXPECT_THAT(out.status().message(), HasSubstr("cannot parse input"));
}

TEST(ExecHandlerTest, TimeoutAndOutputLimitAreErrors) {
  CancelToken cancel;
  proto::TaskAssignment slow = Task("");
  slow.timeout_ms = 100;
  HandlerOptions options;
  options.kill_grace = Ms(100);
  auto timed_out = Make("exec:sleep 300", options)->Run(slow, cancel);
  EXPECT_EQ(timed_out.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_THAT(timed_out.status().message(), HasSubstr("process group was killed"));
  options.max_output_bytes = 10;
  auto big = Make("exec:echo 0123456789abcdef", options)->Run(Task(""), cancel);
  EXPECT_EQ(big.status().code(), StatusCode::kResourceExhausted);
}

TEST(ExecHandlerTest, ACancelKillsTheCommand) {
  CancelToken cancel;
  cancel.Cancel("task cancelled");
  auto out = Make("exec:sleep 300")->Run(Task(""), cancel);
  EXPECT_EQ(out.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(out.status().message(), "task cancelled");
}

// A backend that keeps its connections open (every real one: vLLM, uvicorn, nginx): it counts the
// connections it accepted and answers every request on one with "ok", Content-Length framed.
class KeepAliveBackend {
 public:
  KeepAliveBackend() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        listen(listen_fd_, 16) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "could not listen";
    }
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~KeepAliveBackend() {
    shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    // The worker keeps its connections open in its cache: end them from this side.
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    for (std::thread& t : servers_) t.join();
    for (int fd : fds_) close(fd);
    close(listen_fd_);
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_.load(); }

 private:
  void Accept() {
    for (;;) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      ++accepted_;
      fds_.push_back(fd);
      servers_.emplace_back([fd] { Serve(fd); });
    }
  }
  // Answers requests until the peer closes; requests here carry no body.
  static void Serve(int fd) {
    std::string in;
    char buf[4096];
    for (;;) {
      size_t end;
      while ((end = in.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) return;
        in.append(buf, static_cast<size_t>(n));
      }
      in.erase(0, end + 4);
      const std::string answer =
          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
      if (write(fd, answer.data(), answer.size()) != static_cast<ssize_t>(answer.size())) return;
    }
  }
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  std::vector<int> fds_;              // closed by the destructor, after the threads end
  std::vector<std::thread> servers_;  // touched by the acceptor only, joined after it
};

// Calls reuse the worker's open connections to a backend, whichever executor thread runs them: a
// new TCP connection per task was a handshake added to every call's first byte.
TEST(HttpHandlerConnectionsTest, CallsOnAnyThreadReuseAnOpenConnectionToTheBackend) {
  KeepAliveBackend backend;
  auto handler = Make(backend.Url());
  CancelToken cancel;
  for (int i = 0; i < 3; ++i) {
    std::thread caller([&] {
      auto out = handler->Run(Call("GET", "/x"), cancel);
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      EXPECT_EQ(out->body.view(), "ok");
    });
    caller.join();
  }
  EXPECT_EQ(backend.accepted(), 1);
}

}  // namespace
}  // namespace rma::worker
