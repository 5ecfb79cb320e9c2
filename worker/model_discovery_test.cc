// Model discovery and configuration (docs/configuration.md, "Models"): the worker reads a service's
// models from its configuration (file key `models`, flag --model) or, for an http backend
// configured without any, from the backend's GET /v1/models in OpenAI's list format, bounded in
// size, count and time; a backend without such a list serves no named model; a change in the list
// changes the manifest the session sends. The backend is ModelServer below: a tiny one-thread HTTP
// server on 127.0.0.1 with canned answers per path.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "protocol/names.h"
#include "worker/config.h"
#include "worker/handler.h"
#include "worker/http_handler.h"
#include "worker/monitor.h"

namespace rma::worker {
namespace {

// One thread: accepts a connection, reads the request head, answers from `routes_` (404 for any
// other path) and closes. A route with status 0 never answers (the connection is held until the
// server stops), to test time bounds.
class ModelServer {
 public:
  struct Route {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
  };

  ModelServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(listen_fd_, 16), 0);
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    EXPECT_EQ(pipe2(stop_, O_CLOEXEC), 0);
    Set("/health", {200, "text/plain", "ok"});
    thread_ = std::thread([this] { Loop(); });
  }
  ~ModelServer() {
    (void)!write(stop_[1], "x", 1);
    thread_.join();
    for (int fd : held_) close(fd);
    close(listen_fd_);
    close(stop_[0]);
    close(stop_[1]);
  }

  std::string Url(const std::string& base = "") const {
    return "http://127.0.0.1:" + std::to_string(port_) + base;
  }
  void Set(const std::string& path, Route route) {
    std::lock_guard<std::mutex> lock(mu_);
    routes_[path] = std::move(route);
  }
  void SetModels(const std::vector<std::string>& ids, const std::string& path = "/v1/models") {
    std::string body = R"({"object":"list","data":[)";
    for (size_t i = 0; i < ids.size(); ++i) {
      body += (i ? "," : "") + std::string(R"({"id":")") + ids[i] + R"(","object":"model"})";
    }
    Set(path, {200, "application/json", body + "]}"});
  }
  size_t Count(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return counts_[path];
  }

 private:
  void Loop() {
    for (;;) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (poll(fds, 2, -1) < 0) continue;
      if (fds[1].revents != 0) return;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) Serve(fd);
    }
  }
  void Serve(int fd) {
    std::string head;
    char buf[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 5000) <= 0) break;
      ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) break;
      head.append(buf, static_cast<size_t>(n));
    }
    const size_t sp1 = head.find(' ');
    const size_t sp2 = head.find(' ', sp1 + 1);
    const std::string path = sp1 == std::string::npos ? "" : head.substr(sp1 + 1, sp2 - sp1 - 1);
    Route route{404, "text/plain", "not found"};
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++counts_[path];
      if (auto it = routes_.find(path); it != routes_.end()) route = it->second;
    }
    if (route.status == 0) {
      held_.push_back(fd);
      return;
    }
    std::string answer = "HTTP/1.1 " + std::to_string(route.status) +
                         " X\r\nContent-Type: " + route.content_type +
                         "\r\nContent-Length: " + std::to_string(route.body.size()) +
                         "\r\nConnection: close\r\n\r\n" + route.body;
    for (size_t done = 0; done < answer.size();) {
      ssize_t n = write(fd, answer.data() + done, answer.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    close(fd);
  }

  int listen_fd_ = -1;
  int stop_[2] = {-1, -1};
  int port_ = 0;
  std::vector<int> held_;  // server thread only
  std::mutex mu_;
  std::map<std::string, Route> routes_;
  std::map<std::string, size_t> counts_;
  std::thread thread_;
};

std::shared_ptr<Handler> Http(const std::string& spec, Duration timeout = Seconds(2)) {
  HandlerOptions options;
  options.health_timeout = timeout;
  options.connect_timeout = timeout;
  auto handler = MakeHandler(spec, options);
  EXPECT_TRUE(handler.ok()) << handler.status().ToString();
  return handler.ok() ? *handler : nullptr;
}

