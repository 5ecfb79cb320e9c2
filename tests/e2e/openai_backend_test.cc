// OpenAI's wire format, proven with OpenAI's own client: tests/openai/sdk_check.mjs runs the
// official `openai` npm SDK (models.list, chat and legacy completions with and without streaming,
// embeddings in base64 and float, an unknown model's NotFoundError) against TestBackend's OpenAI
// routes directly, and these tests read its one-JSON-object-per-line output. They also prove what
// the gateway's tests will lean on: streamed tokens reach the client one by one while the backend
// is still generating (by the chunks' CLOCK_MONOTONIC timestamps on both sides, no sleeps), a
// client that aborts a stream is noticed by the backend, and GET /v1/models follows SetModels.
// The same script is meant to be pointed at rma-gateway.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <sstream>

#include "tests/openai/sdk_run.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/test_backend.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int64_t kTokenDelayMs = 50;

std::string Tokens(int n) {
  std::string text;
  for (int i = 0; i < n; ++i) text += (i == 0 ? "tok" : " tok") + std::to_string(i);
  return text;
}

// The finished streams the backend wrote for `path`, oldest first.
std::vector<TestBackend::Stream> Finished(const TestBackend& backend, const std::string& path) {
  std::vector<TestBackend::Stream> out;
  for (const TestBackend::Stream& s : backend.Streams()) {
    if (s.path == path && s.finished) out.push_back(s);
  }
  return out;
}

TEST(OpenAiBackendTest, TheOfficialSdkAcceptsEveryRouteAndGetsTokensWhileTheyAreGenerated) {
  TestBackend::Options options;
  options.models = {"rma-model", "other-model"};
  options.token_delay_ms = kTokenDelayMs;
  TestBackend backend(options);
  constexpr int kTokens = 6;

  SdkRun run = RunSdkCheck(backend.Url() + "/v1",
                           {"--model", "rma-model", "--tokens", std::to_string(kTokens)});
  ASSERT_EQ(run.exit_code, std::optional<int>(0)) << run.output;
  ASSERT_TRUE(run.done.value("ok", false)) << run.output;
  for (const char* name : {"models_list", "chat", "chat_stream", "chat_stream_abort", "completion",
                           "completion_stream", "embeddings", "error"}) {
    ASSERT_TRUE(run.checks.count(name)) << name << " did not run\n" << run.output;
    EXPECT_TRUE(run.checks[name].value("ok", false)) << name << ": " << run.checks[name].dump();
  }
  EXPECT_EQ(run.checks["models_list"]["models"], json({"rma-model", "other-model"}));
  EXPECT_EQ(run.checks["chat"]["text"], Tokens(kTokens));
  EXPECT_EQ(run.checks["error"]["plain"]["status"], 404);
  EXPECT_EQ(run.checks["error"]["stream"]["code"], "model_not_found");

  for (const char* name : {"chat_stream", "completion_stream"}) {
    SCOPED_TRACE(name);
    const json& c = run.checks[name];
    EXPECT_EQ(c["chunks"], kTokens);
    EXPECT_EQ(c["text"], Tokens(kTokens));
    // One line per token, in order, each with the token's own delta.
    std::vector<json> chunks;
    std::copy_if(run.chunks.begin(), run.chunks.end(), std::back_inserter(chunks),
                 [&](const json& j) { return j["chunk"] == name; });
    ASSERT_EQ(chunks.size(), static_cast<size_t>(kTokens)) << run.output;
    for (int i = 0; i < kTokens; ++i) {
      EXPECT_EQ(chunks[i]["delta"], (i == 0 ? "tok" : " tok") + std::to_string(i));
    }
    // The client saw the tokens spread over the generation, not in one piece at the end: the
    // backend waits kTokenDelayMs before each, so the first arrived at least (kTokens - 1) delays
    // before the last (half of that, for a loaded machine that bunches a few reads).
    const double spread = c["last_chunk_ms"].get<double>() - c["first_chunk_ms"].get<double>();
    EXPECT_GE(spread, (kTokens - 1) * kTokenDelayMs / 2.0) << c.dump();
  }

  // The backend's side of chat_stream: its own write times, on the clock node's mono_ms reads.
  // The client had the first token before the backend wrote its last one, i.e. while it was
  // still generating.
  std::vector<TestBackend::Stream> chat = Finished(backend, "/v1/chat/completions");
  ASSERT_EQ(chat.size(), 1u) << "one finished chat stream (the aborted one is not)";
  EXPECT_EQ(chat[0].model, "rma-model");
  ASSERT_EQ(chat[0].chunk_times.size(), static_cast<size_t>(kTokens));
  const double first_arrival = run.checks["chat_stream"]["first_chunk_mono_ms"].get<double>();
  EXPECT_GE(first_arrival, MonoMs(chat[0].chunk_times.front()));
  EXPECT_LT(first_arrival, MonoMs(chat[0].chunk_times.back()))
      << "the first token reached the SDK only after the backend had written the last";
  EXPECT_GE(MonoMs(chat[0].chunk_times.back()) - MonoMs(chat[0].chunk_times.front()),
            (kTokens - 1) * (kTokenDelayMs - 1.0));
  EXPECT_EQ(Finished(backend, "/v1/completions").size(), 1u);

  // chat_stream_abort read one token and aborted: the backend noticed and stopped generating.
  ASSERT_TRUE(backend.WaitForAbortedStreams(1, 10s));
  EXPECT_EQ(backend.AbortedStreams(), 1u);
  for (const TestBackend::Stream& s : backend.Streams()) {
    if (!s.aborted) continue;
    EXPECT_EQ(s.path, "/v1/chat/completions");
    EXPECT_FALSE(s.finished);
    EXPECT_LT(s.chunk_times.size(), 1000u) << "the script asks for 1000 tokens and reads one";
  }
}

