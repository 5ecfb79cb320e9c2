// Unit tests of the API's JSON shapes: submissions, task objects, admin documents.
#include "gateway/task_json.h"

#include <gtest/gtest.h>

namespace rma::gateway {
namespace {

using nlohmann::json;

const Time kNow = FromUnixMs(1'800'000'000'000);

proto::TaskView View(proto::TaskStatus status, std::string result, std::string content_type);

TEST(ParseSubmitJsonTest, ReadsEveryField) {
  auto s = ParseSubmitJson(R"({"service": "ocr", "payload": {"page": 3}, "priority": 7,
                              "max_attempts": 2, "timeout_s": 1.5, "idempotency_key": "k1",
                              "min_tier": 2, "min_gpu_memory_gb": 8, "delay_s": 10})",
                           {}, kNow);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->service, "ocr");
  EXPECT_EQ(s->payload, R"({"page":3})");
  EXPECT_EQ(s->content_type, "application/json");
  EXPECT_EQ(s->priority, 7u);
  EXPECT_EQ(s->max_attempts, 2u);
  EXPECT_EQ(s->timeout_ms, 1500u);
  EXPECT_EQ(s->idempotency_key, "k1");
  EXPECT_EQ(s->min_tier, 2u);
  EXPECT_EQ(s->min_gpu_memory_gb, 8);
  EXPECT_EQ(s->run_at_ms, ToUnixMs(kNow) + 10000);
  EXPECT_EQ(s->mode, proto::SubmitMode::kAsync);
}

TEST(ParseSubmitJsonTest, RunAtAcceptsRfc3339AndUnixSeconds) {
  auto a =
      ParseSubmitJson(R"({"service": "x", "run_at": "2027-01-15T08:00:00.250+01:00"})", {}, kNow);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->run_at_ms, 1799996400250);
  auto b = ParseSubmitJson(R"({"service": "x", "run_at": 1800000000})", {}, kNow);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->run_at_ms, 1800000000000);
}

TEST(ParseSubmitJsonTest, RefusesBadInputNamingTheField) {
  struct Case {
    const char* body;
    const char* mentions;
  };
  for (const Case& c : std::vector<Case>{
           {"", "not valid JSON"},
           {"{\"service\": ", "not valid JSON"},
           {"[1]", "JSON object"},
           {"{}", "'service'"},
           {R"({"service": 5})", "'service'"},
           {R"({"service": ""})", "'service'"},
           {R"({"service": "a/b"})", "'service'"},
           {R"({"service": "x", "priority": 10})", "'priority'"},
           {R"({"service": "x", "priority": "high"})", "'priority'"},
           {R"({"service": "x", "priority": 1.5})", "'priority'"},
           {R"({"service": "x", "max_attempts": 0})", "'max_attempts'"},
           {R"({"service": "x", "timeout_s": -1})", "'timeout_s'"},
           {R"({"service": "x", "timeout_s": "1"})", "'timeout_s'"},
           {R"({"service": "x", "idempotency_key": 3})", "'idempotency_key'"},
           {R"({"service": "x", "min_tier": 4})", "'min_tier'"},
           {R"({"service": "x", "run_at": "tomorrow"})", "'run_at'"},
           {R"({"service": "x", "run_at": "2027-01-15T08:00:00"})", "'run_at'"},
       }) {
    auto s = ParseSubmitJson(c.body, {}, kNow);
    ASSERT_FALSE(s.ok()) << c.body;
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << c.body;
    EXPECT_NE(s.status().message().find(c.mentions), std::string::npos)
        << c.body << " -> " << s.status().message();
  }
}

TEST(ParseSubmitJsonTest, PayloadOverTheLimitIsResourceExhausted) {
  SubmitLimits limits;
  limits.max_payload_bytes = 10;
  auto s = ParseSubmitJson(R"({"service": "x", "payload": "0123456789abc"})", limits, kNow);
  EXPECT_EQ(s.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(ParseSubmitJson(R"({"service": "x", "payload": "01234567"})", limits, kNow).ok());
}

TEST(ParseSubmitJsonTest, DeeplyNestedJsonIsRefusedNotACrash) {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  auto s = ParseSubmitJson("{\"service\": \"x\", \"payload\": " + deep + "}", {}, kNow);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("nests deeper"), std::string::npos);
  const std::string ok = std::string(60, '[') + std::string(60, ']');
  EXPECT_TRUE(ParseSubmitJson("{\"service\": \"x\", \"payload\": " + ok + "}", {}, kNow).ok());
}