TEST(ModelListTest, ReadsTheIdsOfAnOpenAiList) {
  auto models = ParseModelList(
      R"({"object":"list","data":[{"id":"qwen","object":"model"},{"id":"llama3:8b"},)"
      R"({"id":"qwen"},{"id":"has space"},{"id":7},{"name":"no-id"},"not-an-object"]})");
  ASSERT_TRUE(models.ok()) << models.status().ToString();
  EXPECT_EQ(*models, (std::vector<std::string>{"llama3:8b", "qwen"}));
  EXPECT_TRUE(ParseModelList(R"({"object":"list","data":[]})")->empty());

  EXPECT_EQ(ParseModelList("<html>nope</html>").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseModelList(R"({"models":["a"]})").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseModelList(R"(["a"])").status().code(), StatusCode::kInvalidArgument);
}

TEST(ModelListTest, KeepsAtMostTheProtocolsCountOfModels) {
  std::string body = R"({"data":[)";
  for (int i = 0; i < 1000; ++i)
    body += std::string(i ? "," : "") + R"({"id":"m)" + std::to_string(i) + "\"}";
  auto models = ParseModelList(body + "]}");
  ASSERT_TRUE(models.ok());
  EXPECT_EQ(models->size(), proto::kMaxModelsPerService);
}

TEST(ModelListTest, TheListIsBelowTheBaseAndAV1BaseIsNotDoubled) {
  EXPECT_EQ(ModelsUrl(*ParseHttpSpec("http://127.0.0.1:9")), "http://127.0.0.1:9/v1/models");
  EXPECT_EQ(ModelsUrl(*ParseHttpSpec("http://127.0.0.1:9/v1")), "http://127.0.0.1:9/v1/models");
  EXPECT_EQ(ModelsUrl(*ParseHttpSpec("http://127.0.0.1:9/api/")),
            "http://127.0.0.1:9/api/v1/models");
}

TEST(ModelDiscoveryTest, AnHttpBackendIsAskedForItsModels) {
  ModelServer server;
  server.SetModels({"mistral", "llama"});
  auto handler = Http(server.Url());
  ASSERT_TRUE(handler->lists_models());
  auto models = handler->ListModels();
  ASSERT_TRUE(models.ok()) << models.status().ToString();
  EXPECT_EQ(*models, (std::vector<std::string>{"llama", "mistral"}));

  // A base that already ends in /v1 asks /v1/models, not /v1/v1/models.
  auto v1 = Http(server.Url("/v1"));
  ASSERT_TRUE(v1->ListModels().ok());
  EXPECT_EQ(server.Count("/v1/models"), 2u);
  EXPECT_EQ(server.Count("/v1/v1/models"), 0u);
}

TEST(ModelDiscoveryTest, ABackendWithoutAModelListServesNoNamedModel) {
  ModelServer server;
  auto handler = Http(server.Url());
  EXPECT_EQ(handler->ListModels().status().code(), StatusCode::kNotFound);  // 404
  server.Set("/v1/models", {200, "text/html", "<html>hello</html>"});
  EXPECT_EQ(handler->ListModels().status().code(), StatusCode::kInvalidArgument);
  // Larger than any real list: refused without reading it all.
  server.Set("/v1/models", {200, "application/json", std::string(3u << 20, ' ')});
  EXPECT_EQ(handler->ListModels().status().code(), StatusCode::kInvalidArgument);
  // A backend in trouble says nothing about its models.
  server.Set("/v1/models", {503, "text/plain", "busy"});
  EXPECT_EQ(handler->ListModels().status().code(), StatusCode::kUnavailable);
  // Builtins and commands have no model list.
  EXPECT_FALSE(MakeHandler("builtin:echo").value()->lists_models());
}

TEST(ModelDiscoveryTest, AModelListThatNeverComesIsCutOffByTheProbeTimeout) {
  ModelServer server;
  server.Set("/v1/models", {0, "", ""});
  auto handler = Http(server.Url(), Ms(300));
  const auto start = std::chrono::steady_clock::now();
  auto models = handler->ListModels();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(models.status().code(), StatusCode::kDeadlineExceeded) << models.status().ToString();
  EXPECT_LT(took, std::chrono::seconds(3));
}

