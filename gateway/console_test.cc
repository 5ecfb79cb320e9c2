// The console's request parsing and task page JSON (console.h).
#include "gateway/console.h"

#include <gtest/gtest.h>

namespace rma::gateway {
namespace {

TEST(ConsoleTimeTest, ReadsRfc3339AndUnixSeconds) {
  EXPECT_EQ(*ParseTimeMs("2026-11-22T11:08:43.611Z"), 1'795'345'723'611);
  EXPECT_EQ(*ParseTimeMs("2026-11-22T12:08:43.611+01:00"), 1'795'345'723'611);
  EXPECT_EQ(*ParseTimeMs("2026-11-22T11:08:43Z"), 1'795'345'723'000);
  EXPECT_EQ(*ParseTimeMs("1795345723"), 1'795'345'723'000);
  EXPECT_EQ(*ParseTimeMs("1795345723.5"), 1'795'345'723'500);
  for (const char* bad : {"", "yesterday", "2026-11-22", "2026-13-22T11:08:43Z",
                          "2026-11-22T11:08:43", "2026-11-22T11:08:43Zjunk", "-5", "1e30"}) {
    EXPECT_FALSE(ParseTimeMs(bad).ok()) << bad;
  }
}

TEST(ConsoleListQueryTest, ReadsEveryFilter) {
  auto l = ParseTaskListQuery(
      "service=ocr&status=dead&account=bob&worker=w1&error_code=timeout&since=1000&until="
      "2026-11-22T11%3A08%3A43Z&cursor=123.456&limit=50",
      "admin", true);
  ASSERT_TRUE(l.ok()) << l.status().message();
  EXPECT_EQ(l->service, "ocr");
  EXPECT_EQ(l->status, "dead");
  EXPECT_EQ(l->account, "bob");
  EXPECT_EQ(l->worker_id, "w1");
  EXPECT_EQ(l->error_code, "timeout");
  EXPECT_EQ(l->since_ms, 1'000'000);
  EXPECT_EQ(l->until_ms, 1'795'345'723'000);
  EXPECT_EQ(l->cursor, "123.456");
  EXPECT_EQ(l->limit, 50u);
  EXPECT_TRUE(l->admin);
}

TEST(ConsoleListQueryTest, RefusesBadValuesAndOtherAccountsForClients) {
  EXPECT_EQ(ParseTaskListQuery("account=bob", "alice", false).status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_TRUE(ParseTaskListQuery("account=alice", "alice", false).ok());
  for (const char* bad : {"limit=0", "limit=1001", "limit=x", "status=bogus", "since=soon",
                          "cursor=abc", "service=a%20b"}) {
    EXPECT_EQ(ParseTaskListQuery(bad, "", true).status().code(), StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_FALSE(ParseTaskListQuery("cursor=" + std::string(100, '1'), "", true).ok());
}

TEST(ConsoleBulkBodyTest, ReadsFiltersAndBoundsThem) {
  auto a = ParseBulkBody(
      R"({"service":"ocr","error_code":"timeout","task_ids":["1","2"],"limit":5})", true);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->query, "bulk_retry");
  EXPECT_EQ(a->args.at("service"), "ocr");
  EXPECT_EQ(a->args.at("error_code"), "timeout");
  EXPECT_EQ(a->args.at("task_ids"), "1,2");
  EXPECT_EQ(a->args.at("limit"), "5");
  auto empty = ParseBulkBody("", false);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->query, "bulk_discard");
  EXPECT_TRUE(empty->args.empty());
  for (const char* bad : {"[]", "{\"limit\":0}", "{\"limit\":10001}", "{\"task_ids\":[1]}",
                          "{\"task_ids\":[]}", "{\"service\":\"a b\"}", "{"}) {
    EXPECT_EQ(ParseBulkBody(bad, true).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  std::string many = "{\"task_ids\":[";
  for (size_t i = 0; i <= kMaxBulkIds; ++i)
    many += (i ? ",\"" : "\"") + std::to_string(i + 1) + "\"";
  many += "]}";
  EXPECT_FALSE(ParseBulkBody(many, true).ok());
  EXPECT_EQ(ParseBulkBody(std::string(kMaxBulkBodyBytes + 1, ' '), true).status().code(),
            StatusCode::kResourceExhausted);
}

TEST(ConsoleDetailTest, RendersPayloadAttemptLogAndLeavesLargeBytesOut) {
  proto::TaskView t;
  t.task_id = TaskId(42);
  t.service = "echo";
  t.status = proto::TaskStatus::kCompleted;
  t.payload = std::string(R"({"a":1})");
  t.payload_content_type = "application/json";
  t.payload_bytes = 7;
  t.result = std::string("\xff\xfe");
  t.result_bytes = 2;
  t.attempt_log.push_back({1, "w1", 1000, 2000, "completed", "", ""});
  nlohmann::json j = TaskDetailJson(t, false);
  EXPECT_EQ(j["payload"]["a"], 1);
  EXPECT_EQ(j["payload_truncated"], false);
  EXPECT_EQ(j["result_encoding"], "base64");
  EXPECT_EQ(j["payload_bytes"], 7);
  ASSERT_EQ(j["attempt_log"].size(), 1u);
  EXPECT_EQ(j["attempt_log"][0]["outcome"], "completed");
  EXPECT_EQ(j["attempt_log"][0]["worker_id"], "w1");
  EXPECT_TRUE(j["attempt_log"][0]["error"].is_null());

  t.payload = std::string(kMaxInlineBytes + 1, 'x');
  t.result = std::string(kMaxInlineBytes + 1, 'y');
  j = TaskDetailJson(t, false);
  EXPECT_TRUE(j["payload"].is_null());
  EXPECT_EQ(j["payload_truncated"], true);
  EXPECT_TRUE(j["result"].is_null());
  EXPECT_EQ(j["result_truncated"], true);
}

}  // namespace
}  // namespace rma::gateway
