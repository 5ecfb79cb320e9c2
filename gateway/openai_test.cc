// Unit tests of the OpenAI front door's pure parts: request checks, OpenAI's error shape, usage
// from whole and streamed answers, the model list, and the bounded per-model metrics.
#include "gateway/openai.h"

#include <gtest/gtest.h>

namespace rma::gateway {
namespace {

using nlohmann::json;

TEST(OpenAiTest, ARequestNeedsAJsonObjectWithAModel) {
  auto ok = ParseOpenAiRequest(R"({"model": "m1", "stream": true, "messages": []})");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->model, "m1");
  EXPECT_TRUE(ok->stream);
  EXPECT_FALSE(ParseOpenAiRequest(R"({"model": "m1"})")->stream);
  EXPECT_FALSE(ParseOpenAiRequest("{not json").ok());
  EXPECT_FALSE(ParseOpenAiRequest("[1, 2]").ok());
  EXPECT_FALSE(ParseOpenAiRequest(R"({"messages": []})").ok());
  EXPECT_FALSE(ParseOpenAiRequest(R"({"model": ""})").ok());
  EXPECT_FALSE(ParseOpenAiRequest(R"({"model": 7})").ok());
  EXPECT_FALSE(ParseOpenAiRequest(json{{"model", std::string(257, 'm')}}.dump()).ok());
}

TEST(OpenAiTest, ErrorsTakeOpenAisShapeAndKeepStatusAndHeaders) {
  HttpReply mine;
  mine.status = 404;
  mine.body = R"({"error": "model 'x' is not served by this pool", "code": "not_found"})";
  mine.headers.emplace_back("Retry-After", "1");
  HttpReply r = ToOpenAiError(mine);
  EXPECT_EQ(r.status, 404);
  json body = json::parse(r.body);
  EXPECT_EQ(body["error"]["message"], "model 'x' is not served by this pool");
  EXPECT_EQ(body["error"]["code"], "model_not_found");
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
  EXPECT_TRUE(body["error"]["param"].is_null());
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(json::parse(OpenAiErrorReply(503, "busy", "unavailable").body)["error"]["type"],
            "server_error");
  EXPECT_EQ(json::parse(OpenAiErrorReply(401, "key", "").body)["error"]["type"],
            "authentication_error");
  EXPECT_TRUE(json::parse(OpenAiErrorReply(400, "bad", "").body)["error"]["code"].is_null());
}

TEST(OpenAiTest, UsageComesFromTheBodyOrTheStreamsLastUsageEvent) {
  auto whole = UsageOf(R"({"usage": {"prompt_tokens": 3, "completion_tokens": 8}})", false);
  ASSERT_TRUE(whole);
  EXPECT_EQ(whole->prompt_tokens, 3u);
  EXPECT_EQ(whole->completion_tokens, 8u);
  const std::string stream =
      "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\n"
      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n"
      "data: [DONE]\n\n";
  auto streamed = UsageOf(stream, true);
  ASSERT_TRUE(streamed);
  EXPECT_EQ(streamed->prompt_tokens, 5u);
  EXPECT_EQ(streamed->completion_tokens, 2u);
  EXPECT_FALSE(UsageOf("data: {\"usage\":null}\n\ndata: [DONE]\n\n", true));
  EXPECT_FALSE(UsageOf("not json", false));
}

TEST(OpenAiTest, TheModelListIsOpenAisListFormat) {
  json doc = {
      {"models",
       {{{"id", "m1"}, {"services", {"vllm"}}, {"providers", 2}, {"created", 1700}}, {{"id", 7}}}}};
  json list = ModelList(doc);
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 1u) << "entries without a string id are left out";
  EXPECT_EQ(list["data"][0]["id"], "m1");
  EXPECT_EQ(list["data"][0]["object"], "model");
  EXPECT_EQ(list["data"][0]["created"], 1700);
  EXPECT_EQ(list["data"][0]["owned_by"], "rma");
  EXPECT_TRUE(ModelList(json()).at("data").empty());
}

TEST(OpenAiTest, ModelMetricsCountPerModelAndBoundTheirLabels) {
  ModelMetrics m;
  m.Record("m1", 200, Ms(40), Usage{3, 8});
  m.Record("m1", 200, std::nullopt, Usage{1, 1});
  for (size_t i = 0; i < ModelMetrics::kMaxModels + 10; ++i)
    m.Record("client-chosen-" + std::to_string(i), 404, std::nullopt, std::nullopt);
  std::string text;
  m.Render(&text);
  EXPECT_NE(text.find("rma_gateway_openai_requests_total{model=\"m1\",code=\"200\"} 2"),
            std::string::npos);
  EXPECT_NE(text.find("rma_gateway_openai_tokens_total{model=\"m1\",kind=\"completion\"} 9"),
            std::string::npos);
  EXPECT_NE(text.find("rma_gateway_openai_first_byte_seconds_count{model=\"m1\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("model=\"other\""), std::string::npos);
  size_t labels = 0;
  for (size_t at = text.find("rma_gateway_openai_requests_total{"); at != std::string::npos;
       at = text.find("rma_gateway_openai_requests_total{", at + 1))
    ++labels;
  EXPECT_LE(labels, ModelMetrics::kMaxModels + 1);
}

}  // namespace
}  // namespace rma::gateway
