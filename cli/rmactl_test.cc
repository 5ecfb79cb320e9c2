// Unit tests of rmactl's tables and summaries.
#include <gtest/gtest.h>

#include "cli/rmactl_lib.h"

namespace rma::cli {
namespace {

using nlohmann::json;

TEST(TableTest, PadsColumnsToTheWidestCell) {
  EXPECT_EQ(Table({"A", "LONG"}, {{"xyz", "1"}, {"q", "22"}}),
            "A    LONG\n"
            "xyz  1\n"
            "q    22\n");
}

TEST(RenderTest, WorkersTable) {
  json doc = json::parse(R"({"workers": [{"worker_id": "w1", "name": "gpu-box", "tier": 1,
      "status": "busy", "health": "healthy", "in_flight": 1, "slots": 4, "load": 0.4567,
      "tasks_done": 12, "services": ["vllm", "ocr"]}], "total": 1})");
  std::string out = RenderWorkers(doc);
  EXPECT_NE(out.find("WORKER"), std::string::npos);
  EXPECT_NE(out.find("w1"), std::string::npos);
  EXPECT_NE(out.find("1/4"), std::string::npos);
  EXPECT_NE(out.find("0.46"), std::string::npos);
  EXPECT_NE(out.find("vllm,ocr"), std::string::npos);
  EXPECT_NE(out.find("1 worker(s)"), std::string::npos);
}

TEST(RenderTest, ServicesQueuesAndStatsSurviveMissingFields) {
  EXPECT_NE(RenderServices(json::object()).find("SERVICE"), std::string::npos);
  EXPECT_NE(RenderQueues(json{{"queues", {{"rag", {{"queued", 3}}}}}}).find("rag"),
            std::string::npos);
  std::string stats = RenderStats(json{{"tasks", {{"completed", 5}}}});
  EXPECT_NE(stats.find("5 completed"), std::string::npos);
  EXPECT_NE(RenderStats(json::array()).find("[]"), std::string::npos);
}

TEST(RenderTest, TaskShowsFieldsAndResult) {
  json t = {{"task_id", "7"},
            {"service", "echo"},
            {"status", "completed"},
            {"result", {{"n", 1}}},
            {"error", nullptr}};
  std::string out = RenderTask(t);
  EXPECT_NE(out.find("task_id"), std::string::npos);
  EXPECT_NE(out.find("completed"), std::string::npos);
  EXPECT_EQ(out.find("error"), std::string::npos);
  EXPECT_NE(out.find("\"n\": 1"), std::string::npos);
}

TEST(RenderTest, ErrorsNameCodeAndAvailableServices) {
  Reply r;
  r.status = 503;
  r.body = R"({"error": "Service 'rag' not available", "code": "unavailable",
              "available_services": ["echo", "ocr"], "suggestion": "Start a worker"})";
  EXPECT_EQ(RenderError(r),
            "error 503 (unavailable): Service 'rag' not available\n"
            "available services: echo,ocr\nStart a worker\n");
  r.body = "not json";
  EXPECT_EQ(RenderError(r), "error 503: not json\n");
}

TEST(RenderTest, FinalStatuses) {
  EXPECT_TRUE(IsFinal("completed"));
  EXPECT_TRUE(IsFinal("dead"));
  EXPECT_FALSE(IsFinal("failed"));
  EXPECT_FALSE(IsFinal("queued"));
}

}  // namespace
}  // namespace rma::cli