TEST(OpenAiBackendTest, ModelsListFollowsSetModels) {
  TestBackend backend;
  SdkRun before = RunSdkCheck(backend.Url() + "/v1", {"--checks", "models_list"});
  ASSERT_EQ(before.exit_code, std::optional<int>(0)) << before.output;
  EXPECT_EQ(before.checks["models_list"]["models"], json({"test-model"}));

  backend.SetModels({"new-model", "test-model"});
  SdkRun after =
      RunSdkCheck(backend.Url() + "/v1", {"--checks", "models_list,chat", "--model", "new-model"});
  ASSERT_EQ(after.exit_code, std::optional<int>(0)) << after.output;
  EXPECT_EQ(after.checks["models_list"]["models"], json({"new-model", "test-model"}));
  EXPECT_EQ(after.checks["chat"]["text"], Tokens(8)) << "max_tokens defaults to 8 in the script";

  // The program's route for the same, for tests that run rma-test-backend as a process.
  HttpResponse set = HttpPostJson(backend.Url() + "/control/models", json({"third"}));
  ASSERT_EQ(set.status, 200) << set.body;
  EXPECT_EQ(backend.Models(), std::vector<std::string>({"third"}));
  SdkRun third =
      RunSdkCheck(backend.Url() + "/v1", {"--checks", "models_list", "--model", "third"});
  EXPECT_EQ(third.exit_code, std::optional<int>(0)) << third.output;
}

TEST(OpenAiBackendTest, TheTokenDelayHeaderSpreadsAStreamAndAFailedCheckFailsTheScript) {
  TestBackend backend;  // no delay of its own
  constexpr int kTokens = 4;
  SdkRun run = RunSdkCheck(backend.Url() + "/v1",
                           {"--checks", "chat_stream", "--tokens", std::to_string(kTokens),
                            "--token-delay-ms", std::to_string(kTokenDelayMs)});
  ASSERT_EQ(run.exit_code, std::optional<int>(0)) << run.output;
  const json& c = run.checks["chat_stream"];
  EXPECT_EQ(c["chunks"], kTokens);
  EXPECT_GE(c["last_chunk_ms"].get<double>() - c["first_chunk_ms"].get<double>(),
            (kTokens - 1) * kTokenDelayMs / 2.0)
      << c.dump();
  ASSERT_EQ(backend.Requests().size(), 1u);
  EXPECT_EQ(backend.Requests()[0].headers["x-test-token-delay-ms"], std::to_string(kTokenDelayMs));

  // Expecting a model the backend does not list: that check fails, and so does the script.
  SdkRun wrong = RunSdkCheck(backend.Url() + "/v1",
                             {"--checks", "models_list,embeddings", "--model", "unlisted-model"});
  EXPECT_EQ(wrong.exit_code, std::optional<int>(1)) << wrong.output;
  EXPECT_FALSE(wrong.checks["models_list"].value("ok", true)) << wrong.output;
  EXPECT_TRUE(wrong.checks["embeddings"].value("ok", false)) << wrong.output;
  EXPECT_EQ(wrong.done["failed"], json({"models_list"}));
}

// The exact bytes of a streamed chat completion, as OpenAI sends them: `data: {json}\n\n` events,
// the usage chunk with empty choices, then `data: [DONE]`.
TEST(OpenAiBackendTest, AStreamIsServerSentEventsEndingWithUsageAndDone) {
  TestBackend backend;
  HttpResponse r = HttpPostJson(backend.Url() + "/v1/chat/completions",
                                {{"model", "m"},
                                 {"max_tokens", 2},
                                 {"stream", true},
                                 {"stream_options", {{"include_usage", true}}},
                                 {"messages", {{{"role", "user"}, {"content", "two words"}}}}});
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.Header("content-type").rfind("text/event-stream", 0), 0u);
  std::vector<std::string> events;
  for (size_t pos = 0; pos < r.body.size();) {
    size_t end = r.body.find("\n\n", pos);
    ASSERT_NE(end, std::string::npos) << r.body;
    events.push_back(r.body.substr(pos, end - pos));
    pos = end + 2;
  }
  ASSERT_EQ(events.size(), 5u) << r.body;  // 2 tokens, finish, usage, [DONE]
  EXPECT_EQ(events.back(), "data: [DONE]");
  std::vector<json> chunks;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    ASSERT_EQ(events[i].rfind("data: ", 0), 0u) << events[i];
    chunks.push_back(json::parse(events[i].substr(6)));
    EXPECT_EQ(chunks[i]["object"], "chat.completion.chunk");
    EXPECT_EQ(chunks[i]["model"], "m");
    EXPECT_EQ(chunks[i]["id"], chunks[0]["id"]);
  }
  EXPECT_EQ(chunks[0]["choices"][0]["delta"], json({{"role", "assistant"}, {"content", "tok0"}}));
  EXPECT_EQ(chunks[1]["choices"][0]["delta"], json({{"content", " tok1"}}));
  EXPECT_TRUE(chunks[1]["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(chunks[1]["usage"].is_null());
  EXPECT_EQ(chunks[2]["choices"][0]["delta"], json::object());
  EXPECT_EQ(chunks[2]["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(chunks[3]["choices"], json::array());
  EXPECT_EQ(chunks[3]["usage"],
            json({{"prompt_tokens", 2}, {"completion_tokens", 2}, {"total_tokens", 4}}));

  // Not JSON, or no model: 400 in OpenAI's error shape.
  HttpResponse bad = HttpCall("POST", backend.Url() + "/v1/completions", "{");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.Json()["error"]["type"], "invalid_request_error") << bad.body;
}

}  // namespace
}  // namespace rma::testing
