// The OpenAI-compatible front door, end to end with a client nobody here wrote: the official
// `openai` npm SDK (tests/openai/sdk_check.mjs) points its baseURL at a real rma-gateway in front
// of a real rma-broker and rma-worker, whose backend is TestBackend's OpenAI routes (tokens 50 ms
// apart). The worker discovers the backend's models from its /v1/models; the gateway routes by the
// body's `model`. Checked: every SDK call (models, chat and completions with and without streaming,
// embeddings, an unknown model's 404 model_not_found), tokens reaching the SDK while the backend
// still generates, an aborted stream stopping the backend within 1 s (CLOCK_MONOTONIC on both
// sides), OpenAI-shaped errors, failover to another provider before the first byte, and the
// per-model metrics.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <map>
#include <sstream>

#include "tests/openai/sdk_run.h"
#include "tests/support/cluster.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/test_backend.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int64_t kTokenDelayMs = 50;

class OpenAiGatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TestBackend::Options o;
    o.token_delay_ms = kTokenDelayMs;
    backend_ = std::make_unique<TestBackend>(o);
    cluster_ = std::make_unique<Cluster>();
    cluster_->StartWorker("gpu-box", {"--service", "vllm=" + backend_->Url(), "--slots", "4"});
    ASSERT_TRUE(WaitForModel("test-model")) << cluster_->Logs();
  }
  bool WaitForModel(const std::string& id) {
    return WaitUntil(
        [&] {
          json list = HttpGet(cluster_->Url("/v1/models")).Json();
          if (!list.is_object() || !list["data"].is_array()) return false;
          for (const json& m : list["data"])
            if (m.value("id", "") == id) return true;
          return false;
        },
        20s);
  }
  Cluster& c() { return *cluster_; }

  std::unique_ptr<TestBackend> backend_;
  std::unique_ptr<Cluster> cluster_;
};

TEST_F(OpenAiGatewayTest, TheOfficialSdkChatsStreamsAndEmbedsThroughThePool) {
  SdkRun run = RunSdkCheck(c().Url("/v1"), {"--tokens", "8"});
  ASSERT_EQ(run.exit_code, 0) << run.output << c().Logs();
  for (const char* check : {"models_list", "chat", "chat_stream", "chat_stream_abort", "completion",
                            "completion_stream", "embeddings", "error"}) {
    ASSERT_TRUE(run.checks.count(check)) << check << "\n" << run.output;
    EXPECT_TRUE(run.checks[check].value("ok", false)) << run.checks[check].dump();
  }
  // Tokens reached the SDK as the backend produced them, not in one piece at the end.
  const json& stream = run.checks["chat_stream"];
  EXPECT_EQ(stream.value("chunks", 0), 8) << stream.dump();
  EXPECT_GE(stream.value("last_chunk_ms", 0.0) - stream.value("first_chunk_ms", 0.0),
            0.5 * 7 * kTokenDelayMs)
      << stream.dump();
  // The aborted stream stopped the backend within 1 s of the SDK going away: the backend noticed,
  // and its last token was written less than 1 s after the client read its first (and left).
  ASSERT_TRUE(backend_->WaitForAbortedStreams(1, 10s)) << c().Logs();
  double abort_mono = -1;
  for (const json& chunk : run.chunks) {
    if (chunk.value("chunk", "") == "chat_stream_abort") {
      abort_mono = chunk.value("mono_ms", -1.0);
      break;
    }
  }
  ASSERT_GT(abort_mono, 0) << run.output;
  bool found = false;
  for (const TestBackend::Stream& s : backend_->Streams()) {
    if (!s.aborted || s.chunk_times.empty()) continue;
    found = true;
    EXPECT_LT(MonoMs(s.chunk_times.back()) - abort_mono, 1000.0)
        << "the backend kept generating after the client left";
    EXPECT_LT(s.chunk_times.size(), 100u) << "the backend was not stopped";
  }
  EXPECT_TRUE(found);
  // Per-model figures on /metrics: requests, tokens from the usage, time to first byte.
  HttpResponse metrics = HttpGet(c().Url("/metrics"));
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(
      metrics.body.find("rma_gateway_openai_requests_total{model=\"test-model\",code=\"200\"}"),
      std::string::npos);
  EXPECT_NE(metrics.body.find("rma_gateway_openai_tokens_total{model=\"test-model\",kind="
                              "\"completion\"}"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("rma_gateway_openai_first_byte_seconds_count{model=\"test-model\"}"),
            std::string::npos);
}

TEST_F(OpenAiGatewayTest, ErrorsHaveOpenAisShape) {
  HttpResponse bad = HttpCall("POST", c().Url("/v1/chat/completions"), "{not json",
                              {"Content-Type: application/json"});
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.Json()["error"]["type"], "invalid_request_error") << bad.body;
  HttpResponse no_model = HttpCall("POST", c().Url("/v1/chat/completions"), R"({"messages":[]})",
                                   {"Content-Type: application/json"});
  EXPECT_EQ(no_model.status, 400);
  EXPECT_TRUE(no_model.Json()["error"]["message"].is_string()) << no_model.body;
  HttpResponse unknown =
      HttpCall("POST", c().Url("/v1/chat/completions"), R"({"model":"nobody-serves-this"})",
               {"Content-Type: application/json"});
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_EQ(unknown.Json()["error"]["code"], "model_not_found") << unknown.body;
  // A model that was served but has no live provider now: 503.
  c().worker("gpu-box").Kill();
  ASSERT_TRUE(WaitUntil(
      [&] {
        json list = HttpGet(c().Url("/v1/models")).Json();
        return list.is_object() && list["data"].is_array() && list["data"].empty();
      },
      20s))
      << c().Logs();
  HttpResponse gone = HttpCall("POST", c().Url("/v1/chat/completions"), R"({"model":"test-model"})",
                               {"Content-Type: application/json"});
  EXPECT_EQ(gone.status, 503) << gone.body;
  EXPECT_EQ(gone.Json()["error"]["type"], "server_error") << gone.body;
}

TEST_F(OpenAiGatewayTest, AProviderThatFailsBeforeTheFirstByteIsReplacedByAnother) {
  // A second provider of the same model whose backend goes away after it was found healthy (its
  // next probe is far off): calls sent to it fail before any byte and must be answered by the
  // healthy one instead.
  auto doomed = std::make_unique<TestBackend>();
  c().StartWorker("broken-box", {"--service", "vllm=" + doomed->Url(), "--model", "vllm=test-model",
                                 "--health-interval-ms", "600000", "--slots", "4"});
  ASSERT_TRUE(c().WaitForLiveWorkers(2, 20s)) << c().Logs();
  doomed.reset();  // connections to it are refused from now on
  int replaced = 0;
  for (int i = 0; i < 8; ++i) {
    HttpResponse r = HttpCall("POST", c().Url("/v1/chat/completions"),
                              R"({"model":"test-model","max_tokens":2,"messages":[]})",
                              {"Content-Type: application/json"});
    ASSERT_EQ(r.status, 200) << i << ": " << r.body << c().Logs();
    EXPECT_EQ(r.Header("x-rma-worker-id"), "gpu-box");
    json task = HttpGet(c().Url("/api/tasks/" + r.Header("x-rma-task-id"))).Json();
    if (task.value("attempts", 0) > 1) ++replaced;
  }
  EXPECT_GT(replaced, 0) << "no call reached the broken provider: the test proved nothing";
}

}  // namespace
}  // namespace rma::testing