TEST(ModelDiscoveryTest, TheMonitorAdvertisesDiscoveredModelsAndFollowsTheirChanges) {
  ModelServer server;
  server.SetModels({"llama"});
  ModelServer configured_backend;
  Monitor monitor({{"llm", server.Url(), Http(server.Url())},
                   {"fixed", configured_backend.Url(), Http(configured_backend.Url()), {"b", "a"}}},
                  MonitorOptions{Seconds(60), 1}, nullptr);
  monitor.RunRound();
  std::vector<proto::ServiceInfo> manifest = monitor.Take().manifest;
  ASSERT_EQ(manifest.size(), 2u);
  EXPECT_EQ(manifest[0].models, (std::vector<std::string>{"llama"}));
  EXPECT_EQ(manifest[1].models, (std::vector<std::string>{"a", "b"})) << "configured, sorted";
  EXPECT_EQ(configured_backend.Count("/v1/models"), 0u) << "configured models are not asked for";

  // Every round asks again: a model loaded since is in the next manifest.
  server.SetModels({"llama", "qwen"});
  monitor.RunRound();
  EXPECT_EQ(monitor.Take().manifest[0].models, (std::vector<std::string>{"llama", "qwen"}));
  // The list goes away (404): no models, the service stays advertised.
  server.Set("/v1/models", {404, "text/plain", "gone"});
  monitor.RunRound();
  manifest = monitor.Take().manifest;
  ASSERT_EQ(manifest.size(), 2u);
  EXPECT_TRUE(manifest[0].models.empty());
  EXPECT_EQ(server.Count("/v1/models"), 3u);
}

TEST(ModelDiscoveryTest, TheTrackerKeepsModelsOverATransientErrorAndReportsEachKindOnce) {
  ModelServer server;
  ManifestTracker tracker({{"llm", server.Url(), Http(server.Url())}}, 1);
  ASSERT_TRUE(tracker.discovers_models(0));
  ASSERT_FALSE(tracker.Observe(0, Status::Ok()) == std::nullopt);
  EXPECT_TRUE(tracker.ObserveModels(0, std::vector<std::string>{"a"}).has_value());
  EXPECT_FALSE(tracker.ObserveModels(0, std::vector<std::string>{"a"}).has_value());
  const Result<std::vector<std::string>> timeout = Status::DeadlineExceeded("slow");
  EXPECT_TRUE(tracker.ObserveModels(0, timeout).has_value());
  EXPECT_FALSE(tracker.ObserveModels(0, timeout).has_value()) << "said once";
  EXPECT_EQ(tracker.Advertised()[0].models, (std::vector<std::string>{"a"}));
  const Result<std::vector<std::string>> missing = Status::NotFound("404");
  EXPECT_TRUE(tracker.ObserveModels(0, missing).has_value());
  EXPECT_FALSE(tracker.ObserveModels(0, missing).has_value()) << "said once";
  EXPECT_TRUE(tracker.Advertised()[0].models.empty());
}

TEST(ModelConfigTest, TheFileAndTheFlagNameAServicesModels) {
  auto c = ParseWorkerConfig(
      R"({"services": {"llm": {"handler": "http://127.0.0.1:11434", "models": ["llama3:8b", "qwen", "qwen"]}}})");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->services[0].models, (std::vector<std::string>{"llama3:8b", "qwen"}));

  auto bad =
      ParseWorkerConfig(R"({"services": {"llm": {"handler": "builtin:echo", "models": ["a b"]}}})");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("services.llm.models"), std::string::npos)
      << bad.status().ToString();
  EXPECT_FALSE(
      ParseWorkerConfig(R"({"services": {"llm": {"handler": "builtin:echo", "models": "a"}}})")
          .ok());
  std::string many = R"({"services": {"llm": {"handler": "builtin:echo", "models": [)";
  for (size_t i = 0; i <= proto::kMaxModelsPerService; ++i) {
    many += (i ? "," : "") + std::string("\"m") + std::to_string(i) + "\"";
  }
  EXPECT_FALSE(ParseWorkerConfig(many + "]}}}").ok()) << "257 models";

  auto flag = ParseModelFlag("llm=org/model:tag");
  ASSERT_TRUE(flag.ok());
  EXPECT_EQ(flag->first, "llm");
  EXPECT_EQ(flag->second, "org/model:tag");
  EXPECT_FALSE(ParseModelFlag("llm").ok());
  EXPECT_FALSE(ParseModelFlag("=m").ok());
  EXPECT_FALSE(ParseModelFlag("bad name=m").ok());
  EXPECT_FALSE(ParseModelFlag("llm=two words").ok());
}

}  // namespace
}  // namespace rma::worker