TEST(JsonDepthTest, CountsOnlyBracketsOutsideStrings) {
  EXPECT_TRUE(JsonDepthWithin(R"({"a": "[[[[[[", "b": "\"[[["})", 2));
  EXPECT_TRUE(JsonDepthWithin("[[1],[2]]", 2));
  EXPECT_FALSE(JsonDepthWithin("[[[1]]]", 2));
}

TEST(TaskJsonTest, TooDeepJsonResultStaysText) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  json j = TaskJson(View(proto::TaskStatus::kCompleted, deep, "application/json"));
  EXPECT_TRUE(j["result"].is_string());
}

proto::TaskView View(proto::TaskStatus status, std::string result, std::string content_type) {
  proto::TaskView t;
  t.task_id = TaskId(42);
  t.service = "echo";
  t.status = status;
  t.attempts = 1;
  t.max_attempts = 3;
  t.worker_id = "w1";
  t.result = std::move(result);
  t.content_type = std::move(content_type);
  t.created_at_ms = 1'800'000'000'000;
  t.started_at_ms = 1'800'000'000'500;
  return t;
}

TEST(TaskJsonTest, HasEveryFieldOfTheSpec) {
  json j = TaskJson(View(proto::TaskStatus::kRunning, "", ""));
  for (const char* key : {"task_id", "service", "status", "attempts", "worker_id", "result",
                          "error", "created_at", "started_at", "completed_at"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["task_id"], "42");
  EXPECT_EQ(j["status"], "running");
  EXPECT_EQ(j["result"], nullptr);
  EXPECT_EQ(j["completed_at"], nullptr);
  EXPECT_EQ(j["created_at"], "2027-01-15T08:00:00.000Z");
}

TEST(TaskJsonTest, ResultIsJsonTextOrBase64ByContent) {
  EXPECT_EQ(
      TaskJson(View(proto::TaskStatus::kCompleted, R"({"n":1})", "application/json"))["result"],
      json({{"n", 1}}));
  EXPECT_EQ(TaskJson(View(proto::TaskStatus::kCompleted, "plain", "text/plain"))["result"],
            "plain");
  json bin = TaskJson(View(proto::TaskStatus::kCompleted, std::string("\xff\x00\x01", 3),
                           "application/octet-stream"));
  EXPECT_EQ(bin["result"], "/wAB");
  EXPECT_EQ(bin["result_encoding"], "base64");
  // Claimed JSON that is not JSON falls back to text.
  EXPECT_EQ(TaskJson(View(proto::TaskStatus::kCompleted, "{nope", "application/json"))["result"],
            "{nope");
  EXPECT_FALSE(
      TaskJson(View(proto::TaskStatus::kCompleted, "x", "text/plain"), false).contains("result"));
}

TEST(MsgpackToJsonTest, ConvertsEveryType) {
  json doc = {{"a", 1}, {"b", -2}, {"c", 1.5}, {"d", "s"}, {"e", nullptr}, {"f", {true, false}}};
  std::vector<uint8_t> packed = json::to_msgpack(doc);
  msgpack::object_handle oh =
      msgpack::unpack(reinterpret_cast<const char*>(packed.data()), packed.size());
  EXPECT_EQ(MsgpackToJson(oh.get()), doc);
}

TEST(Base64Test, EncodesAllPaddings) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
}

TEST(Utf8Test, AcceptsValidAndRefusesInvalid) {
  EXPECT_TRUE(IsValidUtf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));
  EXPECT_FALSE(IsValidUtf8("\xf5\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xe2\x28\xa1"));
}

}  // namespace
}  // namespace rma::gateway
