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
                              "min_tier": 2, "min_gpu_memory_gb": 8, "delay_s": 10,
                              "trusted_only": true})",
                           {}, kNow);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(s->trusted_only);
  EXPECT_FALSE(ParseSubmitJson(R"({"service": "ocr", "trusted_only": "yes"})", {}, kNow).ok());
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

// ---- Large bodies: the scanned form ----------------------------------------------------------

SubmitLimits Scanned() {
  SubmitLimits l;
  l.document_max_bytes = 0;  // every body takes the large form
  return l;
}

TEST(ParseSubmitJsonTest, BothFormsReadTheSameFieldsAndRefuseTheSameInput) {
  const std::string every = R"({"service": "ocr", "payload": {"page": 3}, "priority": 7,
      "max_attempts": 2, "timeout_s": 1.5, "idempotency_key": "k\u0031", "min_tier": 2,
      "min_gpu_memory_gb": 8, "delay_s": 10, "unknown": {"deep": [1, 2, {"x": null}]}})";
  auto doc = ParseSubmitJson(every, {}, kNow);
  auto scan = ParseSubmitJson(every, Scanned(), kNow);
  ASSERT_TRUE(doc.ok() && scan.ok()) << scan.status().ToString();
  proto::Submit a = *doc;
  proto::Submit b = *scan;
  EXPECT_EQ(a.idempotency_key, "k1");
  EXPECT_EQ(json::parse(a.payload.view()), json::parse(b.payload.view()));
  a.payload = b.payload = "";
  EXPECT_EQ(a, b);
  for (const char* bad :
       {"", "{\"service\": ", "[1]", "{}", R"({"service": 5})", R"({"service": "a/b"})",
        R"({"service": "x", "priority": 10})", R"({"service": "x", "run_at": "tomorrow"})",
        "{\"service\": \"x\"} trailing", "{\"service\": \"x\",}", "{\"service\": \"\x01\"}",
        "{\"service\": \"x\", \"payload\": \"\xff\"}"}) {
    auto d = ParseSubmitJson(bad, {}, kNow);
    auto c = ParseSubmitJson(bad, Scanned(), kNow);
    ASSERT_FALSE(d.ok()) << bad;
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(d.status().message(), c.status().message()) << bad;
  }
}

TEST(ParseSubmitJsonTest, SmallPayloadsTravelAsBeforeLargeOnesAsTheClientWroteThem) {
  const std::string body =
      "{\"service\": \"x\", \"payload\": { \"z\": 1, \"a\": [1.0, 2e3, \"a b\\\"c\", "
      "\"\\u00e9\"] }}";
  // The document form: compact, keys sorted — the bytes gateways have always sent.
  auto small = ParseSubmitJson(body, {}, kNow);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->payload, "{\"a\":[1.0,2000.0,\"a b\\\"c\",\"\xc3\xa9\"],\"z\":1}");
  // The scanned form: the client's text without the whitespace outside strings.
  auto large = ParseSubmitJson(body, Scanned(), kNow);
  ASSERT_TRUE(large.ok());
  EXPECT_EQ(large->payload, "{\"z\":1,\"a\":[1.0,2e3,\"a b\\\"c\",\"\\u00e9\"]}");
  EXPECT_EQ(json::parse(small->payload.view()), json::parse(large->payload.view()));
  EXPECT_EQ(large->content_type, "application/json");
}

TEST(ParseSubmitJsonTest, ALargePayloadKeepsTheBodysBufferInsteadOfACopy) {
  std::string body =
      R"({"priority": 3, "payload": ")" + std::string(1 << 20, 'p') + R"(", "service": "x"})";
  const auto buffer = reinterpret_cast<uintptr_t>(body.data());
  SubmitLimits limits;  // 256 KiB: this body takes the scanned form
  auto s = ParseSubmitJson(std::move(body), limits, kNow);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(s->payload.data()), buffer);
  EXPECT_EQ(s->payload.size(), (1u << 20) + 2);
  EXPECT_EQ(s->priority, 3u);
}

TEST(ParseSubmitJsonTest, ANulByteIsNeverTheEndOfTheBody) {
  // Found by the fuzz test: nlohmann stops reading at a NUL, so this parsed as {"service":"x"}.
  const std::string body = std::string("{\"service\":\"x\"}") + '\0' + "{\"ignored\": [";
  for (const SubmitLimits& l : {SubmitLimits{}, Scanned()}) {
    auto s = ParseSubmitJson(body, l, kNow);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.status().message().find("not valid JSON"), std::string::npos);
  }
}

TEST(ParseSubmitJsonTest, TheLastOfRepeatedNamesWinsInBothForms) {
  const char* body = R"({"service": "a", "payload": 1, "service": "b", "payload": [2]})";
  for (const SubmitLimits& l : {SubmitLimits{}, Scanned()}) {
    auto s = ParseSubmitJson(body, l, kNow);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->service, "b");
    EXPECT_EQ(s->payload, "[2]");
  }
}

TEST(ParseSubmitJsonTest, ScannedFieldsOtherThanThePayloadStaySmall) {
  const std::string huge = R"({"service": "x", "priority": [")" + std::string(70000, '1') + "\"]}";
  auto s = ParseSubmitJson(huge, Scanned(), kNow);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("'priority' is too large"), std::string::npos);
  // An unknown field may be large: it is skipped, never parsed.
  const std::string unknown = R"({"service": "x", "notes": ")" + std::string(100000, 'n') + "\"}";
  EXPECT_TRUE(ParseSubmitJson(unknown, Scanned(), kNow).ok());
}

TEST(ScanJsonObjectTest, FindsWantedMembersAndChecksTheSyntax) {
  const std::string text = R"( {"a": {"x": [1, "]}"]}, "b\u0022": 2, "b": -0.5e+3, "a": true} )";
  std::vector<JsonSlice> found;
  ASSERT_TRUE(ScanJsonObject(text, 8, {"a", "b", "b\"", "c"}, &found).ok());
  auto value = [&](size_t i) { return text.substr(found[i].begin, found[i].end - found[i].begin); };
  EXPECT_EQ(value(0), "true");  // the last "a"
  EXPECT_EQ(value(1), "-0.5e+3");
  EXPECT_EQ(value(2), "2");  // names compare unescaped
  EXPECT_FALSE(found[3].present);
  for (const char* bad : {"",
                          "[]",
                          "{",
                          "{\"a\"}",
                          "{\"a\":}",
                          "{\"a\":1,}",
                          "{\"a\":01}",
                          "{\"a\":1.}",
                          "{\"a\":-}",
                          "{\"a\":tru}",
                          "{\"a\":\"\\x\"}",
                          "{\"a\":\"\\u12\"}",
                          "{\"a\":[1,]}",
                          "{\"a\":[1 2]}",
                          "{\"a\":{1:2}}",
                          "{\"a\":1} x",
                          "{\"a\":\"\t\"}",
                          "{\"a\":[}",
                          "{\"a\":{]}",
                          "{'a':1}"}) {
    EXPECT_FALSE(ScanJsonObject(bad, 8, {"a"}, &found).ok()) << bad;
  }
  EXPECT_TRUE(ScanJsonObject("{}", 1, {"a"}, &found).ok());
  EXPECT_TRUE(ScanJsonObject(R"({"a": [[1]]})", 3, {"a"}, &found).ok());
  EXPECT_FALSE(ScanJsonObject(R"({"a": [[[1]]]})", 3, {"a"}, &found).ok());
}

TEST(CompactJsonInPlaceTest, RemovesWhitespaceOutsideStringsOnly) {
  std::string text = "xx{ \"a b\" :\n [ 1 ,\t\"c\\\" d\" ] }yy";
  CompactJsonInPlace(&text, 2, text.size() - 2);
  EXPECT_EQ(text, "{\"a b\":[1,\"c\\\" d\"]}");
}

// Verification: a completed task says whether its result was checked by a second worker.
TEST(TaskJsonTest, ACompletedTaskSaysWhetherItsResultWasVerified) {
  proto::TaskView t = View(proto::TaskStatus::kCompleted, "3", "text/plain");
  EXPECT_EQ(TaskJson(t)["verified"], false);
  t.verified = true;
  EXPECT_EQ(TaskJson(t)["verified"], true);
  EXPECT_EQ(TaskJson(t, /*with_result=*/false)["verified"], true);
  EXPECT_FALSE(TaskJson(View(proto::TaskStatus::kQueued, "", "")).contains("verified"));
}

TEST(TaskJsonTest, TheOwnerIsShownToAdminsOnly) {
  proto::TaskView t = View(proto::TaskStatus::kQueued, "", "");
  t.owner = "web";
  EXPECT_FALSE(TaskJson(t).contains("owner"));
  EXPECT_EQ(TaskJson(t, true, /*with_owner=*/true)["owner"], "web");
  EXPECT_EQ(TaskJson(t, false, /*with_owner=*/true)["owner"], "web");
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
